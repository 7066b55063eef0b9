"""The offline coach's answer, composed like a coach talks: their question first, then why,
then what to do next, built on what they already tried and never claiming what they
didn't say.

The pieces come from three places: the person's own words (the ``Reading`` of their
situation, and the sentences the classifier read as each responsibility), the move
library (``knowledge/moves/``: what to do and say in situations like theirs) and the
wording in ``prompts/offline.yaml``. Nothing here is random: the same request gives the
same answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.answer import Evidence
from app.moves import Move, Situation
from app.offline_templates import OfflineTemplates
from app.passages import focus_side

MAX_WORDS = 350
# How close (cosine) a library question must be to theirs to be answered as theirs.
DIRECT_ANSWER = 0.6
MAX_STEPS = 3
QUOTE_WORDS = 22


@dataclass
class Composed:
    """The parts of an offline answer, before it becomes a ``CoachingAnswer``."""

    coaching: str
    steps: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)  # the coach asks the person
    suggested: list[str] = field(default_factory=list)  # the person might ask next


def shorten(sentence: str, max_words: int = QUOTE_WORDS) -> str:
    words = sentence.strip().rstrip(".!?").split()
    text = " ".join(words[:max_words])
    return text + ("…" if len(words) > max_words else "")


def quotes_for(focus: Sequence[str], evidence: Sequence[Evidence]) -> dict[str, str]:
    """For each focus code, the person's sentence the classifier read as that code (or,
    failing that, as that code's side); never a sentence read as the other side."""
    details: dict[str, str] = {}
    used: set[str] = set()
    for exact in (True, False):
        for code in focus:
            if code in details:
                continue
            for item in evidence:
                fits = item.code == code if exact else item.side == focus_side(code)
                if fits and item.text not in used:
                    details[code] = shorten(item.text)
                    used.add(item.text)
                    break
    return details


def people_phrase(reading) -> str:
    """Whom they lead, in their words when they said it ("your 8 developers")."""
    leads = getattr(reading, "leads", None) if reading is not None else None
    if leads:
        text = re.sub(r"^(?:my|our|the|a|an)\s+", "", leads.strip(), flags=re.I)
        # Only a plain group of people ("developers", "night nurses"), never a place or a
        # phrase that would not read as "look at it with your …".
        if len(text.split()) <= 3 and re.fullmatch(r"[a-z][a-z -]*s", text):
            return f"your {text}"
    return "your team"


def tried_actions(reading) -> dict[str, str]:
    """Action id -> their own words, for what they say they already did."""
    if reading is None:
        return {}
    return {t.action: t.text for t in getattr(reading, "tried", [])}


@dataclass
class Step:
    move: Move
    situation: Situation


def pick_steps(
    situations: Sequence[Situation], tried: dict[str, str], skip: set[str], limit: int = MAX_STEPS
) -> list[Step]:
    """Up to ``limit`` moves from the best-fitting situations: never an action they already
    tried, never the same action twice, at most two from one situation."""
    steps: list[Step] = []
    used_actions: set[str] = set()
    for rank, situation in enumerate(situations):
        taken = 0
        for move in situation.moves:
            if move.action in tried or move.action in used_actions or move.do in skip:
                continue
            steps.append(Step(move, situation))
            used_actions.add(move.action)
            taken += 1
            first_cap = 3 if len(situations) == 1 else 2
            if len(steps) == limit or taken == (first_cap if rank == 0 else 1):
                break
        if len(steps) == limit:
            break
    return steps


_SWAP = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself",
    "we": "you", "us": "you", "our": "your", "ours": "yours", "ourselves": "yourselves",
    "i'm": "you're", "i've": "you've", "i'd": "you'd", "i'll": "you'll", "am": "are",
}  # fmt: skip
_QUESTION_FORMS = (
    (re.compile(r"^how (?:do|can|should|could|would) (?:i|we) (.+)$", re.I), "To {}"),
    (
        re.compile(r"^what (?:should|can|could|do) (?:i|we) do (?:about|with) (.+)$", re.I),
        "About {}",
    ),
    (re.compile(r"^(?:should|do|can|could|would) (?:i|we) (.+)$", re.I), "On whether to {}"),
    (
        re.compile(r"^is it (?:ok|okay|wise|fair|right) (?:for me )?to (.+)$", re.I),
        "On whether to {}",
    ),
)


def _swap(text: str) -> str:
    return " ".join(_SWAP.get(w.lower(), w) for w in text.split())


def question_topic(question: str, nouns: Sequence[str] = ()) -> str | None:
    """Their question's subject, to open the answer with: the thing it names, in their
    words ("On the home office policy:"), or else the question turned round ("How do I
    tell my boss?" -> "To tell your boss:"); None when neither is found."""
    text = question.strip().rstrip("?").strip()
    named = [n for n in nouns if n.lower() in text.lower()]
    if named:
        return f"On {_swap(max(named, key=len))}:"
    for pattern, form in _QUESTION_FORMS:
        found = pattern.match(text)
        if found:
            return form.format(_swap(found.group(1))) + ":"
    return None


def _say(move: Move, templates: OfflineTemplates) -> str:
    return (
        " " + templates.connectors.say.format(say=move.say.strip().strip('"')) if move.say else ""
    )


def _words(text: str) -> int:
    return len(re.findall(r"\S+", text))


_EXAMPLE_OPENER = r"(?:such as|for example|for instance|e\.g\.|like)\s+[^,.;:()]+"
# ", such as £50, that staff…" (between commas), " (for example …)", ", such as X." (at the end)
_EXAMPLE = re.compile(
    rf",\s*{_EXAMPLE_OPENER},(?=\s)|\s+\({_EXAMPLE_OPENER}\)|,\s*{_EXAMPLE_OPENER}(?=[.;:])"
)


def drop_foreign_examples(text: str, their_words: set[str]) -> str:
    """Remove a move's worked example ("such as falling bookings") when none of its words
    are in the person's message, so the coach never presents another setting's details as
    theirs."""

    def keep(match: re.Match) -> str:
        words = _content(match.group(0)) - _EXAMPLE_WORDS
        return match.group(0) if words & their_words else ""

    return re.sub(r"\s+([,.;:])", r"\1", _EXAMPLE.sub(keep, text))


def compose(
    *,
    verdict: str,
    focus: Sequence[str],
    evidence: Sequence[Evidence],
    reading,
    situations: Sequence[Situation],
    question: str | None,
    question_situation: Situation | None,
    question_closeness: float = 1.0,
    action_labels: dict[str, str],
    templates: OfflineTemplates,
    situation_text: str = "",
    already_said: str = "",
    lead_in: str | None = None,
    brief: bool = False,
) -> Composed:
    """The coaching text for a judged situation (see the module docstring)."""
    people = people_phrase(reading)
    tried = tried_actions(reading)
    quotes = quotes_for(focus, evidence)
    their_words = _content(situation_text)
    parts: list[str] = []
    if lead_in:
        parts.append(lead_in)

    # 1. Their question, answered first and plainly, when the library holds an answer to
    # that question; otherwise said honestly, and the steps below do the work.
    answered: set[str] = set()
    direct = question_situation is not None and question_closeness >= DIRECT_ANSWER
    if question:
        asked = question.strip()
        if len(asked.split()) > 40:
            asked = shorten(asked, 40)
        block = [templates.connectors.question_lead.format(question=asked)]
        if direct:
            answer = question_situation.answer.strip()
            nouns = list(getattr(reading, "nouns", []) or [])
            topic = question_topic(asked, nouns) if len(asked.split()) <= 25 else None
            if topic:
                first = answer.split()[0]
                lower = first != "I" and not first.startswith("I'") and first[1:].islower()
                answer = f"{topic} {answer[0].lower() if lower else answer[0]}{answer[1:]}"
            script = next(
                (m for m in question_situation.moves if m.say and m.action not in tried), None
            )
            if script is not None:
                answer += _say(script, templates)
                answered.add(script.do)
            block.append(drop_foreign_examples(answer, their_words))
        else:
            block.append(templates.connectors.no_direct_answer)
        parts.append("\n\n".join(block))

    # 2. What to do next: moves for situations like theirs, built on what they tried, never
    # what an earlier answer in this conversation already said.
    top = list(situations)
    if direct and question_situation not in top:
        top = [question_situation, *top]
    skip = {m.do for s in top for m in s.moves if already_said and m.do.strip() in already_said}
    steps = pick_steps(top, tried, skip)
    block = [templates.headings.steps]
    if tried:
        first_tried = next(iter(tried))
        label = action_labels.get(first_tried, first_tried.replace("_", " "))
        block.append(templates.connectors.tried.format(label=label))
    numbered = []
    for i, step in enumerate(steps, 1):
        text = step.move.do.strip()
        if step.move.do not in answered and (i == 1 or not question):
            text += _say(step.move, templates)
        numbered.append(f"{i}. {drop_foreign_examples(text, their_words)}")
    if not numbered:
        # Nothing in the library fits well enough: one step per focus area, from the article.
        numbered = [
            f"{i}. {templates.focus[c].step.format(people=people)}" for i, c in enumerate(focus, 1)
        ]
    block.append("\n".join(numbered))
    parts.append("\n\n".join(block))

    # 3. Why: the verdict in the article's terms, each focus with their own words (a
    # follow-up question already has it above, so it isn't repeated).
    checks: list[str] = []
    if not brief:
        phrase = templates.verdict_phrases[verdict]
        why = [templates.headings.why.format(verdict_phrase=phrase), templates.openings[verdict]]
        lines = []
        for code in focus:
            words = templates.focus[code]
            line = "- " + words.why
            if code in quotes:
                line += " " + templates.connectors.quote.format(quote=quotes[code])
            else:
                checks.append(words.check.format(people=people))
            lines.append(line)
        parts.append("\n\n".join(why) + "\n\n" + "\n".join(lines))

    # 4. The trap and what to watch, from the situation that fits best.
    lead = top[0] if top and steps else None
    if lead is not None:
        pitfall = drop_foreign_examples(lead.pitfall.strip(), their_words)
        parts.append(f"{templates.headings.pitfall}\n\n{pitfall}")
        if not brief:
            watch = drop_foreign_examples(lead.watch.strip(), their_words)
            parts.append(f"{templates.headings.watch}\n\n{watch}")
    if checks and not brief:
        parts.append(templates.headings.check + "\n\n" + "\n".join(f"- {c}" for c in checks[:2]))

    parts = _within_budget(parts, templates)
    parts.append(templates.closing)
    questions = [templates.focus[c].follow_up for c in focus if c not in quotes][:2]
    if question and not direct and not questions:
        # The answer said it could be more precise with more detail: ask for it.
        questions = [templates.focus[c].follow_up for c in focus][:2]
    suggested = _suggested(top, question, templates, verdict)
    return Composed(
        coaching="\n\n".join(parts),
        steps=[s.move.do for s in steps],
        questions=questions,
        suggested=suggested,
    )


_EXAMPLE_WORDS = frozenset(["such", "example", "instance", "like", "e.g"])
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "do",
        "does",
        "did",
        "how",
        "what",
        "when",
        "why",
        "who",
        "should",
        "can",
        "could",
        "would",
        "to",
        "of",
        "in",
        "on",
        "for",
        "with",
        "and",
        "or",
        "but",
        "is",
        "are",
        "be",
        "it",
        "this",
        "that",
        "they",
        "them",
        "their",
    ]
)


def _content(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z']+", text.lower()) if w not in _STOP}


_BULLET = re.compile(r"^\s*(?:[-*•·]|\d+[.)])\s+")


def main_question(questions: Sequence[str]) -> str | None:
    """The question to answer first: the one that says the most (content words), the
    later one on a tie; "Any other advice?" gives way to the question that names the
    problem, and options they list as bullets ("• Set up a meeting?") give way to their
    own question."""
    own = [q for q in questions if not _BULLET.match(q)] or list(questions)
    if not own:
        return None
    return max(reversed(own), key=lambda q: len(_content(q)))


def _within_budget(parts: list[str], templates: OfflineTemplates) -> list[str]:
    """Drop the least needed parts (what to watch, then the checks) past the word budget."""
    droppable = [templates.headings.watch, templates.headings.check]
    for heading in droppable:
        if sum(_words(p) for p in parts) <= MAX_WORDS:
            break
        parts = [p for p in parts if not p.startswith(heading)]
    return parts


def _suggested(
    situations: Sequence[Situation], question: str | None, templates, verdict: str
) -> list[str]:
    """What the person might ask next: the matched situations' typical questions first."""
    asked = _content(question or "")
    found: list[str] = []
    for situation in situations[:3]:
        for ask in situation.asks:
            words = _content(ask)
            overlap = len(words & asked) / max(1, min(len(words), len(asked)))
            if overlap < 0.5 and ask not in found:
                found.append(ask)
                break
    for ask in templates.suggested_asks[verdict]:
        if len(found) >= 3:
            break
        if ask not in found:
            found.append(ask)
    return found[:3]
