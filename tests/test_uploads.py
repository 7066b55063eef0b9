"""Uploads: real small files in, situation text or a user-facing error out."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import docx
import pypdf
import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from app.answer import CoachingAnswer
from app.classifier import Prediction
from app.cli import main as coach_main
from app.coach import Coach
from app.engines.fake import FakeEngine
from app.errors import InputError, UploadError
from app.settings import Settings, get_settings
from app.uploads import SUPPORTED_TYPES, extract_text, prepare_text, read_file
from app.web.upload import browser_limit_mb
from tests.coach_env import seed_models, shared_env

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
        ("windows.txt", b"Line one\r\nLine two\x07\r\n", "Line one\nLine two"),
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
        ("blank.md", " \n\t\r\n\x07 \u200b\u202e ".encode(), "blank.md contains no text."),
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
            6_200_000,
            None,
            "situation.pdf is 6.2 MB; the limit is 5 MB. Shorten it or paste the relevant part.",
        ),
        ("notes.txt", 3000, 1000, "notes.txt is 3 KB; the limit is 1 KB."),
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


# ---------------------------------------------------------------- hostile files

NOT_TEXT = "does not look like a text file: upload a .txt, .md, .pdf or .docx with the situation written out."
INVISIBLE = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u200b\u200c\u200d\u2060\ufeff"
# "Fire Sam" shown as "maS eriF": a right-to-left override, zero-width spaces and a BOM.
SPOOFED = "Our deadlines slip because nobody knows who \u202eowns\u202c which\u200b task\ufeff."
SPOOFED_CLEAN = "Our deadlines slip because nobody knows who owns which task."
# The ones planted in SPOOFED: what a display must not show. (Shown Markdown may add its own
# U+2060 to break Streamlit's icon codes; that is output, not the person's text.)
PLANTED = set(SPOOFED) & set(INVISIBLE)


def elf_binary() -> bytes:
    """The start of a Linux executable: ELF header, then machine code and tables."""
    return b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00>\x00\x01\x00\x00\x00" + random_bytes(4000)


def control_heavy() -> bytes:
    """Text-like bytes with no NUL but a control character in every few (a terminal capture)."""
    return b"".join(b"status %d \x01\x02\x1b\x06 ok\n" % i for i in range(300))


def undecodable() -> bytes:
    """High bytes with no NUL: not UTF-8, decodes to mostly U+FFFD."""
    return bytes(random.Random(1).randrange(0x80, 0x100) for _ in range(3000))


def make_huge_docx(path: Path, *, paragraphs: int = 550_000) -> Path:
    """A valid .docx whose word/document.xml is about 45 MB, under the 50 MB unpacked cap."""
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    rels = (
        '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
        '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
        'officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
        "</Relationships>"
    )
    paragraph = (
        b"<w:p><w:r><w:t>Our night shift keeps missing its handover notes.</w:t></w:r></w:p>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("_rels/.rels", rels)
        with archive.open("word/document.xml", "w", force_zip64=True) as xml:
            xml.write(f'<?xml version="1.0"?><w:document xmlns:w="{w}"><w:body>'.encode())
            for _ in range(paragraphs):
                xml.write(paragraph)
            xml.write(b"<w:p><w:r><w:t>THE-END</w:t></w:r></w:p></w:body></w:document>")
    return path


HOSTILE_FILES = [
    ("program.txt", elf_binary),
    ("capture.txt", control_heavy),
    ("garbled.md", undecodable),
    ("utf16-no-bom.txt", lambda: SITUATION.encode("utf-16-le")),
]


@pytest.mark.parametrize(("name", "make"), HOSTILE_FILES)
def test_content_that_is_not_text_is_refused_in_one_sentence(name: str, make) -> None:
    with pytest.raises(UploadError) as caught:
        extract_text(name, make())
    assert caught.value.message == f"{name} {NOT_TEXT}"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        # A few control characters or undecodable bytes are noise in real text, not binary.
        ("log.txt", ("\x1b[31mURGENT\x1b[0m our rota is a mess. " * 40).encode()),
        ("latin.md", ("Réunion d'équipe: personne ne sait qui décide. " * 40).encode("latin-1")),
    ],
)
def test_text_with_a_little_noise_is_still_read(name: str, data: bytes) -> None:
    assert extract_text(name, data).text


def test_bidi_and_zero_width_characters_are_stripped_from_files_and_names() -> None:
    result = extract_text("notes\u202etxt.md", (SPOOFED + "\n" + INVISIBLE).encode())
    assert result.text == SPOOFED_CLEAN
    assert result.source == "notestxt.md"
    data = make_docx(SPOOFED, table=[["Team", ""], ["Ana\u200d", "\u2066Lead\u2069"]])
    text = extract_text("situation.docx", data).text
    assert not set(text) & set(INVISIBLE)
    assert text.startswith(SPOOFED_CLEAN) and "Ana | Lead" in text


@pytest.mark.parametrize("char", list(INVISIBLE))
def test_typed_text_loses_every_bidi_and_zero_width_character(char: str) -> None:
    assert prepare_text(f"Fire{char} Sam{char}").text == "Fire Sam"


def test_typed_text_that_is_not_text_is_refused() -> None:
    garbage = undecodable().decode("utf-8", errors="replace")
    with pytest.raises(InputError) as caught:
        prepare_text(garbage)
    assert not isinstance(caught.value, UploadError)
    assert caught.value.message == (
        "Your message does not look like text: type or paste the situation written out."
    )
    # Undecodable command-line bytes arrive as lone surrogates and count the same.
    with pytest.raises(InputError):
        prepare_text(undecodable().decode("utf-8", errors="surrogateescape"))


def test_huge_docx_stops_reading_at_the_input_limit(tmp_path: Path) -> None:
    path = make_huge_docx(tmp_path / "handover.docx")
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("word/document.xml").file_size > 40_000_000
    result = read_file(path)
    assert 19_950 < len(result.text) <= 20_000  # cut at 20,000, trailing line break dropped
    assert "THE-END" not in result.text
    assert result.truncated and result.original_chars is None
    assert result.notices == [
        "handover.docx is too long to read in full; the coach read the first 20,000 characters."
    ]


def test_long_pdf_stops_at_the_page_where_the_limit_is_reached(monkeypatch) -> None:
    pdf = FPDF()
    pdf.set_font("helvetica", size=10)
    for page in range(12):
        pdf.add_page()
        pdf.multi_cell(0, 5, text=f"Page {page}. " + "Nobody owns the rota. " * 40)
    read: list[int] = []
    original = pypdf.PageObject.extract_text

    def counted(self, *args, **kwargs):
        read.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pypdf.PageObject, "extract_text", counted)
    result = extract_text("rota.pdf", bytes(pdf.output()), max_chars=2_000)
    assert len(read) == 3  # each page holds about 900 characters
    assert len(result.text) <= 2_000 and result.text.startswith("Page 0.")
    assert "Page 3." not in result.text
    assert result.original_chars is None
    assert result.notices == [
        "rota.pdf is too long to read in full; the coach read the first 2,000 characters."
    ]


def test_one_size_limit_of_5_mb_exactly() -> None:
    limit = Settings().max_upload_bytes
    assert limit == 5_000_000
    with pytest.raises(UploadError) as caught:
        extract_text("big.txt", b"a" * (limit + 1))
    assert caught.value.message == TOO_BIG
    assert extract_text("max.txt", b"a" * limit).truncated  # at the limit: read, then cut
    # Streamlit's caps (browser: MB of 1,000,000 bytes, or 1,048,576 on Windows; server:
    # 1,048,576) are at or above the app's own, so no file the CLI reads is refused there.
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 1024**2 >= limit
    assert browser_limit_mb(limit) == 5 and browser_limit_mb(limit) * 1000**2 >= limit


TOO_BIG = (
    "big.txt is 5,000,001 bytes; the limit is 5 MB (5,000,000 bytes). "
    "Shorten it or paste the relevant part."
)


# ---------------------------------------------------------------- hostile files in the CLI


def write_hostile(tmp_path: Path, name: str) -> Path:
    makers = dict(HOSTILE_FILES)
    path = tmp_path / name
    if name == "big.txt":
        path.write_bytes(b"a" * 5_000_001)
    elif name == "handover.docx":
        make_huge_docx(path)
    else:
        path.write_bytes(makers[name]())
    return path


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("program.txt", f"program.txt {NOT_TEXT}"),
        ("capture.txt", f"capture.txt {NOT_TEXT}"),
        ("garbled.md", f"garbled.md {NOT_TEXT}"),
        ("big.txt", TOO_BIG),
    ],
)
def test_cli_refuses_a_hostile_file_in_one_sentence(tmp_path, capsys, name, message) -> None:
    path = write_hostile(tmp_path, name)
    assert coach_main(["ask", "--file", str(path)]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"coach: {message}\n")


def cli(*args: str, stdin: bytes = b"", tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COACH_", "OPENAI_"))}
    env["COACH_DATA_DIR"] = str(tmp_path / "data")
    (tmp_path / "data").mkdir(exist_ok=True)
    seed_models(tmp_path / "data")
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def test_cli_process_exits_non_zero_without_a_traceback(tmp_path) -> None:
    done = cli("ask", "--file", str(write_hostile(tmp_path, "program.txt")), tmp_path=tmp_path)
    assert done.returncode == 1
    assert done.stdout == b""
    assert done.stderr.decode() == f"coach: program.txt {NOT_TEXT}\n"

    done = cli("ask", "-", stdin=elf_binary(), tmp_path=tmp_path)
    assert done.returncode == 1
    assert done.stderr.decode() == (
        "coach: The piped input does not look like text: pipe in the situation written out, "
        "or give a .txt, .md, .pdf or .docx file with --file.\n"
    )


class ObjectivesReading:
    """Stands in for the trained classifier (whose reading is not under test here)."""

    def get(self) -> ObjectivesReading:
        return self

    def predict(self, text: str, vector=None) -> Prediction:
        return Prediction("management", 0.8, {"management": 0.8}, ["M1"])


class EchoEngine(FakeEngine):
    """A fake engine that quotes the situation back, as the offline engine and LLMs do."""

    def run(self, request):
        self.calls.append(request)
        answer = CoachingAnswer(
            verdict="management",
            confidence=0.8,
            focus=["M1"],
            summary="A management problem.",
            coaching=f'You said "{request.situation}".',
            citations=[],
        )
        yield answer.coaching
        yield answer


def echo_coach() -> Coach:
    settings, index, _ = shared_env()
    return Coach(EchoEngine(), settings=settings, index=index, classifiers=ObjectivesReading())


@pytest.mark.parametrize("how", ["typed", "piped", "file"])
def test_cli_strips_bidi_and_zero_width_characters_before_coaching(
    tmp_path, capsys, monkeypatch, how: str
) -> None:
    coach = echo_coach()
    monkeypatch.setattr("app.coach.build_coach", lambda **_: coach)
    args = ["ask", "--json"]
    if how == "typed":
        args.append(SPOOFED)
    elif how == "piped":
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(SPOOFED.encode())))
        args.append("-")
    else:
        (tmp_path / "spoofed.md").write_text(SPOOFED, encoding="utf-8")
        args += ["--file", str(tmp_path / "spoofed.md")]
    assert coach_main(args) == 0
    out = capsys.readouterr().out
    assert [c.situation for c in coach.engine.calls] == [SPOOFED_CLEAN]
    assert json.loads(out)["coaching"] == f'You said "{SPOOFED_CLEAN}".'  # quoted back, clean
    assert not set(out) & PLANTED


def test_cli_reads_a_huge_docx_up_to_the_limit_with_the_notice(tmp_path, capsys, monkeypatch):
    coach = echo_coach()
    monkeypatch.setattr("app.coach.build_coach", lambda **_: coach)
    path = write_hostile(tmp_path, "handover.docx")
    assert coach_main(["ask", "--file", str(path), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (
        "handover.docx is too long to read in full; the coach read the first 20,000 characters."
        in answer["notices"]
    )
