"""Text mechanics for the situation reader: tidying, sentences, clauses and number words."""

from __future__ import annotations

import re
from typing import NamedTuple

MAX_CHARS = 20_000  # the coach's own input limit (Settings.max_input_chars); longer is cut
MAX_CLAUSE_CHARS = 240
# Longer "sentences" (a text without full stops, a pasted log) are cut into pieces this long,
# so the work per sentence, and so per text, stays in proportion to the text's length.
MAX_SENTENCE_CHARS = 600

_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "\u00a0": " "})
_SPACES = re.compile(r"[^\S\n]+")
_LINE_BREAKS = re.compile(r"\s*\n\s*")
# A sentence ends at ., ! or ? (with closing quotes or brackets) before a space, or at a
# line break (people write one point per line), or run into the next ("nurses.I can't").
_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s|$)|\n|(?<=[a-z])[.!?]+(?=[A-Z](?:[a-z]|\s|'))")
_NEXT_CHAR = re.compile(r"\s*(\S)")
_INITIALS = re.compile(r"(?:\w\.)+\w?$")
# Where a clause starts or stops inside a sentence.
_CLAUSE_BREAK = re.compile(
    r"[,;:()]|\s[-–—]\s|\b(?:but|and|so|although|though|while|whereas|however|which|then|yet)\b",
    re.IGNORECASE,
)
_TRIM = re.compile(r"^[\s,;:()\"'-]+|[\s,;:()\"'.!-]+$")


class Sentence(NamedTuple):
    """One sentence of the text, where it starts, and the same in lower case (same length:
    patterns are matched on ``lower``, and what they find is cut from ``text``)."""

    start: int
    text: str
    lower: str


def tidy(text: str, max_chars: int = MAX_CHARS) -> str:
    """``text`` with typographic quotes made plain and runs of spaces made one, cut to
    ``max_chars``; line breaks are kept because they end sentences."""
    text = text[:max_chars].translate(_QUOTES)
    return _LINE_BREAKS.sub("\n", _SPACES.sub(" ", text)).strip()


def sentences(text: str, abbreviations: frozenset[str]) -> list[Sentence]:
    """The sentences of tidied ``text``. A full stop after an abbreviation ("e.g.", "Mr.")
    or an initial, or before a lower-case word, does not end one."""
    found: list[Sentence] = []
    start = 0
    for end_mark in _END.finditer(text):
        mark = end_mark.group()
        if mark.rstrip("\"')]") == ".":
            space = text.rfind(" ", start, end_mark.start())
            token = text[space + 1 if space >= 0 else start : end_mark.start()]
            token = token.lower().lstrip("(\"'")
            after = _NEXT_CHAR.match(text, end_mark.end())
            following = after.group(1) if after else ""
            if (
                token in abbreviations
                or (len(token) == 1 and token.isalpha())
                or _INITIALS.fullmatch(token)
                or following.islower()
            ):
                continue
        _add(found, text, start, end_mark.end())
        start = end_mark.end()
    _add(found, text, start, len(text))
    return found


def _add(found: list[Sentence], text: str, start: int, end: int) -> None:
    while end - start > MAX_SENTENCE_CHARS:  # no sentence is this long: cut it at a space
        cut = text.rfind(" ", start, start + MAX_SENTENCE_CHARS)
        cut = cut if cut > start else start + MAX_SENTENCE_CHARS
        _add(found, text, start, cut)
        start = cut
    piece = text[start:end]
    stripped = piece.strip()
    if any(c.isalnum() for c in stripped):
        found.append(Sentence(start + piece.index(stripped[0]), stripped, lower(stripped)))


def lower(text: str) -> str:
    """``text`` in lower case, character for character (a few letters, like "İ", lower to
    two characters; those are left as they are so offsets stay the same)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def clause_around(sentence: str, start: int, end: int) -> str:
    """The clause of ``sentence`` that holds ``sentence[start:end]``, trimmed."""
    left = 0
    for brk in _CLAUSE_BREAK.finditer(sentence, 0, start):
        left = brk.end()
    right_break = _CLAUSE_BREAK.search(sentence, end)
    right = right_break.start() if right_break else len(sentence)
    clause = _TRIM.sub("", sentence[left:right])
    if len(clause) > MAX_CLAUSE_CHARS:
        clause = clause[:MAX_CLAUSE_CHARS].rsplit(" ", 1)[0] + "…"
    return clause


def number_value(text: str, numbers: dict[str, int]) -> int | None:
    """The value of a number written in digits or words ("8", "eight", "twenty-five",
    "a dozen"), or None."""
    word = text.strip().lower()
    if word.isdigit():
        return int(word)
    if word in numbers:
        return numbers[word]
    parts = re.split(r"[- ]", word)
    if len(parts) == 2 and parts[0] in numbers and parts[1] in numbers:
        tens, units = numbers[parts[0]], numbers[parts[1]]
        if tens % 10 == 0 and 20 <= tens <= 90 and 1 <= units <= 9:
            return tens + units
    return None


def one_line(text: str) -> str:
    """``text`` on one line, trimmed of punctuation at its ends."""
    return _TRIM.sub("", " ".join(text.split()))
