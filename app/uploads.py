"""Turns a user's file or typed text into situation text: the one seam for uploads."""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import UploadError
from app.settings import get_settings

SUPPORTED_TYPES = (".txt", ".md", ".pdf", ".docx")
MAX_DOCX_EXPANDED_BYTES = 50 * 1024 * 1024

_SUPPORTED_LIST = ", ".join(SUPPORTED_TYPES[:-1]) + " or " + SUPPORTED_TYPES[-1]
_NEWLINES = re.compile(r"\r\n?|[\v\f\x85\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")  # keeps \t and \n
_SPACES = re.compile(r"[^\S\n\t]+")
_TRAILING = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class ExtractedText:
    """Situation text ready for the coach, with what the user should be told about it."""

    text: str
    source: str
    original_chars: int
    notices: list[str] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return len(self.text) < self.original_chars


def prepare_text(
    text: str, *, max_chars: int | None = None, source: str = "message"
) -> ExtractedText:
    """Clean typed or extracted text and truncate it with a notice; empty text is returned as is."""
    if max_chars is None:
        max_chars = get_settings().max_input_chars
    text = _CONTROL.sub("", _NEWLINES.sub("\n", text))
    text = _SPACES.sub(" ", text)
    text = _BLANK_LINES.sub("\n\n", _TRAILING.sub("\n", text)).strip()
    original = len(text)
    notices = []
    if original > max_chars:
        text = text[:max_chars].rstrip()
        subject = "Your text" if source == "message" else source
        notices.append(
            f"{subject} was {original:,} characters; the coach read the first {max_chars:,}."
        )
    return ExtractedText(text=text, source=source, original_chars=original, notices=notices)


def extract_text(
    name: str, data: bytes, *, max_bytes: int | None = None, max_chars: int | None = None
) -> ExtractedText:
    """Situation text from an uploaded file's name and bytes; UploadError says what went wrong."""
    source = Path(name).name or "The file"
    suffix = _check_file(source, len(data), max_bytes)
    notices: list[str] = []
    if suffix == ".pdf":
        raw = _pdf_text(source, data)
    elif suffix == ".docx":
        raw = _docx_text(source, data)
    else:
        raw = _decode(data, notices)
    result = prepare_text(raw, max_chars=max_chars, source=source)
    if not result.text:
        raise UploadError(
            f"{source} contains no text. Check it is the right file, or type the situation instead."
        )
    return ExtractedText(
        text=result.text,
        source=source,
        original_chars=result.original_chars,
        notices=notices + result.notices,
    )


def read_file(
    path: str | Path, *, max_bytes: int | None = None, max_chars: int | None = None
) -> ExtractedText:
    """Situation text from a file on disk, e.g. ``coach ask --file``."""
    path = Path(path)
    try:
        # Refuse a huge or unsupported file before reading it into memory.
        _check_file(path.name, path.stat().st_size, max_bytes)
        data = path.read_bytes()
    except FileNotFoundError:
        raise UploadError(f"{path} does not exist: check the path and try again.") from None
    except IsADirectoryError:
        raise UploadError(f"{path} is a folder: give the path of a file.") from None
    except OSError as exc:
        raise UploadError(
            f"{path} could not be read ({exc.strerror}): check the file and its permissions."
        ) from None
    return extract_text(path.name, data, max_bytes=max_bytes, max_chars=max_chars)


def _check_file(source: str, size: int, max_bytes: int | None) -> str:
    """The file's lower-case extension, once its type and size are acceptable."""
    suffix = Path(source).suffix.lower()
    if not suffix:
        raise UploadError(f"{source} has no file extension: use {_SUPPORTED_LIST}.")
    if suffix not in SUPPORTED_TYPES:
        raise UploadError(f"Unsupported file type {suffix}: use {_SUPPORTED_LIST}.")
    if max_bytes is None:
        max_bytes = get_settings().max_upload_bytes
    if size > max_bytes:
        raise UploadError(
            f"{source} is {_size(size)}; the limit is {_size(max_bytes)}. "
            "Shorten it or paste the relevant part."
        )
    return suffix


def _size(n: int) -> str:
    for unit, scale in (("MB", 1024**2), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def _decode(data: bytes, notices: list[str]) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Windows Notepad's "Unicode" is UTF-16; the BOM tells us so.
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        notices.append("Some characters were not valid UTF-8 and were replaced with �.")
        return data.decode(encoding, errors="replace")


def _pdf_text(source: str, data: bytes) -> str:
    from pypdf import PdfReader

    damaged = UploadError(
        f"{source} could not be read as a PDF (it may be damaged). "
        "Export it to PDF again, or copy the text into the chat."
    )
    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
    except Exception as exc:
        raise damaged from exc
    if encrypted:
        try:
            opened = reader.decrypt("")
        except Exception as exc:
            # e.g. AES encryption when no crypto library is installed
            raise UploadError(
                f"{source} is encrypted in a way the coach cannot open: "
                "save a copy without encryption and upload that."
            ) from exc
        if not opened:
            raise UploadError(
                f"{source} is password-protected: remove the password and upload it again."
            )
    try:
        text = "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except Exception as exc:
        raise damaged from exc
    if not text.strip():
        raise UploadError(
            f"{source} has no extractable text (it looks like a scanned image). "
            "Copy the text into the chat instead."
        )
    return text


def _docx_text(source: str, data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except Exception as exc:
        raise UploadError(
            f"{source} is not a valid .docx file. Save it from Word as .docx, "
            "or copy the text into the chat."
        ) from exc
    # python-docx reads entries through zipfile, which stops at each declared size.
    if expanded > MAX_DOCX_EXPANDED_BYTES:
        raise UploadError(
            f"{source} expands to more than {MAX_DOCX_EXPANDED_BYTES // 1024**2} MB when "
            "unpacked, too much to read safely. Copy the relevant part into the chat instead."
        )
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
        return "\n".join(_docx_blocks(document))
    except Exception as exc:
        raise UploadError(
            f"{source} could not be read as a Word document (it may be damaged). "
            "Save it from Word as .docx again, or copy the text into the chat."
        ) from exc


def _docx_blocks(container: Any) -> Iterator[str]:
    """Paragraphs and table rows (cells joined by " | ") in document order, nested tables too."""
    from docx.table import Table

    for block in container.iter_inner_content():
        if not isinstance(block, Table):
            yield block.text
            continue
        for row in block.rows:
            cells: list[str] = []
            for cell in row.cells:
                text = "\n".join(_docx_blocks(cell)).strip()
                # A merged cell appears once per grid column it spans.
                if text and (not cells or cells[-1] != text):
                    cells.append(text)
            yield " | ".join(cells)
