"""Reading the project's data files: YAML validated by a pydantic model, and fitted models
stored as numpy arrays plus a JSON sidecar (never pickle).

Errors name the file and say what to do, so a bad file fails at load, not on the first
question.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError

from app.errors import ConfigError

_M = TypeVar("_M", bound=BaseModel)
# libyaml's parser when PyYAML was built with it (about ten times faster), else pure Python.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml_model(path: Path, model: type[_M], what: str, *, name: str | None = None) -> _M:
    """``path`` read as YAML and validated as ``model``; ``what`` names it in errors."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except FileNotFoundError:
        raise ConfigError(f"The {what} {path} is missing: restore it from git.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"The {what} {path} is not valid YAML: {exc}") from None
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{name or path.name}: {where}: {first['msg']}.") from None


def save_arrays(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write ``path`` (.npz) and its .json sidecar, each atomically.

    The arrays go first: a reader between the two sees the old sidecar, whose training hash
    marks the model stale, never new metadata over old arrays. Temporary names carry the
    process id, so two writers never move each other's half-written file."""
    tmp_npz = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp_npz, **arrays)
    tmp_json = path.with_name(f"{path.stem}.json.{os.getpid()}.tmp")
    tmp_json.write_text(json.dumps(meta), encoding="utf-8")
    tmp_npz.replace(path)
    tmp_json.replace(path.with_suffix(".json"))


def load_arrays(
    path: Path, kind: str, version: int
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON sidecar and the arrays of a saved model; ``ValueError`` when the files are
    damaged, of another kind or of another version."""
    try:
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        if meta.get("format") != kind or meta.get("version") != version:
            raise ValueError(f"not a {kind} of version {version}")
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError:
        raise
    except Exception as exc:  # OSError, JSON and zip errors of a damaged file
        raise ValueError(str(exc)) from exc
    return meta, arrays
