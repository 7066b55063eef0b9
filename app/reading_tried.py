"""What a person says they have already done: the actions of ``knowledge/moves/actions.yaml``
recognised in their sentences with the patterns of ``knowledge/reading/tried.yaml``.

A match counts only when the writer is the one doing it and reports it as done or as a
habit. The doer is the last subject pronoun before the match: "I" or "we" (or none at all,
in a clipped "Tried explaining why."). Between the doer and the act nothing may say it is
not done, only meant, asked of someone else or heard about (``not_done``, ``others_act``);
just before the doer nothing may turn it into a question or a condition ("should I", "if
we"); just after it nothing may put it in the future ("I'm meeting my boss tomorrow"); and
"I was coached" is something done to the writer, not by them.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from app.reading_rules import TriedRules
from app.reading_text import Sentence, clause_around, one_line

MAX_WINDOW_WORDS = 25  # between the doer and the act
MAX_LAST_PART_WORDS = 6  # ... after the last "and" / comma, where the act's own verb group is
_LOOK_AHEAD = 60  # characters after an act where "tomorrow" makes it still to come

_COORDINATOR = re.compile(r"[,;]|\b(?:and|then|so|but)\b")
_PASSIVE = re.compile(
    r"(?:\b(?:am|is|are|was|were|be|been|being|get|gets|got|gotten|getting)|'m|'re)"
    r"\s+(?:\w+ly\s+)?$"
)
# Words that may stand before a clipped report with no "I": "Already talked to each of them."
_CLIPPED = frozenset(
    [
        "already",
        "also",
        "just",
        "recently",
        "finally",
        "even",
        "then",
        "so",
        "and",
        "have",
        "tried",
        "attempted",
        "since",
    ]
)
_CLIPPED_TRY = frozenset({"tried", "attempted"})
# Past forms that may stand between the doer and the act: "I had talked", "I tried explaining".
_AUXILIARY_PAST = frozenset(
    ["had", "been", "tried", "attempted", "started", "began", "begun", "kept", "got", "went"]
)
# Where a list of things tried ends: "I've tried X, Y and Z, but ...".
_LIST_END = re.compile(
    r"\bbut\b|;|\bhowever\b|\bbecause\b|\bso\b|\bwhich\b|\bnow\b|"
    r"(?:\band\b|,) (?:i|we|he|she|they|it|nothing|none|no one)\b"
)
_LIST_EXCEPT = re.compile(r"\b(?:except|besides|other than|apart from|not|no|never|without)\b")
_WORD = re.compile(r"[a-z][a-z'-]*")


class Found(NamedTuple):
    """An action the writer says they did, where it was said, and their words for it."""

    position: int
    action: str
    text: str


def find_tried(sentences: list[Sentence], rules: TriedRules) -> list[Found]:
    """The actions reported as done, each once (where first said), in the text's order. An
    action's act is tried only where one of its verbs stands."""
    found: dict[str, Found] = {}
    for sentence in sentences:
        text, lower = sentence.text, sentence.lower
        for word in _WORD.finditer(lower):
            for index in rules.triggers.get(word.group(), ()):
                action, done, _named = rules.actions[index]
                if action in found:
                    continue
                match = done.match(lower, word.start())
                if match and _is_reported_done(lower, match, rules):
                    clause = clause_around(text, match.start(), match.end())
                    found[action] = Found(sentence.start + match.start(), action, clause)
        for frame in rules.frame.finditer(lower):
            if not _frame_counts(lower, frame, rules):
                continue
            end = _LIST_END.search(lower, frame.end())
            stop = end.start() if end else len(lower)
            said = one_line(text[frame.start() : stop])
            for action, _done, named in rules.actions:
                if named is None or action in found:
                    continue
                for match in named.finditer(lower, frame.end(), stop):
                    if not _LIST_EXCEPT.search(lower, frame.end(), match.start()):
                        found[action] = Found(sentence.start + match.start(), action, said)
                        break
    return sorted(found.values())


def _is_reported_done(sentence: str, match: re.Match, rules: TriedRules) -> bool:
    prefix = sentence[: match.start()]
    subject = _last_subject(prefix, rules)
    if subject is None:
        words = prefix.replace("'ve", " have").split()
        first = match.group().split(" ", 1)[0]
        clipped = all(w in _CLIPPED for w in words) and (
            first in rules.past_forms or any(w in _CLIPPED_TRY for w in words)
        )
        if not clipped:
            return False
        window, doer = prefix, ""
    else:
        is_writer, start, end = subject
        if not is_writer or rules.before_subject.search(prefix, 0, start):
            return False
        window, doer = prefix[end:], prefix[start:end]
    if len(window.split()) > MAX_WINDOW_WORDS:
        return False
    last_part = _COORDINATOR.split(window)[-1].split()
    if len(last_part) > MAX_LAST_PART_WORDS:
        return False
    if any(w in rules.past_forms and w not in _AUXILIARY_PAST for w in last_part):
        return False  # another verb is the act: "I delegated the hiring decision"
    if rules.not_done.search(window) or rules.not_done.search(match.group()):
        return False
    if rules.others_act.search(window):
        return False
    first = match.group().split(" ", 1)[0]
    if first in rules.past_forms:
        return not _PASSIVE.search(doer + window)  # "I was coached" is done to the writer
    return not rules.still_to_come.search(sentence, match.end(), match.end() + _LOOK_AHEAD)


def _last_subject(prefix: str, rules: TriedRules) -> tuple[bool, int, int] | None:
    """(is it the writer, start, end) of the last subject pronoun in ``prefix``."""
    last: tuple[bool, int, int] | None = None
    for is_writer, pattern in ((True, rules.first_person), (False, rules.other_person)):
        for match in pattern.finditer(prefix):
            if last is None or match.start() > last[1]:
                last = (is_writer, match.start(), match.end())
    return last


def _frame_counts(sentence: str, frame: re.Match, rules: TriedRules) -> bool:
    return not (
        rules.before_subject.search(sentence, 0, frame.start())
        or rules.not_done.search(frame.group())
    )
