"""Prompt files: the shipped prompts, loading by name@version, rendering, and clear errors."""

import hashlib
import re
from pathlib import Path

import pytest
import yaml

from app.errors import PromptError
from app.passages import FOCUS_NAMES
from app.prompts import Prompt, list_prompts, load_prompt
from app.settings import get_settings

COACH_REFS = ["coach@v1", "coach@v2"]
COACH_VARIABLES = {"situation", "passages", "history", "language"}
SAMPLE = {
    "situation": "Nobody knows who owns the release notes.",
    "passages": "[doc#management-2] Setting clear objectives: ...",
    "history": "(none)",
    "language": "Spanish",
}


@pytest.fixture
def fresh_settings():
    """Let a test change COACH_* variables and see them in get_settings()."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def write_prompt(folder: Path, name: str = "coach", version: str = "v1", **fields) -> Path:
    doc = {
        "name": name,
        "version": version,
        "description": "test prompt",
        "system": "You coach in {language}.",
        "user": "<<<SITUATION\n{situation}\nSITUATION>>>",
        **fields,
    }
    doc = {k: v for k, v in doc.items() if v is not None}
    path = folder / name / f"{version}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- shipped prompts


@pytest.mark.parametrize(
    "ref, variables",
    [
        ("coach@v1", COACH_VARIABLES),
        ("coach@v2", COACH_VARIABLES),
        ("judge@v1", {"situation", "answer"}),
    ],
)
def test_shipped_prompts_load_with_metadata(ref: str, variables: set[str]):
    prompt = load_prompt(ref)
    assert prompt.ref == ref
    assert prompt.description
    assert prompt.variables() == variables
    assert prompt.sha256 == hashlib.sha256(prompt.path.read_bytes()).hexdigest()
    assert prompt.canary and re.fullmatch(r"CANARY-LC-[0-9a-f]{16}", prompt.canary)
    assert prompt.canary in prompt.system


def test_each_prompt_has_its_own_canary():
    canaries = [load_prompt(ref).canary for ref in [*COACH_REFS, "judge@v1"]]
    assert len(set(canaries)) == len(canaries)


@pytest.mark.parametrize("ref", COACH_REFS)
def test_coach_prompt_explains_the_six_responsibilities_and_the_format(ref: str):
    system = load_prompt(ref).system
    for code, name in FOCUS_NAMES.items():
        assert re.search(rf"{code} {name}", system), (code, name)
    for key in ("VERDICT:", "CONFIDENCE:", "FOCUS:", "CITATIONS:", "SUMMARY:", "QUESTIONS:"):
        assert key in system
    assert "unclear" in system
    assert re.search(r"^---$", system, re.M), "the separator line must be in the format"


@pytest.mark.parametrize("ref", COACH_REFS)
def test_coach_prompt_asks_for_a_short_header_and_a_trailer(ref: str):
    prompt = load_prompt(ref)
    fmt = prompt.system.split("# Output format", 1)[1]
    examples = re.findall(r"^SAFETY: none\n.*?^QUESTIONS: [^\n]*$", fmt, re.S | re.M)
    assert examples, "the format is shown as filled-in examples"
    for example in examples:
        header, prose, trailer = re.split(r"^---$", example, flags=re.M)
        keys = {k: re.findall(rf"^{k}:", example, re.M) for k in ("VERDICT", "FOCUS", "CONFIDENCE")}
        assert all(len(found) == 1 for found in keys.values()), "each key is shown once"
        assert "VERDICT:" in header and "FOCUS:" in header
        for key in ("CONFIDENCE:", "CITATIONS:", "SUMMARY:", "QUESTIONS:"):
            assert key in trailer and key not in header
        assert prose.strip(), "a filled-in coaching sits between the dashes"
    repair = prompt.render_repair(problem="P")
    assert repair is not None and "P" in repair
    assert "VERDICT" in repair and "FOCUS" in repair and "CONFIDENCE" in repair
    assert "six header lines" not in repair


@pytest.mark.parametrize("ref", COACH_REFS)
def test_coach_prompt_puts_the_data_inside_delimiters(ref: str):
    prompt = load_prompt(ref)
    system, user = prompt.render(**SAMPLE)
    for block, value in [("SITUATION", SAMPLE["situation"]), ("PASSAGES", SAMPLE["passages"])]:
        match = re.search(rf"<<<{block}\n(.*?)\n{block}>>>", user, re.S)
        assert match and match[1] == value
        assert f"<<<{block}" in system, "the system prompt must name the delimiters"
    assert "Spanish" in system + user
    assert prompt.canary in system and prompt.canary not in user


def test_coach_versions_differ_so_comparing_them_means_something():
    v1, v2 = load_prompt("coach@v1"), load_prompt("coach@v2")
    assert v1.system != v2.system and v1.sha256 != v2.sha256
    assert "Three actions for this week" in v2.system


def test_judge_prompt_asks_for_score_and_reason():
    prompt = load_prompt("judge@v1")
    system, user = prompt.render(situation="S", answer="A")
    assert "SCORE:" in system and "REASON:" in system
    assert "<<<SITUATION\nS\nSITUATION>>>" in user and "<<<ANSWER\nA\nANSWER>>>" in user


def test_list_prompts_finds_the_shipped_refs_sorted():
    refs = list_prompts()
    assert {"coach@v1", "coach@v2", "judge@v1"} <= set(refs)
    assert refs == sorted(refs)
    assert list_prompts("coach")[:2] == ["coach@v1", "coach@v2"]
    assert list_prompts("nosuch") == []


# --------------------------------------------------------------------------- versions


def test_coach_without_version_uses_the_configured_version(monkeypatch, fresh_settings):
    assert load_prompt("coach").ref == "coach@v1"
    monkeypatch.setenv("COACH_PROMPT", "coach@v2")
    get_settings.cache_clear()
    assert load_prompt("coach").ref == "coach@v2"


def test_other_names_without_version_use_the_highest(tmp_path: Path):
    for version in ("v1", "v2", "v10"):
        write_prompt(tmp_path, "judge", version)
    assert load_prompt("judge", tmp_path).ref == "judge@v10"
    assert list_prompts("judge", tmp_path) == ["judge@v1", "judge@v2", "judge@v10"]


# --------------------------------------------------------------------------- rendering


def test_render_fills_both_templates_and_keeps_doubled_braces(tmp_path: Path):
    write_prompt(tmp_path, user='Reply as {{"verdict": ...}} about:\n{situation}')
    prompt = load_prompt("coach@v1", tmp_path)
    system, user = prompt.render(situation="a {curly} situation", language="French", extra="x")
    assert system == "You coach in French."
    assert user == 'Reply as {"verdict": ...} about:\na {curly} situation'


def test_render_names_the_missing_variable_and_the_prompt():
    with pytest.raises(PromptError) as err:
        load_prompt("coach@v2").render(situation="s", passages="p", history="h")
    assert "'language'" in err.value.message and "coach@v2" in err.value.message


def test_render_repair_is_none_without_a_repair_template(tmp_path: Path):
    write_prompt(tmp_path)
    assert load_prompt("coach@v1", tmp_path).render_repair(problem="x") is None
    assert "no header" in load_prompt("coach@v1").render_repair(problem="no header")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("ref", ["coach@", "@v1", "../etc@v1", "coach@v1@v2", "Coach@v1", ""])
def test_bad_reference_syntax(ref: str, tmp_path: Path):
    with pytest.raises(PromptError, match="is not a prompt reference: write name@version"):
        load_prompt(ref, tmp_path)


def test_missing_version_lists_the_available_ones():
    with pytest.raises(PromptError) as err:
        load_prompt("coach@v9")
    assert "coach@v9 does not exist" in err.value.message
    assert "available versions: v1, v2" in err.value.message


def test_missing_name_lists_the_available_prompts(tmp_path: Path):
    write_prompt(tmp_path, "judge", "v1")
    with pytest.raises(PromptError) as err:
        load_prompt("nosuch@v1", tmp_path)
    assert "no prompt named 'nosuch'" in err.value.message
    assert "judge@v1" in err.value.message


@pytest.mark.parametrize(
    "content, expected",
    [
        ("name: coach\nsystem: [unclosed\n", r"line \d+: not valid YAML"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("name: coach\nversion: v1\ndescription: d\nsystem: s\n", r"lacks the key\(s\) user"),
        (
            "name: coach\nversion: v1\nsystem: s\nuser: ''\n",
            r"lacks the key\(s\) description, user",
        ),
        (
            "name: coach\nversion: v1\ndescription: d\nsystem: [a]\nuser: u\n",
            "'system' must be text",
        ),
        ("name: judge\nversion: v1\ndescription: d\nsystem: s\nuser: u\n", "says it is judge@v1"),
        (
            "name: coach\nversion: v1\ndescription: d\nsystem: s\nuser: '{0}'\n",
            r"placeholder \{0\}",
        ),
        (
            "name: coach\nversion: v1\ndescription: d\nsystem: s\nuser: '{a.b}'\n",
            r"placeholder \{a\.b\}",
        ),
        ("name: coach\nversion: v1\ndescription: d\nsystem: 'a { b'\nuser: u\n", "malformed"),
        (
            "name: coach\nversion: v1\ndescription: d\ncanary: CANARY-X\nsystem: s\nuser: u\n",
            "canary is declared but missing",
        ),
    ],
    ids=[
        "bad-yaml",
        "not-mapping",
        "no-user",
        "two-missing",
        "not-text",
        "name-mismatch",
        "positional",
        "attribute",
        "unbalanced",
        "canary",
    ],
)
def test_malformed_prompt_files(content: str, expected: str, tmp_path: Path):
    path = tmp_path / "coach" / "v1.yaml"
    path.parent.mkdir()
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PromptError, match=expected) as err:
        load_prompt("coach@v1", tmp_path)
    assert str(path) in err.value.message


def test_non_utf8_prompt_file(tmp_path: Path):
    path = tmp_path / "coach" / "v1.yaml"
    path.parent.mkdir()
    path.write_bytes("description: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(PromptError, match="not UTF-8"):
        load_prompt("coach@v1", tmp_path)


def test_prompt_is_immutable():
    prompt = load_prompt("coach@v1")
    assert isinstance(prompt, Prompt)
    with pytest.raises(AttributeError):
        prompt.system = "changed"  # type: ignore[misc]
