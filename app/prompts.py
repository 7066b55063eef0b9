"""Versioned prompt files: ``prompts/<name>/<version>.yaml``, loaded by ``name@version``."""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass
from pathlib import Path

import yaml

from app.errors import PromptError

REQUIRED_KEYS = ("name", "version", "description", "system", "user")
TEMPLATE_KEYS = ("system", "user", "repair")

_NAME = r"[a-z0-9][a-z0-9_-]*"
_VERSION = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_REF = re.compile(rf"^(?P<name>{_NAME})(?:@(?P<version>{_VERSION}))?$")


@dataclass(frozen=True)
class Prompt:
    """One version of a prompt: a system template, a user template and their metadata.

    Templates use ``str.format`` placeholders (``{situation}``); literal braces are
    doubled. ``repair`` is an optional template the LLM engine sends when the model's
    answer was not in the required format.
    """

    name: str
    version: str
    description: str
    system: str
    user: str
    path: Path
    sha256: str
    canary: str | None = None
    repair: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def variables(self) -> set[str]:
        """The placeholders ``render`` needs (system and user templates)."""
        return _placeholders(self.system) | _placeholders(self.user)

    def render(self, **values: object) -> tuple[str, str]:
        """The system and user messages with ``values`` filled in; extra values are ignored."""
        return self._fill(self.system, values), self._fill(self.user, values)

    def render_repair(self, **values: object) -> str | None:
        """The repair message, or None when this prompt has no repair template."""
        return None if self.repair is None else self._fill(self.repair, values)

    def _fill(self, template: str, values: dict[str, object]) -> str:
        missing = sorted(_placeholders(template) - values.keys())
        if missing:
            raise PromptError(
                f"Prompt {self.ref} needs the variable '{missing[0]}', which was not given. "
                f"Pass it when rendering, or remove {{{missing[0]}}} from {self.path.name}."
            )
        return template.format_map(values)


def _placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


def _default_dir() -> Path:
    from app.settings import get_settings

    return get_settings().prompts_dir


def _version_key(version: str) -> tuple:
    """Natural order, so v10 comes after v9."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", version))


def _versions(folder: Path, name: str) -> list[str]:
    directory = folder / name
    if not directory.is_dir():
        return []
    return sorted((p.stem for p in directory.glob("*.yaml") if p.is_file()), key=_version_key)


def list_prompts(name: str | None = None, prompts_dir: Path | None = None) -> list[str]:
    """The ``name@version`` refs found in the prompts folder, sorted (optionally one name)."""
    folder = prompts_dir or _default_dir()
    if not folder.is_dir():
        return []
    names = [name] if name else sorted(p.name for p in folder.iterdir() if p.is_dir())
    return [f"{n}@{v}" for n in names for v in _versions(folder, n)]


def parse_ref(ref: str) -> tuple[str, str | None]:
    """Split ``name@version`` (version optional); a PromptError for anything else."""
    match = _REF.match(ref.strip()) if isinstance(ref, str) else None
    if match is None:
        raise PromptError(
            f"'{ref}' is not a prompt reference: write name@version, e.g. coach@v1 "
            "(lowercase name; letters, digits, '.', '_' or '-' in the version)."
        )
    return match["name"], match["version"]


def _default_version(folder: Path, name: str) -> str:
    """The version COACH_PROMPT names for this prompt, else the highest one on disk."""
    from app.settings import get_settings

    configured_name, configured_version = parse_ref(get_settings().prompt)
    if configured_name == name and configured_version:
        return configured_version
    versions = _versions(folder, name)
    if not versions:
        raise _missing(folder, name, None)
    return versions[-1]


def _missing(folder: Path, name: str, version: str | None) -> PromptError:
    versions = _versions(folder, name)
    if versions:
        return PromptError(
            f"Prompt {name}@{version} does not exist in {folder}; "
            f"available versions: {', '.join(versions)}."
        )
    available = list_prompts(prompts_dir=folder)
    hint = f"available prompts: {', '.join(available)}" if available else "the folder has none"
    return PromptError(
        f"There is no prompt named '{name}' in {folder} ({hint}). "
        "Check COACH_PROMPT or --prompt, or COACH_PROMPTS_DIR."
    )


def load_prompt(ref: str, prompts_dir: Path | None = None) -> Prompt:
    """Load ``name@version`` from ``prompts_dir`` (default: the COACH_PROMPTS_DIR setting)."""
    folder = prompts_dir or _default_dir()
    name, version = parse_ref(ref)
    version = version or _default_version(folder, name)
    path = folder / name / f"{version}.yaml"
    if not path.is_file():
        raise _missing(folder, name, version)
    data = path.read_bytes()
    where = f"Prompt file {path}"
    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise PromptError(f"{where} is not UTF-8 text. Save it as UTF-8.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise PromptError(f"{where}{line}: not valid YAML ({problem}). Fix it.") from None
    if not isinstance(doc, dict):
        raise PromptError(f"{where} must be a YAML mapping with keys {', '.join(REQUIRED_KEYS)}.")
    missing = [k for k in REQUIRED_KEYS if doc.get(k) in (None, "")]
    if missing:
        raise PromptError(f"{where} lacks the key(s) {', '.join(missing)}. Add them.")
    for key in (*REQUIRED_KEYS, "canary", "repair"):
        if key in doc and doc[key] is not None and not isinstance(doc[key], str | int | float):
            raise PromptError(f"{where}: '{key}' must be text.")
    if str(doc["name"]) != name or str(doc["version"]) != version:
        raise PromptError(
            f"{where} says it is {doc['name']}@{doc['version']} but sits at {name}@{version}. "
            "Make the name and version keys match the folder and file name."
        )
    for key in TEMPLATE_KEYS:
        template = doc.get(key)
        if template is None:
            continue
        try:
            fields = _placeholders(str(template))
        except ValueError as exc:
            raise PromptError(
                f"{where}: the '{key}' template is malformed ({exc}). "
                "Write placeholders as {{name}} and double literal braces."
            ) from None
        bad = sorted(f for f in fields if not f.isidentifier())
        if bad:
            raise PromptError(
                f"{where}: the '{key}' template has the placeholder {{{bad[0]}}}; "
                "use plain names like {situation}, and double literal braces."
            )
    canary = doc.get("canary")
    canary = str(canary) if canary not in (None, "") else None
    if canary and canary not in str(doc["system"]):
        raise PromptError(f"{where}: the canary is declared but missing from the system text.")
    return Prompt(
        name=name,
        version=version,
        description=str(doc["description"]).strip(),
        system=str(doc["system"]),
        user=str(doc["user"]),
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        canary=canary,
        repair=None if doc.get("repair") is None else str(doc["repair"]),
    )
