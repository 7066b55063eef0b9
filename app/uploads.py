"""Turns a user's file (or piped input) into situation text: the one seam for uploads."""

from __future__ import annotations

import codecs
import io
import posixpath
import re
import zipfile
from pathlib import Path
from typing import BinaryIO
from xml.parsers import expat

from app.errors import InputError, UploadError
from app.settings import get_settings
from app.situation_text import (
    SUPPORTED_LIST,
    SUPPORTED_TYPES,
    ExtractedText,
    clean_text,
    not_text_error,
    prepare_text,
)

__all__ = [
    "MAX_DOCX_EXPANDED_BYTES",
    "SUPPORTED_TYPES",
    "ExtractedText",
    "extract_text",
    "prepare_text",
    "read_file",
    "read_piped",
    "size_label",
]

MAX_DOCX_EXPANDED_BYTES = 50 * 1024 * 1024
PIPED = "The piped input"
# Read a Word document's XML this much at a time. Reading stops once more visible characters
# than the input limit are collected (the rest would be cut anyway), or, for text that is
# mostly spaces and tabs, once this many times the limit is held.
_XML_CHUNK = 64 * 1024
_RAW_TEXT_FACTOR = 10


def extract_text(
    name: str, data: bytes, *, max_bytes: int | None = None, max_chars: int | None = None
) -> ExtractedText:
    """Situation text from an uploaded file's name and bytes; UploadError says what went wrong."""
    source = clean_text(Path(name).name) or "The file"
    suffix = _check_file(source, len(data), max_bytes)
    if max_chars is None:
        max_chars = get_settings().max_input_chars
    notices: list[str] = []
    complete = True
    if suffix == ".pdf":
        raw, complete = _pdf_text(source, data, max_chars)
    elif suffix == ".docx":
        raw, complete = _docx_text(source, data, max_chars)
    else:
        raw = _decode(data, source, notices)
    result = prepare_text(raw, max_chars=max_chars, source=source, complete=complete)
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
        _check_file(clean_text(path.name), path.stat().st_size, max_bytes)
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


def read_piped(
    stream: BinaryIO, *, max_bytes: int | None = None, max_chars: int | None = None
) -> ExtractedText:
    """Situation text piped in (``coach ask -``), read as a .txt file would be; may be empty."""
    if max_bytes is None:
        max_bytes = get_settings().max_upload_bytes
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadError(
            f"{PIPED} is more than {size_label(max_bytes)}; the limit is "
            f"{size_label(max_bytes)}. Shorten it or pipe in the relevant part."
        )
    notices: list[str] = []
    try:
        result = prepare_text(_decode(data, PIPED, notices), max_chars=max_chars, source=PIPED)
    except InputError:
        raise UploadError(
            f"{PIPED} does not look like text: pipe in the situation written out, "
            f"or give a {SUPPORTED_LIST} file with --file."
        ) from None
    return ExtractedText(
        text=result.text,
        source=PIPED,
        original_chars=result.original_chars,
        notices=notices + result.notices,
    )


def size_label(n: int) -> str:
    """Bytes as people say them: 5 MB, 512 KB (decimal units, as a file manager shows them)."""
    for unit, scale in (("MB", 1000**2), ("KB", 1000)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n:,} bytes"


def too_large_message(source: str, size: int, max_bytes: int) -> str:
    """The one sentence for a file over the size limit, in the CLI and in the browser."""
    size_text, limit_text = size_label(size), size_label(max_bytes)
    if size_text == limit_text:  # 5,000,001 bytes is "5 MB" too
        size_text, limit_text = f"{size:,} bytes", f"{limit_text} ({max_bytes:,} bytes)"
    return f"{source} is {size_text}; the limit is {limit_text}. Shorten it or paste the relevant part."


def _check_file(source: str, size: int, max_bytes: int | None) -> str:
    """The file's lower-case extension, once its type and size are acceptable."""
    suffix = Path(source).suffix.lower()
    if not suffix:
        raise UploadError(f"{source} has no file extension: use {SUPPORTED_LIST}.")
    if suffix not in SUPPORTED_TYPES:
        raise UploadError(f"Unsupported file type {suffix}: use {SUPPORTED_LIST}.")
    if max_bytes is None:
        max_bytes = get_settings().max_upload_bytes
    if size > max_bytes:
        raise UploadError(too_large_message(source, size, max_bytes))
    return suffix


def _decode(data: bytes, source: str, notices: list[str]) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Windows Notepad's "Unicode" is UTF-16; the BOM tells us so.
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        notices.append("Some characters were not valid UTF-8 and were replaced with �.")
        text = data.decode(encoding, errors="replace")
    if "\x00" in text:  # no text file has a NUL; every program and most images do
        raise not_text_error(source)
    return text


def _pdf_text(source: str, data: bytes, max_chars: int) -> tuple[str, bool]:
    """The PDF's text page by page, up to the page where ``max_chars`` is reached.

    Returns the text and whether every page was read.
    """
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
    pages: list[str] = []
    read = 0
    complete = True
    try:
        total = len(reader.pages)
        for number in range(total):
            page = reader.pages[number].extract_text() or ""
            pages.append(page)
            read += len(clean_text(page)) + 2  # pages are joined by a blank line
            if read > max_chars:
                complete = number == total - 1
                break
    except Exception as exc:
        raise damaged from exc
    text = "\n\n".join(pages)
    if not text.strip():
        raise UploadError(
            f"{source} has no extractable text (it looks like a scanned image). "
            "Copy the text into the chat instead."
        )
    return text, complete


def _docx_text(source: str, data: bytes, max_chars: int) -> tuple[str, bool]:
    """The document's paragraphs and table rows, streamed until ``max_chars`` is passed.

    Returns the text and whether the whole document was read.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        expanded = sum(info.file_size for info in archive.infolist())
    except Exception as exc:
        raise UploadError(
            f"{source} is not a valid .docx file. Save it from Word as .docx, "
            "or copy the text into the chat."
        ) from exc
    # zipfile stops reading each entry at its declared size, so this bounds the work.
    if expanded > MAX_DOCX_EXPANDED_BYTES:
        raise UploadError(
            f"{source} expands to more than {MAX_DOCX_EXPANDED_BYTES // 1024**2} MB when "
            "unpacked, too much to read safely. Copy the relevant part into the chat instead."
        )
    reader = _DocxReader(max_chars)
    try:
        with archive, archive.open(_main_document(archive)) as xml:
            while not reader.full and (chunk := xml.read(_XML_CHUNK)):
                reader.feed(chunk)
            if not reader.full:
                reader.feed(b"", final=True)
    except Exception as exc:
        raise UploadError(
            f"{source} could not be read as a Word document (it may be damaged). "
            "Save it from Word as .docx again, or copy the text into the chat."
        ) from exc
    return "\n".join(reader.finish()), not reader.full


def _xml_parser() -> expat.XMLParserType:
    """An expat parser with namespaces that refuses any DOCTYPE (so no entity expansion)."""
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True

    def no_doctype(*_: object) -> None:
        raise ValueError("a DOCTYPE has no place in a Word document")

    parser.StartDoctypeDeclHandler = no_doctype
    return parser


def _main_document(archive: zipfile.ZipFile) -> str:
    """The path of the main document part, from the package relationships (usually
    word/document.xml; Word online sometimes writes word/document2.xml)."""
    try:
        info = archive.getinfo("_rels/.rels")
    except KeyError:
        return "word/document.xml"
    if info.file_size > 1024 * 1024:
        raise ValueError("oversized package relationships")
    targets: list[str] = []

    def relationship(name: str, attrs: dict[str, str]) -> None:
        if name.endswith(" Relationship") and attrs.get("Type", "").endswith("/officeDocument"):
            targets.append(attrs.get("Target", ""))

    parser = _xml_parser()
    parser.StartElementHandler = relationship
    parser.Parse(archive.read(info), True)
    if not targets:
        return "word/document.xml"
    return posixpath.normpath(targets[0].lstrip("/"))


_WORD = (
    "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    "http://purl.oclc.org/ooxml/wordprocessingml/main",  # Strict Open XML
)
_COMPATIBILITY = "http://schemas.openxmlformats.org/markup-compatibility/2006"
_RUN_CHARACTERS = {"tab": "\t", "ptab": "\t", "cr": "\n", "noBreakHyphen": "-"}
# Deleted or moved-away revisions are left out, and so are text boxes (python-docx leaves
# them out too, and Word writes each twice: as a drawing and as a fallback).
_SKIPPED = {"del", "moveFrom", "txbxContent", "Fallback"}
# Expat's "namespace local" element names, to the local names the reader acts on; every
# other element costs one dictionary miss.
_ELEMENTS = {
    f"{namespace} {local}": local
    for namespace in _WORD
    for local in ("p", "r", "t", "br", "tr", "tc", *_RUN_CHARACTERS, *_SKIPPED)
} | {f"{_COMPATIBILITY} Fallback": "Fallback"}
_WHITESPACE = re.compile(r"\s+")


class _Enough(Exception):
    """Raised inside the parser once enough text is collected."""


class _DocxReader:
    """A Word document's text as its XML streams past, read as python-docx reads it.

    Paragraphs and table rows in order, one per line; a row's non-empty cells joined by
    " | ", with a nested table inside its cell. Memory stays bounded: the XML is never held
    as a tree, and reading stops once more than ``max_chars`` visible characters are
    collected (``full`` then says the document went on).
    """

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.visible = 0
        self.read = 0
        self.full = False
        self.blocks: list[str] = []
        self._open: list[tuple[str, list[str]]] = []  # ("row", cells) or ("cell", blocks)
        self._paragraph: list[str] | None = None
        self._paragraph_depth = 0
        self._run_depth = 0
        self._skip_depth = 0
        self._in_text = False
        self._parser = _xml_parser()
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end
        self._parser.CharacterDataHandler = self._characters

    def feed(self, chunk: bytes, final: bool = False) -> None:
        try:
            self._parser.Parse(chunk, final)
        except _Enough:
            self.full = True

    def finish(self) -> list[str]:
        """Every block read, with an open paragraph, cell or row closed where reading stopped."""
        if self._paragraph is not None:
            self._add_block("".join(self._paragraph))
            self._paragraph = None
        while self._open:
            if self._open[-1][0] == "cell":
                self._end_cell()
            else:
                self._end_row()
        return self.blocks

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        if self._skip_depth:
            self._skip_depth += 1
            return
        local = _ELEMENTS.get(name)
        if local is None:
            return
        if local in _SKIPPED:
            self._skip_depth = 1
        elif local == "p":
            self._paragraph_depth += 1
            if self._paragraph is None:
                self._paragraph = []
        elif local == "r":
            self._run_depth += 1
        elif local == "tr":
            self._open.append(("row", []))
        elif local == "tc":
            self._open.append(("cell", []))
        elif self._run_depth and self._paragraph is not None:
            if local == "t":
                self._in_text = True
            elif local == "br":
                kind = next((v for k, v in attrs.items() if k.endswith(" type")), "textWrapping")
                self._collect("\n" if kind == "textWrapping" else "")
            else:
                self._collect(_RUN_CHARACTERS[local])

    def _end(self, name: str) -> None:
        if self._skip_depth:
            self._skip_depth -= 1
            return
        local = _ELEMENTS.get(name)
        if local == "t":
            self._in_text = False
        elif local == "r":
            self._run_depth = max(0, self._run_depth - 1)
        elif local == "p" and self._paragraph_depth:
            self._paragraph_depth -= 1
            if not self._paragraph_depth and self._paragraph is not None:
                self._add_block("".join(self._paragraph))
                self._paragraph = None
        elif local == "tc":
            self._end_cell()
        elif local == "tr":
            self._end_row()

    def _characters(self, data: str) -> None:
        if self._in_text and not self._skip_depth:
            self._collect(data)

    def _collect(self, text: str) -> None:
        if self._paragraph is None or not text:
            return
        self._paragraph.append(text)
        self.read += len(text)
        self.visible += len(_WHITESPACE.sub("", text))
        if self.visible > self.max_chars or self.read > _RAW_TEXT_FACTOR * self.max_chars:
            raise _Enough

    def _add_block(self, text: str) -> None:
        """A finished paragraph or row, into its table cell or the document."""
        blocks = next((items for kind, items in reversed(self._open) if kind == "cell"), None)
        if blocks is None:
            blocks = self.blocks
        if text or (blocks and blocks[-1]):  # one empty line is enough
            blocks.append(text)

    def _end_cell(self) -> None:
        if not self._open or self._open[-1][0] != "cell":
            return
        text = "\n".join(self._open.pop()[1]).strip()
        if text and self._open and self._open[-1][0] == "row":
            self._open[-1][1].append(text)

    def _end_row(self) -> None:
        if not self._open or self._open[-1][0] != "row":
            return
        self._add_block(" | ".join(self._open.pop()[1]))
