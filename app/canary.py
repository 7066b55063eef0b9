"""Keeping the system prompt's canary out of every answer, in any spelling or encoding, as it streams.

A prompt carries a canary (``CANARY-LC-023ebb4e389023db``); a model that repeats it is
leaking its instructions. The canary is found however it is written: in any case, with
any whitespace or punctuation between its characters (``c a n a r y - l c …``), as its
random part alone, and encoded as hex, base64 or url-safe base64 (also inside a longer
encoded text). ``CanaryFilter`` removes it from a stream while holding back only the
trailing characters that could still become the start of one; ``without_canary`` drops
the lines it touches from a finished text.
"""

from __future__ import annotations

import base64
import re
import string
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

WITHHELD = "[withheld]"
_BREAK = "\0"  # a character that can be in no canary form, so a match cannot span it
_MIN_FORM = 8  # shorter encoded fragments would match ordinary text
_MIN_PART = 8  # a canary's random part, e.g. 023ebb4e389023db, is a form of its own

# Cyrillic and Greek letters that look like Latin ones (after case folding), so a canary
# spelt with them is still found.
_LOOKALIKES = str.maketrans(
    dict(zip("авеніјкмопрсѕтухԁαβεζηικμνορτυχ", "abehijkmoppcstyxdabezhikmnoptyx", strict=True))
)
_B64 = frozenset(string.ascii_letters + string.digits + "+/")
_B64_URL = frozenset(string.ascii_letters + string.digits + "-_")


def _folded(ch: str) -> str:
    return unicodedata.normalize("NFKC", ch).casefold().translate(_LOOKALIKES)


@lru_cache(maxsize=8192)  # a pure function of one character: text is read char by char
def _letters(ch: str) -> str:
    """What one character adds to the case-folded letters-and-digits reading."""
    out = []
    for c in _folded(ch):
        if c.isascii() and c.isalnum():
            out.append(c)
        elif c.isalnum():
            out.append(_BREAK)
    return "".join(out)


def _base64_of(alphabet: frozenset[str]) -> Callable[[str], str]:
    def read(ch: str) -> str:
        out = []
        for c in unicodedata.normalize("NFKC", ch):
            if c in alphabet:
                out.append(c)
            elif c.isalnum():
                out.append(_BREAK)
        return "".join(out)

    return lru_cache(maxsize=8192)(read)


@dataclass(frozen=True)
class _Reading:
    """One way of reading text (letters only, or base64 characters) and the forms to find in it."""

    read: Callable[[str], str]
    forms: tuple[str, ...]
    prefixes: frozenset[str]  # every proper prefix of every form, to know what to hold back

    def project(self, text: str) -> tuple[str, list[int]]:
        """The reading of ``text``, and for each of its characters the index it came from."""
        chars: list[str] = []
        where: list[int] = []
        for i, ch in enumerate(text):
            got = self.read(ch)
            chars.append(got)
            where.extend([i] * len(got))
        return "".join(chars), where


def _variants(canary: str) -> list[str]:
    """The canary, its random part, each as written, in lower and in upper case."""
    parts = [canary]
    longest = max(re.findall(r"[A-Za-z0-9]+", canary), key=len, default="")
    if len(longest) >= _MIN_PART and longest != canary:
        parts.append(longest)
    return list(dict.fromkeys(v for p in parts for v in (p, p.lower(), p.upper())))


def _base64_cores(data: bytes, encode: Callable[[bytes], bytes]) -> list[str]:
    """The base64 characters fixed by ``data`` alone, at each of the three byte offsets it
    can have inside a longer encoded text."""
    cores = []
    for offset in range(3):
        encoded = encode(b"\0" * offset + data).decode()
        start = -(-8 * offset // 6)
        end = 8 * (offset + len(data)) // 6
        cores.append(encoded[start:end])
    return cores


def _reading(read: Callable[[str], str], forms: Iterable[str], always: str = "") -> _Reading:
    kept = [always] if always else []
    kept += [f for f in forms if len(f) >= _MIN_FORM]
    kept = list(dict.fromkeys(kept))
    return _Reading(read, tuple(kept), frozenset(f[:k] for f in kept for k in range(1, len(f))))


def _letters_of(text: str) -> str:
    return "".join(_letters(ch) for ch in text)


@lru_cache(maxsize=16)
def _readings(canary: str) -> tuple[_Reading, ...]:
    """How to read text to find ``canary``, with the forms of it each reading can show."""
    variants = [v.encode() for v in _variants(canary)]
    letters = [_letters_of(v.decode()) for v in variants] + [v.hex() for v in variants]
    standard = [c for v in variants for c in _base64_cores(v, base64.b64encode)]
    url_safe = [c for v in variants for c in _base64_cores(v, base64.urlsafe_b64encode)]
    return (
        # The canary itself is always looked for, however short it is.
        _reading(_letters, letters, always=_letters_of(canary)),
        _reading(_base64_of(_B64), standard),
        _reading(_base64_of(_B64_URL), url_safe),
    )


def canary_spans(text: str, canary: str | None) -> list[tuple[int, int]]:
    """Where ``text`` holds the canary in any of its forms: sorted, merged (start, end) pairs."""
    if not canary:
        return []
    spans = []
    for reading in _readings(canary):
        projected, where = reading.project(text)
        for form in reading.forms:
            at = projected.find(form)
            while at >= 0:
                spans.append((where[at], where[at + len(form) - 1] + 1))
                at = projected.find(form, at + 1)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def has_canary(text: str, canary: str | None) -> bool:
    return bool(canary_spans(text, canary))


def hold_from(text: str, canary: str | None) -> int:
    """The index from which the end of ``text`` could still grow into the canary
    (``len(text)`` when it cannot)."""
    cut = len(text)
    if not canary:
        return cut
    for reading in _readings(canary):
        projected, where = reading.project(text)
        longest = max((len(f) for f in reading.forms), default=1) - 1
        for k in range(min(len(projected), longest), 0, -1):
            if projected[-k:] in reading.prefixes:
                cut = min(cut, where[len(projected) - k])
                break
    return cut


def _replaced(text: str, spans: list[tuple[int, int]], by: str) -> str:
    out, at = [], 0
    for start, end in spans:
        out += [text[at:start], by]
        at = end
    out.append(text[at:])
    return "".join(out)


def without_canary(text: str, canary: str | None) -> tuple[str, bool]:
    """``text`` without every line that holds the canary, and whether it held it.

    Repeated until none is left: dropping a line can join two halves of another.
    """
    found = False
    while spans := canary_spans(text, canary):
        found = True
        starts = [0, *(i + 1 for i, ch in enumerate(text) if ch == "\n")]
        lines = text.split("\n")
        touched = {
            n
            for start, end in spans
            for n, line_start in enumerate(starts)
            if line_start < end and start < line_start + len(lines[n]) + 1
        }
        text = "\n".join(line for n, line in enumerate(lines) if n not in touched)
    return text, found


class CanaryFilter:
    """Streamed text in, the same text without the canary out, as early as is safe.

    ``feed`` returns what can be shown now; a tail that could be the start of the
    canary waits for the next chunk, and ``flush`` returns what is left at the end.
    A canary found is replaced by ``[withheld]`` and ``found`` becomes True.
    """

    def __init__(self, canary: str | None) -> None:
        self.canary = canary
        self.found = False
        self._pending = ""

    def feed(self, chunk: str) -> str:
        if not self.canary:
            return chunk
        text = self._clean(self._pending + chunk)
        cut = hold_from(text, self.canary)
        self._pending = text[cut:]
        return text[:cut]

    def flush(self) -> str:
        text, self._pending = self._clean(self._pending), ""
        return text

    def filter(self, chunks: Iterable[str]) -> Iterator[str]:
        """Every chunk filtered, then what was held back; empty pieces are skipped."""
        for chunk in chunks:
            if out := self.feed(chunk):
                yield out
        if out := self.flush():
            yield out

    def _clean(self, text: str) -> str:
        spans = canary_spans(text, self.canary)
        if not spans:
            return text
        self.found = True
        return _replaced(text, spans, WITHHELD)
