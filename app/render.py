"""Plain-text and Markdown renderings of an answer, shared by the CLI and the exports."""

from __future__ import annotations

from app.answer import CoachingAnswer
from app.passages import FOCUS_NAMES, Passage

VERDICT_LABELS = {"management": "Management", "leadership": "Leadership", "both": "Both"}


# What the badge says when the guard answered instead of coaching.
SAFETY_LABELS = {
    "crisis": "Safety first",
    "unethical": "Can't help with this",
    "prompt_leak": "Instructions stay private",
    "off_topic": "Outside what I coach",
}


def verdict_label(answer: CoachingAnswer) -> str:
    if answer.verdict is None:
        return SAFETY_LABELS.get(answer.meta.safety or "", "Needs more detail")
    return f"{VERDICT_LABELS[answer.verdict]} ({answer.confidence:.0%})"


def answer_header(answer: CoachingAnswer) -> str:
    """Verdict line, focus areas, summary, notices and the second opinion."""
    lines = [f"Verdict: {verdict_label(answer)}"]
    if answer.focus:
        lines.append(
            "Focus: "
            + ", ".join(
                f"{n} ({c})" for c, n in zip(answer.focus, answer.focus_names(), strict=True)
            )
        )
    if answer.summary:
        lines.append(answer.summary)
    for notice in answer.notices:
        lines.append(f"Note: {notice}")
    if answer.second_opinion and answer.second_opinion.note:
        lines.append(f"Second opinion: {answer.second_opinion.note}")
    return "\n".join(lines)


def evidence_groups(answer: CoachingAnswer) -> list[tuple[str, list[tuple[str, str]]]]:
    """("What I read as management", [(quote, "Organizing resources (M2)")…]) per side."""
    groups = []
    for side in ("management", "leadership"):
        items = [e for e in answer.evidence if e.side == side]
        if items:
            groups.append(
                (
                    f"What I read as {side}",
                    [(e.text, f"{FOCUS_NAMES[e.code]} ({e.code}), {e.score:.0%}") for e in items],
                )
            )
    return groups


def answer_evidence(answer: CoachingAnswer) -> str:
    """The person's sentences that drove each side, for the CLI."""
    lines = []
    for title, items in evidence_groups(answer):
        lines.append(f"{title}:")
        lines.extend(f'- "{quote}" — {why}' for quote, why in items)
    return "\n".join(lines)


def answer_sources(answer: CoachingAnswer, passages: list[Passage]) -> str:
    """The cited passages quoted exactly, with section, title and author."""
    if not passages:
        return ""
    lines = ["Sources:"]
    for p in passages:
        byline = ", ".join(x for x in (p.author, p.publisher) if x)
        lines.append(f'- [{p.id}] {p.section} — "{p.title}"' + (f" ({byline})" if byline else ""))
        lines.append(f"  > {p.text}")
    if answer.follow_up_questions:
        lines.append("")
        lines.append("The coach asks you:")
        lines.extend(f"- {q}" for q in answer.follow_up_questions)
    if answer.suggested_questions:
        lines.append("")
        lines.append("You might ask next:")
        lines.extend(f"- {q}" for q in answer.suggested_questions)
    return "\n".join(lines)


def reading_lines(answer: CoachingAnswer) -> list[str]:
    """What the coach understood of the situation, one line a fact, in the person's words."""
    reading = answer.reading
    if reading is None:
        return []
    lines = []
    if reading.role:
        lines.append(f"You are: {reading.role}")
    if reading.leads:
        lines.append(f"You lead: {reading.leads}")
    if reading.boss:
        lines.append(f"Your manager: {reading.boss}")
    if reading.people:
        lines.append("People involved: " + "; ".join(p.mention for p in reading.people))
    for constraint in reading.constraints:
        lines.append(f"Limit ({constraint.kind}): {constraint.text}")
    for text in dict.fromkeys(t.text for t in reading.tried):  # one clause can be two actions
        lines.append(f"Already tried: {text}")
    if reading.time_pressure:
        lines.append(f"Time pressure: {reading.time_pressure}")
    for question in reading.questions:
        lines.append(f"Your question: {question}")
    return lines
