"""Every earlier turn screened like the new one before an engine sees it.

The conversation is stored as the person wrote it; what an engine gets of it is, turn by
turn, the screened text: the person's turns with personal data masked and injected
instructions removed, the coach's own turns masked too (an answer may quote the person).
A value masked in one turn is masked wherever else it appears, in any turn, in the new
message and in the answer, so a name found once ("my report Okafor") never slips through
later on its own ("Okafor still ignores me").
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from app.answer import CoachingAnswer, Turn
from app.guard import GuardRules, strip_injections
from app.personal_data import Found, load_masker

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass
class ScreenedHistory:
    """The earlier turns as an engine may see them, and what was masked in them."""

    turns: list[Turn]
    masked: list[str] = field(default_factory=list)  # kinds, in first-seen order
    found: list[Found] = field(default_factory=list)  # the original values, never sent


def screen_history(
    turns: Sequence[Turn], rules: GuardRules, prompts_dir: Path | None = None
) -> ScreenedHistory:
    """Mask every turn and strip injected instructions from the person's turns."""
    masker = load_masker(prompts_dir)
    screened: list[Turn] = []
    found: list[Found] = []
    for turn in turns:
        masking = masker.mask(turn.text)
        text = masking.text
        if turn.role == "user":
            text, _ = strip_injections(text, rules)
        found += masking.found
        screened.append(Turn(role=turn.role, text=text))
    if found:  # a value found in one turn is masked in all of them
        for i, turn in enumerate(screened):
            text, more = mask_known(turn.text, found)
            if more:
                screened[i] = Turn(role=turn.role, text=text)
    return ScreenedHistory(turns=screened, masked=kinds_of(found), found=found)


def kinds_of(found: Iterable[Found]) -> list[str]:
    """The kinds of ``found``, each once, in first-seen order."""
    return list(dict.fromkeys(f.kind for f in found))


def mask_known(text: str, found: Sequence[Found]) -> tuple[str, list[str]]:
    """Replace every value already found elsewhere with its placeholder; the kinds replaced.

    A full name is also masked word by word ("Whitfield" alone, once "Dana Whitfield" was
    found). Names match as written (a name "Will" leaves "will" alone); other values
    ignore case.
    """
    known = _known(tuple(found))
    if known is None:
        return text, []
    pattern, kinds_by_text = known
    kinds: list[str] = []

    def replace(match: re.Match) -> str:
        kind = _kind(kinds_by_text, match.group(0))
        kinds.append(kind)
        return f"[{kind}]"

    return pattern.sub(replace, text), list(dict.fromkeys(kinds))


def withhold_values(answer: CoachingAnswer, found: Sequence[Found]) -> list[str]:
    """Mask in the answer any value that was masked in the conversation; the kinds masked."""
    kinds: list[str] = []
    answer.summary, more = mask_known(answer.summary, found)
    kinds += more
    answer.coaching, more = mask_known(answer.coaching, found)
    kinds += more
    questions = []
    for question in answer.follow_up_questions:
        question, more = mask_known(question, found)
        kinds += more
        questions.append(question)
    answer.follow_up_questions = questions
    return list(dict.fromkeys(kinds))


def withholding(
    events: Generator[_T, None, _R], found: Sequence[Found]
) -> Generator[_T | str, None, _R]:
    """Pass on an engine's events, with every value masked in the conversation masked in the
    streamed text too; returns what ``events`` returns. Only the last few characters, which
    could still be the start of a value, are held back until the next chunk."""
    known = _known(tuple(found))
    if known is None:
        return (yield from events)
    pattern, kinds = known
    longest = max(map(len, kinds))
    pending, before = "", ""

    def release(final: bool) -> str:
        nonlocal pending, before
        text = before + pending
        start = len(before)
        # A value that starts before ``safe`` is complete, and so is the character after it.
        safe = len(text) if final else max(start, len(text) - longest)
        out, at = [], start
        for match in pattern.finditer(text, start):
            if match.start() >= safe and not final:
                break
            out += [text[at : match.start()], f"[{_kind(kinds, match.group(0))}]"]
            at = match.end()
        cut = len(text) if final else max(at, safe)
        out.append(text[at:cut])
        before, pending = (text[cut - 1 : cut] or before), text[cut:]
        return "".join(out)

    while True:
        try:
            event = next(events)
        except StopIteration as done:
            if rest := release(final=True):
                yield rest
            return done.value
        if isinstance(event, str):
            pending += event
            if ready := release(final=False):
                yield ready
        else:
            yield event


def masked_notice(kinds: Sequence[str], rules: GuardRules, *, remote: bool) -> str:
    """The notice that says what was masked (worded for a remote LLM or the offline coach)."""
    key = "masked" if remote else "masked_offline"
    return rules.notices[key].format(kinds=", ".join(kinds))


def merge_masked_notice(
    notices: list[str],
    this_turn: Sequence[str],
    every_turn: Sequence[str],
    rules: GuardRules,
    *,
    remote: bool,
) -> list[str]:
    """``notices`` with the masking notice of this turn alone replaced by one that names what
    was masked in this turn and every earlier one."""
    if not every_turn or list(this_turn) == list(every_turn):
        return notices
    combined = masked_notice(every_turn, rules, remote=remote)
    if not this_turn:
        return [*notices, combined]
    own = masked_notice(this_turn, rules, remote=remote)
    if own not in notices:
        return [*notices, combined]
    return [combined if n == own else n for n in notices]


# --------------------------------------------------------------------------- matching

_Known = tuple[re.Pattern, dict[str, str]]
_cache: dict[tuple[Found, ...], _Known | None] = {}


def _known(found: tuple[Found, ...]) -> _Known | None:
    """One pattern for all the values, longest first, each a whole word or number; and the
    kind of each matched text (names as written, other values lower-cased)."""
    if found not in _cache:
        if len(_cache) > 256:
            _cache.clear()
        kinds: dict[str, str] = {}
        exact: set[str] = set()
        for f in found:
            value = f.value.strip()
            if not value:
                continue
            if f.match_case:
                parts = [w for w in value.split() if len(w) >= 3 and w[0].isupper()]
                for word in [value, *parts]:
                    kinds.setdefault(word, f.kind)
                    exact.add(word)
            else:
                kinds.setdefault(value.lower(), f.kind)
        if not kinds:
            _cache[found] = None
        else:
            alternatives = [
                re.escape(text) if text in exact else f"(?i:{re.escape(text)})"
                for text in sorted(kinds, key=len, reverse=True)
            ]
            pattern = re.compile(rf"(?<!\w)(?:{'|'.join(alternatives)})(?!\w)")
            _cache[found] = (pattern, kinds)
    return _cache[found]


def _kind(kinds: dict[str, str], text: str) -> str:
    return kinds.get(text) or kinds.get(text.lower(), "personal data")
