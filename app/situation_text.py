"""Situation text, typed or taken from a file: checked to be text, cleaned, capped in length."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from app.errors import InputError, UploadError
from app.settings import get_settings

SUPPORTED_TYPES = (".txt", ".md", ".pdf", ".docx")
SUPPORTED_LIST = ", ".join(SUPPORTED_TYPES[:-1]) + " or " + SUPPORTED_TYPES[-1]

# Bidirectional overrides, embeddings, isolates and marks, and zero-width characters: they
# make text display in another order than it is stored (U+202E shows "txt.exe" as
# "exe.txt"), or hide characters from a reader.
INVISIBLE = re.compile(r"[\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")  # undecodable bytes in argv (surrogateescape)
_NEWLINES = re.compile(r"\r\n?|[\v\f\x85\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # keeps \t and \n
_SPACES = re.compile(r"[^\S\n\t]+")
_TRAILING = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")

# What text is not: control characters other than tabs and line breaks (binary data has
# one in six to eight), or characters that could not be decoded (about two in five). Text
# with a few of either, a coloured log line or a Latin-1 accent, is still read.
_BINARY_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_NOT_TEXT_MIN = 8
_NOT_TEXT_CONTROL_SHARE = 0.10
_NOT_TEXT_REPLACED_SHARE = 0.25


@dataclass(frozen=True)
class ExtractedText:
    """Situation text ready for the coach, with what the user should be told about it.

    ``original_chars`` is the length of the whole cleaned text, or None when reading
    stopped early because the source was longer than the coach reads.
    """

    text: str
    source: str
    original_chars: int | None
    notices: list[str] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return self.original_chars is None or len(self.text) < self.original_chars


def strip_invisible(text: str) -> str:
    """``text`` without bidirectional controls and zero-width characters, e.g. a file name."""
    return INVISIBLE.sub("", text)


def clean_text(text: str) -> str:
    """Typed or extracted text with invisible and control characters removed, spaces tidied.

    Never fails, so a typed message can be cleaned and saved before anything else happens.
    """
    text = strip_invisible(_SURROGATES.sub("\ufffd", text))
    text = _CONTROL.sub("", _NEWLINES.sub("\n", text))
    text = _SPACES.sub(" ", text)
    return _BLANK_LINES.sub("\n\n", _TRAILING.sub("\n", text)).strip()


def not_text_error(source: str) -> InputError:
    """The one sentence for content that is not text (binary data, undecodable bytes)."""
    if source == "message":
        return InputError(
            "Your message does not look like text: type or paste the situation written out."
        )
    return UploadError(
        f"{source} does not look like a text file: upload a {SUPPORTED_LIST} "
        "with the situation written out."
    )


def check_is_text(text: str, source: str = "message") -> None:
    """Refuse text that is mostly control characters or undecodable bytes."""
    if not text:
        return
    controls = len(text) - len(_BINARY_CONTROL.sub("", text))
    replaced = text.count("\ufffd") + len(text) - len(_SURROGATES.sub("", text))
    if (controls >= _NOT_TEXT_MIN and controls > _NOT_TEXT_CONTROL_SHARE * len(text)) or (
        replaced >= _NOT_TEXT_MIN and replaced > _NOT_TEXT_REPLACED_SHARE * len(text)
    ):
        raise not_text_error(source)


def prepare_text(
    text: str,
    *,
    max_chars: int | None = None,
    source: str = "message",
    complete: bool = True,
) -> ExtractedText:
    """Check, clean and truncate typed or extracted text; empty text is returned as is.

    Every situation goes through here, typed or uploaded. ``complete=False`` says the
    source went on beyond ``text`` (reading stopped at the limit), so the user is told.
    InputError (UploadError for a file) says when the text is not text at all.
    """
    if max_chars is None:
        max_chars = get_settings().max_input_chars
    check_is_text(text, source)
    text = clean_text(text)
    original: int | None = len(text)
    subject = "Your text" if source == "message" else source
    notices = []
    if len(text) > max_chars:
        text = text[:max_chars].rstrip()
        notices.append(
            f"{subject} was {original:,} characters; the coach read the first {max_chars:,}."
        )
    if not complete:
        read = min(original, max_chars)
        notices = [
            f"{subject} is too long to read in full; the coach read the first {read:,} characters."
        ]
        original = None
    return ExtractedText(text=text, source=source, original_chars=original, notices=notices)
