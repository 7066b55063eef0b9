"""Eval suite files: load YAML or JSONL cases and validate them against evals/suite.schema.json."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from app.errors import SuiteError
from app.settings import PROJECT_ROOT

SCHEMA_PATH = PROJECT_ROOT / "evals" / "suite.schema.json"
SUFFIXES = (".yaml", ".yml", ".jsonl")
MAX_REPORTED = 10


@dataclass(frozen=True)
class Case:
    """One labelled situation; ``expected_verdict`` None means the coach should not judge."""

    id: str
    situation: str
    expected_verdict: str | None
    expected_focus: tuple[str, ...]
    suite: str = ""
    tags: tuple[str, ...] = ()
    must_mention: tuple[str, ...] = ()
    must_not_mention: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()
    repeat: int = 1

    @property
    def text(self) -> str:
        """The message sent to the coach: the situation repeated ``repeat`` times."""
        return " ".join([self.situation] * self.repeat) if self.repeat > 1 else self.situation

    @property
    def is_redteam(self) -> bool:
        return bool(self.expect)

    def expected(self) -> dict[str, Any]:
        """The expected values, as recorded in a run."""
        out: dict[str, Any] = {"verdict": self.expected_verdict, "focus": list(self.expected_focus)}
        for name in ("must_mention", "must_not_mention", "expect"):
            if getattr(self, name):
                out[name] = list(getattr(self, name))
        return out


@dataclass(frozen=True)
class Suite:
    """One suite file and its cases."""

    name: str
    path: Path
    sha256: str
    description: str = ""
    cases: tuple[Case, ...] = field(default_factory=tuple)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": display_path(self.path),
            "sha256": self.sha256,
            "cases": len(self.cases),
        }


def display_path(path: Path) -> str:
    """The path relative to the working folder when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@lru_cache(maxsize=2)
def _validator(kind: str):
    from jsonschema import Draft202012Validator

    schema = load_schema()
    if kind == "case":
        schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/case"}
    return Draft202012Validator(schema)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (a silent overwrite)."""


def _no_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key '{key}' appears twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _field(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problem(error, case: Any = None) -> tuple[str, str]:
    """The field name and a plain description of one schema error."""
    path = list(error.path)
    name = _field(path)
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return _field([*path, missing]), "is missing; every case needs it"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(error.schema.get("properties", {}))
        return _field([*path, extra[0]]), f"is not a known field (known fields: {allowed})"
    message = error.message
    if error.validator == "enum":
        choices = ", ".join(json.dumps(v) for v in error.validator_value)
        message = f"{json.dumps(error.instance, ensure_ascii=False)} is not one of {choices}"
    if "allOf" in list(error.schema_path) and path and path[0] == "expected_focus":
        verdict = case.get("expected_verdict") if isinstance(case, dict) else None
        message += (
            f" (the expected verdict is {json.dumps(verdict)}: a management case takes M codes, "
            "a leadership case L codes, a 'both' case at least one of each, "
            "and a null verdict none)"
        )
    return name or "(case)", message


def _errors(doc: Any, kind: str) -> list[Any]:
    def order(error) -> list[tuple[int, Any]]:
        return [(0, p) if isinstance(p, int) else (1, str(p)) for p in error.path]

    return sorted(_validator(kind).iter_errors(doc), key=order)


def _case_label(case: Any, index: int) -> str:
    if isinstance(case, dict) and isinstance(case.get("id"), str) and case["id"]:
        return f"case {case['id']}"
    return f"case #{index + 1} (no id)"


def _raise(path: Path, lines: list[str]) -> None:
    shown = lines[:MAX_REPORTED]
    more = len(lines) - len(shown)
    if more:
        shown.append(f"... and {more} more problem(s).")
    raise SuiteError(
        f"The suite {display_path(path)} is invalid:\n" + "\n".join(f"- {line}" for line in shown)
    )


def _read(path: Path) -> bytes:
    if path.suffix.lower() not in SUFFIXES:
        raise SuiteError(
            f"{display_path(path)}: unsupported suite file type '{path.suffix}'; "
            "use .yaml, .yml or .jsonl."
        )
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SuiteError(f"The suite file {display_path(path)} does not exist.") from None
    except IsADirectoryError:
        raise SuiteError(
            f"{display_path(path)} is a folder: pass suite files, e.g. evals/suites/core.yaml."
        ) from None


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SuiteError(f"{display_path(path)} is not UTF-8 text; save it as UTF-8.") from None


def _yaml_cases(path: Path, text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise SuiteError(f"{display_path(path)}{line}: not valid YAML ({problem}).") from None
    if not isinstance(doc, dict):
        raise SuiteError(
            f"{display_path(path)} must be a mapping with a 'cases' list "
            "(and optionally 'name' and 'description')."
        )
    problems = []
    for error in _errors(doc, "suite"):
        where = list(error.path)
        if len(where) >= 2 and where[0] == "cases" and isinstance(where[1], int):
            case = doc["cases"][where[1]]
            error.path.popleft()
            error.path.popleft()
            name, text_ = _problem(error, case)
            label = _case_label(case, where[1])
            problems.append(f"{display_path(path)}, {label}, field {name}: {text_}")
        else:
            name, text_ = _problem(error)
            problems.append(f"{display_path(path)}, field {name}: {text_}")
    if problems:
        _raise(path, problems)
    return doc, doc["cases"]


def _jsonl_cases(path: Path, text: str) -> list[dict[str, Any]]:
    cases, problems = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
        except ValueError as exc:
            problems.append(f"{display_path(path)}, line {number}: not valid JSON ({exc.msg}).")
            continue
        label = _case_label(case, len(cases)) + f" (line {number})"
        for error in _errors(case, "case"):
            name, text_ = _problem(error, case)
            problems.append(f"{display_path(path)}, {label}, field {name}: {text_}")
        cases.append(case)
    if problems:
        _raise(path, problems)
    if not cases:
        raise SuiteError(f"{display_path(path)} has no cases: add one JSON object per line.")
    return cases


def _make_case(raw: dict[str, Any], suite: str) -> Case:
    return Case(
        id=raw["id"],
        situation=raw["situation"],
        expected_verdict=raw["expected_verdict"],
        expected_focus=tuple(raw["expected_focus"]),
        suite=suite,
        tags=tuple(raw.get("tags") or ()),
        must_mention=tuple(raw.get("must_mention") or ()),
        must_not_mention=tuple(raw.get("must_not_mention") or ()),
        expect=tuple(raw.get("expect") or ()),
        repeat=int(raw.get("repeat") or 1),
    )


def load_suite(path: Path | str) -> Suite:
    """Load and validate one suite file; SuiteError names the file, the case and the field."""
    path = Path(path)
    data = _read(path)
    text = _decode(path, data)
    if path.suffix.lower() == ".jsonl":
        doc: dict[str, Any] = {}
        raw_cases = _jsonl_cases(path, text)
    else:
        doc, raw_cases = _yaml_cases(path, text)
    name = str(doc.get("name") or path.stem)
    seen: dict[str, int] = {}
    duplicates = []
    for i, raw in enumerate(raw_cases):
        if raw["id"] in seen:
            duplicates.append(
                f"{display_path(path)}, case {raw['id']}, field id: used twice "
                f"(cases #{seen[raw['id']] + 1} and #{i + 1}); ids must be unique."
            )
        seen.setdefault(raw["id"], i)
    if duplicates:
        _raise(path, duplicates)
    return Suite(
        name=name,
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        description=str(doc.get("description") or "").strip(),
        cases=tuple(_make_case(raw, name) for raw in raw_cases),
    )


def load_suites(paths: list[Path | str]) -> list[Suite]:
    """Load several suites; case ids and suite names must be unique across them."""
    if not paths:
        raise SuiteError("No suite given: pass one or more files, e.g. evals/suites/core.yaml.")
    suites = [load_suite(p) for p in paths]
    names: dict[str, Suite] = {}
    owners: dict[str, Suite] = {}
    for suite in suites:
        if suite.name in names:
            raise SuiteError(
                f"{display_path(suite.path)} and {display_path(names[suite.name].path)} are "
                f"both named '{suite.name}'; give one a different 'name'."
            )
        names[suite.name] = suite
        for case in suite.cases:
            if case.id in owners:
                raise SuiteError(
                    f"{display_path(suite.path)}, case {case.id}, field id: also used in "
                    f"{display_path(owners[case.id].path)}; ids must be unique across suites."
                )
            owners[case.id] = suite
    return suites
