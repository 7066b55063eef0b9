"""The library of coaching moves: recurring situations managers bring, each with what to do.

Each file in ``knowledge/moves/`` (except ``actions.yaml``, the shared vocabulary of action
ids) holds situations of one theme. A situation says when it applies, how people describe
it, the questions they ask, a short answer, which side of the article it calls for, and two
to four moves, each naming one action id from ``actions.yaml``. Everything is validated at
load: a missing or misspelt key, an unknown action id, a field that is too long or an id
used twice raises ``ConfigError`` naming the file and the key path.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from app.data_files import load_yaml_model
from app.errors import ConfigError
from app.passages import FocusCode, Verdict

MOVES_DIR = "moves"
ACTIONS_FILE = "actions.yaml"

# Word limits keep composed answers short enough to read at a glance.
MAX_WORDS = {"do": 45, "say": 40, "answer": 60, "applies_when": 60, "pitfall": 45, "watch": 45}

_ID = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"


def _words_at_most(limit: int) -> AfterValidator:
    def check(text: str) -> str:
        count = len(text.split())
        if count > limit:
            raise ValueError(f"has {count} words; shorten it to {limit} or fewer")
        return text

    return AfterValidator(check)


def _text(limit: int | None = None) -> Any:
    """A stripped, non-empty string of at most ``limit`` words."""
    base = StringConstraints(strip_whitespace=True, min_length=1)
    return Annotated[str, base, _words_at_most(limit)] if limit else Annotated[str, base]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        # A misspelt key would otherwise surface as "<right key>: Field required", which hides
        # the typo; name the unknown key and the one it most likely meant.
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    close = difflib.get_close_matches(str(key), cls.model_fields, n=1)
                    fix = (
                        f"rename it to {close[0]!r}"
                        if close
                        else f"remove it or use one of {', '.join(cls.model_fields)}"
                    )
                    raise ValueError(f"unknown key {key!r}: {fix}")
        return data


class Action(_Strict):
    """One kind of thing a manager can do, as listed in ``actions.yaml``."""

    label: _text()


class ActionsFile(_Strict):
    version: int
    actions: dict[str, Action] = Field(min_length=1)


class Needs(_Strict):
    """Conditions on the person's reading of their situation. A key left out (None) means
    the situation applies either way; a set key must not be contradicted by what is known."""

    has_boss: bool | None = Field(
        None,
        description="The person has a manager of their own above them (false for a founder "
        "or owner at the top).",
    )
    formal_authority: bool | None = Field(
        None,
        description="The person has line authority over the people involved (false when "
        "they lead peers, another team or a project without being anyone's manager).",
    )
    has_reports: bool | None = Field(
        None,
        description="The person manages at least one direct report (false for an individual "
        "contributor dealing with their own manager or peers).",
    )

    def allows(self, facts: dict[str, bool | None]) -> bool:
        """False only when a known fact contradicts a condition; unknown facts never do."""
        for key, wanted in self.model_dump(exclude_none=True).items():
            known = facts.get(key)
            if known is not None and known != wanted:
                return False
        return True


class Move(_Strict):
    """One concrete step: the kind of action, what to do, and optionally the words to say."""

    action: str
    do: _text(MAX_WORDS["do"])
    say: _text(MAX_WORDS["say"]) | None = None


class Situation(_Strict):
    """A recurring situation and the coaching for it."""

    id: Annotated[str, StringConstraints(pattern=_ID)]
    title: _text(14)
    applies_when: _text(MAX_WORDS["applies_when"])
    signals: list[_text(30)] = Field(min_length=3, max_length=6)
    asks: list[_text(30)] = Field(min_length=1, max_length=3)
    answer: _text(MAX_WORDS["answer"])
    side: Verdict
    draws_on: list[FocusCode] = Field(min_length=1, max_length=4)
    needs: Needs = Field(default_factory=Needs)
    moves: list[Move] = Field(min_length=2, max_length=4)
    pitfall: _text(MAX_WORDS["pitfall"])
    watch: _text(MAX_WORDS["watch"])


class MovesFile(_Strict):
    """One theme file of ``knowledge/moves/``."""

    version: int
    theme: _text(20)
    situations: list[Situation] = Field(min_length=1)


@dataclass(frozen=True)
class MoveLibrary:
    """Every situation of ``knowledge/moves/``, in file order, with the action labels."""

    situations: tuple[Situation, ...]
    actions: dict[str, str]  # action id -> label
    sources: dict[str, str] = field(default_factory=dict)  # situation id -> file name

    def __len__(self) -> int:
        return len(self.situations)

    def get(self, situation_id: str) -> Situation:
        """The situation with this id; ``KeyError`` if there is none."""
        for situation in self.situations:
            if situation.id == situation_id:
                return situation
        raise KeyError(situation_id)

    def for_side(self, side: Verdict) -> list[Situation]:
        """The situations that call mainly for ``side``."""
        return [s for s in self.situations if s.side == side]


def texts_for_matching(situation: Situation) -> list[str]:
    """The strings to embed for a situation: when it applies, its signals and its asks."""
    return [situation.applies_when, *situation.signals, *situation.asks]


def load_actions(knowledge_dir: Path) -> dict[str, str]:
    """The action ids of ``knowledge/moves/actions.yaml`` with their labels."""
    path = Path(knowledge_dir) / MOVES_DIR / ACTIONS_FILE
    data = load_yaml_model(path, ActionsFile, "actions vocabulary")
    return {key: action.label for key, action in data.actions.items()}


def load_library(knowledge_dir: Path) -> MoveLibrary:
    """Every situation under ``knowledge_dir/moves``, validated; read again when a file
    changes (cached by the files' modification times)."""
    folder = Path(knowledge_dir).resolve() / MOVES_DIR
    if not folder.is_dir():
        raise ConfigError(
            f"The moves folder {folder} is missing: restore knowledge/moves from git "
            "or set COACH_KNOWLEDGE_DIR to the knowledge folder."
        )
    stamp = tuple(
        (p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.glob("*.yaml"))
    )
    return _load_library(folder, stamp)


@lru_cache(maxsize=4)
def _load_library(folder: Path, stamp: tuple[tuple[str, int, int], ...]) -> MoveLibrary:
    actions = load_actions(folder.parent)
    situations: list[Situation] = []
    sources: dict[str, str] = {}
    for name, _, _ in stamp:
        if name == ACTIONS_FILE:
            continue
        path = folder / name
        data = load_yaml_model(path, MovesFile, "moves file")
        for i, situation in enumerate(data.situations):
            for j, move in enumerate(situation.moves):
                if move.action not in actions:
                    close = difflib.get_close_matches(move.action, actions, n=1)
                    fix = (
                        f"did you mean {close[0]!r}? The ids are in {ACTIONS_FILE}."
                        if close
                        else f"use one of the ids in {ACTIONS_FILE}: {', '.join(sorted(actions))}."
                    )
                    raise ConfigError(
                        f"{name}: situations.{i}.moves.{j}.action: unknown action "
                        f"{move.action!r} in situation {situation.id!r}; {fix}"
                    )
            if situation.id in sources:
                raise ConfigError(
                    f"{name}: situations.{i}.id: {situation.id!r} is already used in "
                    f"{sources[situation.id]}. Give each situation its own id."
                )
            sources[situation.id] = name
            situations.append(situation)
    if not situations:
        raise ConfigError(
            f"No situations found in {folder}: add theme files next to {ACTIONS_FILE}."
        )
    return MoveLibrary(situations=tuple(situations), actions=actions, sources=sources)
