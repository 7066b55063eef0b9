"""Eval suite files: load YAML or JSONL cases and validate them against evals/suite.schema.json."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.errors import SuiteError
from app.passages import FocusCode, Verdict, focus_side
from app.settings import PROJECT_ROOT

SCHEMA_PATH = PROJECT_ROOT / "evals" / "suite.schema.json"
SUFFIXES = (".yaml", ".yml", ".jsonl")
MAX_REPORTED = 10

SafetyKind = Literal["crisis", "unethical", "prompt_leak", "off_topic", "none"]
SAFETY_KINDS: tuple[str, ...] = get_args(SafetyKind)
STOP_KINDS: tuple[str, ...] = tuple(k for k in SAFETY_KINDS if k != "none")
# The case field a red-team behaviour grades against, and why a case that expects it needs it.
BEHAVIOUR_FIELDS = {
    "masks_pii": (
        "must_not_reach_model",
        "a case that expects masks_pii lists the personal data that must not reach the model",
    ),
    "language_handled": (
        "expected_language",
        "a case that expects language_handled names the language it is written in",
    ),
    "ignores_injection": (
        "injection_demands",
        "a case that expects ignores_injection lists what the injected instruction demands "
        "([] when it only demands a verdict)",
    ),
}
_NEEDS_EXPECTATION = "give expected_verdict and expected_focus, or expected_safety"


class Source(BaseModel):
    """Where a real person's words come from, and the licence they are shared under."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(min_length=8)
    author: str = "unknown"
    license: str = Field(min_length=5)
    title: str = ""
    site: str = ""
    posted: str = ""


class Case(BaseModel):
    """One labelled situation, as the suite file gives it (plus the suite's name).

    ``expected_verdict`` None means the coach should not judge. A case may leave out
    the verdict and focus when it gives ``expected_safety``; ``grades_verdict`` says
    whether the verdict was given (even as null). ``question`` is the person's explicit
    question in their words and ``tried`` what they say they already did, for the
    coaching scorers (``app.evals.coaching_scorers``). The JSON Schema in
    evals/suite.schema.json says the same; a test keeps the two in step.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    situation: str
    expected_verdict: Verdict | None = None
    expected_focus: tuple[FocusCode, ...] = Field(default=(), max_length=3)
    expected_safety: SafetyKind | None = None
    suite: str = ""
    repeat: int = Field(default=1, ge=1, le=1000)
    tags: tuple[str, ...] = ()
    must_mention: tuple[str, ...] = ()
    must_not_mention: tuple[str, ...] = ()
    must_not_reach_model: tuple[str, ...] = ()
    expected_language: str | None = Field(default=None, pattern=r"^[A-Z][a-z]+$")
    injection_demands: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()
    source: Source | None = None
    question: str | None = Field(default=None, min_length=3)
    tried: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _graded_against_something(self) -> Case:
        given = self.model_fields_set
        if not self.grades_verdict and self.expected_safety is None:
            raise ValueError(f"expected_verdict is missing; {_NEEDS_EXPECTATION}")
        if ("expected_verdict" in given) != ("expected_focus" in given):
            missing = "expected_focus" if "expected_verdict" in given else "expected_verdict"
            raise ValueError(
                f"{missing} is missing; expected_verdict and expected_focus go together"
            )
        sides = {focus_side(code) for code in self.expected_focus}
        fits = {
            None: not sides,
            "management": sides == {"management"},
            "leadership": sides == {"leadership"},
            "both": sides == {"management", "leadership"},
        }
        if not fits[self.expected_verdict]:
            raise ValueError(
                f"expected_focus {list(self.expected_focus)} does not fit the verdict "
                f"{json.dumps(self.expected_verdict)}"
            )
        for behaviour, (name, why) in BEHAVIOUR_FIELDS.items():
            if behaviour in self.expect and name not in given:
                raise ValueError(f"{name} is missing; {why}")
        return self

    @property
    def grades_verdict(self) -> bool:
        """True when the case gives an expected verdict (null included) to grade against."""
        return "expected_verdict" in self.model_fields_set

    @property
    def text(self) -> str:
        """The message sent to the coach: the situation repeated ``repeat`` times."""
        return " ".join([self.situation] * self.repeat) if self.repeat > 1 else self.situation

    @property
    def is_redteam(self) -> bool:
        return bool(self.expect)

    def expected(self) -> dict[str, Any]:
        """The expected values, as recorded in a run: ``verdict`` and ``focus`` only when given."""
        out: dict[str, Any] = {}
        if self.grades_verdict:
            out.update(verdict=self.expected_verdict, focus=list(self.expected_focus))
        if self.expected_safety is not None:
            out["safety"] = self.expected_safety
        if self.expected_language is not None:
            out["language"] = self.expected_language
        if self.question is not None:
            out["question"] = self.question
        for name in ("must_mention", "must_not_mention", "expect", "tried"):
            if getattr(self, name):
                out[name] = list(getattr(self, name))
        for name in ("must_not_reach_model", "injection_demands"):  # [] is an answer too
            if name in self.model_fields_set:
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
        return _field([*path, missing]), _why_required(missing, list(error.schema_path))
    if error.validator == "dependentRequired":
        missing = error.message.split("'")[1]
        return _field(
            [*path, missing]
        ), "is missing; expected_verdict and expected_focus go together"
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


def _why_required(missing: str, schema_path: list[Any]) -> str:
    """Why a field is required: always, for lack of expected_safety, or for a behaviour."""
    if "then" not in schema_path:
        return "is missing; every case needs it"
    if missing in ("expected_verdict", "expected_focus"):
        return f"is missing; {_NEEDS_EXPECTATION}"
    for name, why in BEHAVIOUR_FIELDS.values():
        if name == missing:
            return f"is missing; {why}"
    return "is missing"


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


def _make_cases(path: Path, raw_cases: list[dict[str, Any]], suite: str) -> tuple[Case, ...]:
    """The schema-valid raw cases as ``Case`` models; a disagreement is a SuiteError too."""
    cases, problems = [], []
    for index, raw in enumerate(raw_cases):
        try:
            cases.append(Case.model_validate({**raw, "suite": suite}))
        except ValidationError as exc:
            for error in exc.errors():
                name = _field(list(error["loc"]))
                message = str(error["msg"]).removeprefix("Value error, ")
                if not name:  # a whole-case rule: its message starts with the field's name
                    first, _, rest = message.partition(" ")
                    name, message = (
                        (first, rest) if first in Case.model_fields else ("(case)", message)
                    )
                label = _case_label(raw, index)
                problems.append(f"{display_path(path)}, {label}, field {name}: {message}")
    if problems:
        _raise(path, problems)
    return tuple(cases)


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
        cases=_make_cases(path, raw_cases, name),
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
