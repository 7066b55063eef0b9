"""A stored conversation as a Markdown document, with verdicts and quoted sources.

The document is made safe as a whole (``safe_markdown``): opened in any Markdown viewer,
nothing a person typed or a model wrote in it can fetch an image or run a link.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime

from app.passages import Passage
from app.render import answer_header, answer_sources
from app.safe_text import safe_markdown
from app.store import Conversation, StoredMessage

SourceLookup = Callable[[Sequence[str]], list[Passage]]


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _hard_breaks(text: str) -> str:
    """Keep one-item-per-line text on separate lines in Markdown."""
    return "  \n".join(text.splitlines())


def file_name(conversation: Conversation) -> str:
    """A safe download name such as ``coach-our-deadlines-slip.md``."""
    slug = re.sub(r"[^a-z0-9]+", "-", conversation.title.lower()).strip("-")[:40].rstrip("-")
    return f"coach-{slug or 'conversation'}.md"


def conversation_markdown(
    conversation: Conversation,
    messages: Sequence[StoredMessage],
    sources: SourceLookup,
    exported_at: datetime | None = None,
) -> str:
    """The whole conversation: each message, and each answer with its verdict and sources."""
    when = (exported_at or datetime.now()).strftime("%Y-%m-%d %H:%M")
    parts = [
        f"# {conversation.title}",
        f"_Leadership Coach conversation, started "
        f"{conversation.created_at.astimezone().strftime('%Y-%m-%d %H:%M')}, exported {when}._",
    ]
    for m in messages:
        if m.role == "user":
            heading = "## You" + (f" (from {m.source})" if m.source else "")
            parts += [heading, _quote(m.text)]
            if m.status == "failed":
                parts.append(f"_No answer: {m.error or 'the coach failed.'}_")
            continue
        answer = m.answer
        if answer is None:
            continue
        parts += ["## Coach", _hard_breaks(answer_header(answer)), answer.coaching]
        cited = answer_sources(answer, sources(answer.citations))
        if cited:
            parts.append(cited)
        elif answer.follow_up_questions:
            parts.append(
                "Questions to think about:\n"
                + "\n".join(f"- {q}" for q in answer.follow_up_questions)
            )
        if m.feedback and (m.feedback.rating is not None or m.feedback.corrected_verdict):
            parts.append(_feedback_line(m))
    return safe_markdown("\n\n".join(parts).rstrip()) + "\n"


def _feedback_line(m: StoredMessage) -> str:
    fb = m.feedback
    assert fb is not None
    bits = []
    if fb.rating is not None:
        bits.append("thumbs up" if fb.rating else "thumbs down")
    if fb.corrected_verdict:
        bits.append(f"corrected verdict: {fb.corrected_verdict}")
    if fb.comment:
        bits.append(f"comment: {fb.comment}")
    return "_Your feedback: " + "; ".join(bits) + "._"
