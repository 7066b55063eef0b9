"""Plain-text and Markdown renderings of an answer, shared by the CLI and the exports."""

from __future__ import annotations

from app.answer import CoachingAnswer
from app.passages import Passage

VERDICT_LABELS = {"management": "Management", "leadership": "Leadership", "both": "Both"}


def verdict_label(answer: CoachingAnswer) -> str:
    if answer.verdict is None:
        return "Needs more detail"
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
        lines.append("Questions to think about:")
        lines.extend(f"- {q}" for q in answer.follow_up_questions)
    return "\n".join(lines)
