"""Uploads: real small files in, situation text or a user-facing error out."""

import io
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import docx
import pypdf
import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from app.errors import UploadError
from app.settings import get_settings
from app.uploads import SUPPORTED_TYPES, extract_text, prepare_text, read_file

ROOT = Path(__file__).resolve().parent.parent
SITUATION = "My team missed the release date twice.\nHow should I talk to them about it?"


def make_pdf(text: str | None = None, *, rectangle: bool = False) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    if text is not None:
        pdf.set_font("helvetica", size=12)
        pdf.multi_cell(0, 10, text=text)
    if rectangle:
        pdf.rect(20, 20, 80, 40, style="F")
    return bytes(pdf.output())


def encrypt_pdf(data: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(*paragraphs: str, table: list[list[str]] | None = None) -> bytes:
    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, text in enumerate(row):
                grid.cell(r, c).text = text
        grid.cell(0, 0).merge(grid.cell(0, len(table[0]) - 1))
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def make_zip_bomb(uncompressed_mb: int = 60) -> bytes:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("word/document.xml", "w", force_zip64=True) as entry,
    ):
        chunk = b"\0" * 1024 * 1024
        for _ in range(uncompressed_mb):
            entry.write(chunk)
    return out.getvalue()


def random_bytes(n: int = 2000) -> bytes:
    return random.Random(0).randbytes(n)


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("notes.txt", SITUATION.encode(), SITUATION),
        ("NOTES.MD", b"# Situation\n\n" + SITUATION.encode(), "# Situation\n\n" + SITUATION),
        ("bom.txt", b"\xef\xbb\xbf" + SITUATION.encode(), SITUATION),
        ("notepad.txt", SITUATION.encode("utf-16"), SITUATION),
        ("windows.txt", b"Line one\r\nLine two\x00\x07\r\n", "Line one\nLine two"),
        ("situation.pdf", make_pdf(SITUATION), SITUATION),
        ("owner-only.pdf", encrypt_pdf(make_pdf(SITUATION), user_password=""), SITUATION),
    ],
)
def test_extracts_text(name: str, data: bytes, expected: str) -> None:
    result = extract_text(name, data)
    assert result.text == expected
    assert result.source == name
    assert result.notices == []
    assert not result.truncated


def test_docx_paragraphs_and_table_in_order() -> None:
    data = make_docx(
        "My new report keeps going over my head.",
        "",
        table=[["Team", ""], ["Ana", "Lead"], ["Bo", "Engineer"]],
    )
    result = extract_text("1-1 notes.docx", data)
    assert result.text == (
        "My new report keeps going over my head.\n\nTeam\nAna | Lead\nBo | Engineer"
    )


def test_non_utf8_text_is_replaced_with_a_notice() -> None:
    result = extract_text("latin.txt", "Café réunion".encode("latin-1"))
    assert result.text == "Caf� r�union"
    assert result.notices == ["Some characters were not valid UTF-8 and were replaced with �."]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("budget.xls", b"x", "Unsupported file type .xls: use .txt, .md, .pdf or .docx."),
        ("BUDGET.XLS", b"x", "Unsupported file type .xls: use .txt, .md, .pdf or .docx."),
        ("README", b"x", "README has no file extension: use .txt, .md, .pdf or .docx."),
        ("empty.txt", b"", "empty.txt contains no text."),
        ("blank.md", b" \n\t\r\n\x00 ", "blank.md contains no text."),
        ("random.pdf", random_bytes(), "random.pdf could not be read as a PDF (it may be damaged)"),
        ("text.pdf", b"%PDF-1.4\nnot really", "text.pdf could not be read as a PDF"),
        (
            "locked.pdf",
            encrypt_pdf(make_pdf(SITUATION), user_password="secret"),
            "locked.pdf is password-protected: remove the password and upload it again.",
        ),
        ("blank.pdf", make_pdf(), "blank.pdf has no extractable text (it looks like a scanned"),
        ("scan.pdf", make_pdf(rectangle=True), "scan.pdf has no extractable text"),
        ("random.docx", random_bytes(), "random.docx is not a valid .docx file."),
        ("plain.docx", SITUATION.encode(), "plain.docx is not a valid .docx file."),
        (
            "other.docx",
            make_zip({"notes.txt": b"hello"}),
            "other.docx could not be read as a Word document (it may be damaged)",
        ),
        ("empty.docx", make_docx(), "empty.docx contains no text."),
        ("bomb.docx", make_zip_bomb(), "bomb.docx expands to more than 50 MB when unpacked"),
    ],
)
def test_unreadable_files_get_a_plain_message(name: str, data: bytes, message: str) -> None:
    with pytest.raises(UploadError) as caught:
        extract_text(name, data)
    assert message in caught.value.message


def test_pdf_encryption_without_crypto_support(monkeypatch: pytest.MonkeyPatch) -> None:
    def needs_crypto(self: PdfReader, password: str) -> None:
        raise pypdf.errors.DependencyError("cryptography>=3.1 is required for AES algorithm")

    monkeypatch.setattr(PdfReader, "decrypt", needs_crypto)
    with pytest.raises(UploadError, match="aes.pdf is encrypted in a way the coach cannot open"):
        extract_text("aes.pdf", encrypt_pdf(make_pdf(SITUATION), user_password=""))


@pytest.mark.parametrize(
    ("name", "size", "max_bytes", "message"),
    [
        (
            "situation.pdf",
            int(6.2 * 1024 * 1024),
            None,
            "situation.pdf is 6.2 MB; the limit is 5 MB. Shorten it or paste the relevant part.",
        ),
        ("notes.txt", 3000, 1024, "notes.txt is 2.9 KB; the limit is 1 KB."),
        ("notes.docx", 101, 100, "notes.docx is 101 bytes; the limit is 100 bytes."),
    ],
)
def test_too_big_is_refused_before_parsing(
    name: str, size: int, max_bytes: int | None, message: str
) -> None:
    # Garbage bytes: a parser would complain about the content instead of the size.
    with pytest.raises(UploadError) as caught:
        extract_text(name, b"\x01" * size, max_bytes=max_bytes)
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("source", "notice"),
    [
        ("message", "Your text was 25,000 characters; the coach read the first 20,000."),
        ("long.txt", "long.txt was 25,000 characters; the coach read the first 20,000."),
    ],
)
def test_truncation_keeps_the_start_with_a_notice(source: str, notice: str) -> None:
    text = "a" * 19_990 + " THE-END-IS-CUT " + "b" * 4_994
    assert len(text) == 25_000
    if source == "message":
        result = prepare_text(text, max_chars=20_000)
    else:
        result = extract_text(source, text.encode(), max_chars=20_000)
    assert result.truncated
    assert result.original_chars == 25_000
    assert result.text == "a" * 19_990 + " THE-END-I"
    assert result.notices == [notice]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("  Plain question?  ", "Plain question?"),
        ("tab\tkept\r\nand\x00 control\x1b gone", "tab\tkept\nand control gone"),
        ("too    many\u00a0\u00a0 spaces   \nhere", "too many spaces\nhere"),
        ("one\n\n\n\n\ntwo", "one\n\ntwo"),
        ("", ""),
        (" \n\x00\n ", ""),
    ],
)
def test_prepare_text_cleans_modestly(typed: str, expected: str) -> None:
    result = prepare_text(typed)
    assert result.text == expected
    assert result.source == "message"
    assert result.original_chars == len(expected)
    assert not result.truncated


def test_defaults_come_from_settings_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COACH_MAX_INPUT_CHARS", "100")
    monkeypatch.setenv("COACH_MAX_UPLOAD_BYTES", "2048")
    get_settings.cache_clear()
    try:
        assert prepare_text("x" * 150).text == "x" * 100
        with pytest.raises(UploadError, match="the limit is 2 KB"):
            extract_text("notes.txt", b"x" * 3000)
    finally:
        get_settings.cache_clear()


def test_read_file(tmp_path) -> None:
    path = tmp_path / "situation.docx"
    path.write_bytes(make_docx(SITUATION))
    result = read_file(path)
    assert (result.text, result.source) == (SITUATION, "situation.docx")
    with pytest.raises(UploadError, match=r"situation.docx is [\d.]+ KB; the limit is 2 KB\."):
        read_file(str(path), max_bytes=2048)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.txt", "missing.txt does not exist: check the path and try again."),
        ("folder.txt", "folder.txt is a folder: give the path of a file."),
        ("sheet.xls", "Unsupported file type .xls"),
    ],
)
def test_read_file_errors_name_the_file(tmp_path, name: str, message: str) -> None:
    (tmp_path / "folder.txt").mkdir()
    (tmp_path / "sheet.xls").write_bytes(b"x")
    with pytest.raises(UploadError) as caught:
        read_file(tmp_path / name)
    assert message in caught.value.message


def test_supported_types_and_lazy_imports() -> None:
    assert SUPPORTED_TYPES == (".txt", ".md", ".pdf", ".docx")
    code = "import sys, app.uploads; print(sorted({'pypdf', 'docx'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
