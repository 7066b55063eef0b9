"""The values the LLM engine puts into a prompt: passages, history and language, made inert.

History is rendered into the prompt's ``history`` variable, bounded by
``settings.history_chars``: the first thing the person said (the original situation)
is kept, then the newest turns that fit. The delimiter marks ``<<<`` and ``>>>`` are
neutralised in everything the person or the knowledge files supply, so a situation
cannot close its own ``SITUATION>>>`` block and pose as instructions.
"""

from __future__ import annotations

import re

from app.answer import Turn
from app.passages import FOCUS_NAMES, ScoredPassage

# fmt: off
LANGUAGE_NAMES = {
    "ar": "Arabic", "cs": "Czech", "da": "Danish", "de": "German", "el": "Greek",
    "en": "English", "es": "Spanish", "fi": "Finnish", "fr": "French", "he": "Hebrew",
    "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "ko": "Korean", "nb": "Norwegian", "nl": "Dutch", "no": "Norwegian", "pl": "Polish",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sv": "Swedish", "th": "Thai",
    "tr": "Turkish", "uk": "Ukrainian", "vi": "Vietnamese", "zh": "Chinese",
}
# fmt: on


def neutralise(text: str) -> str:
    """Stop data from closing or opening a ``<<<NAME ... NAME>>>`` block."""
    return text.replace("<<<", "‹‹‹").replace(">>>", "›››")


def language_name(code: str) -> str:
    """'es' -> 'Spanish'; anything unknown is passed through as given."""
    base = re.split(r"[-_]", code.strip())[0].lower()
    return LANGUAGE_NAMES.get(base, code.strip() or "English")


def render_passages(passages: list[ScoredPassage]) -> str:
    """The retrieved passages as an id-tagged list for the prompt."""
    if not passages:
        return "(no passages were retrieved)"
    blocks = []
    for scored in passages:
        p = scored.passage
        where = p.section + (f"; {p.code} {FOCUS_NAMES[p.code]}" if p.code else "")
        blocks.append(f"[{p.id}] ({where})\n{neutralise(p.text.strip())}")
    return "\n\n".join(blocks)


def render_history(turns: list[Turn], limit: int) -> str:
    """Earlier turns within about ``limit`` characters: the original situation (the first
    turn, when the person wrote it), then as many of the newest turns as fit."""
    lines = [
        (t.role, f"{'Coach' if t.role == 'assistant' else 'Person'}: {neutralise(t.text.strip())}")
        for t in turns
        if t.text.strip()
    ]
    if not lines or limit <= 0:
        return "(none)"
    joined = "\n\n".join(line for _, line in lines)
    if len(joined) <= limit:
        return joined
    budget = limit - 40  # room for the "omitted" marker
    head: list[str] = []
    rest = [line for _, line in lines]
    if lines[0][0] != "assistant":
        first = rest.pop(0)
        head = [first if len(first) <= limit // 2 else first[: limit // 2 - 1] + "…"]
        budget -= len(head[0]) + 2
    kept: list[str] = []
    for line in reversed(rest):
        if len(line) + 2 > budget:
            if not kept and budget > 20:
                kept.append("…" + line[-(budget - 3) :])
            break
        kept.append(line)
        budget -= len(line) + 2
    omitted = len(rest) - len(kept)
    marker = [f"[{omitted} earlier turn(s) omitted]"] if omitted else []
    return "\n\n".join(head + marker + kept[::-1])
