"""The situation reader's rules: the word lists and patterns in ``knowledge/reading/``,
checked against their schemas and compiled once.

Three files, each loaded into a pydantic model with ``extra="forbid"``: ``words.yaml`` (the
nouns, numbers and irregular forms), ``patterns.yaml`` (how each part of a Reading is found)
and ``tried.yaml`` (how each action of ``knowledge/moves/actions.yaml`` is recognised as
already done). Patterns name fragments as ``{{NAME}}`` and, in ``tried.yaml``, verbs as
``{talk|speak}``, which stands for every form of each verb. Patterns are written in lower
case and matched against lower-cased text: Python's ``re`` runs them about three times
faster than the same patterns with ``IGNORECASE``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.data_files import load_yaml_model
from app.errors import ConfigError
from app.reading_patterns import (
    VERB,
    PatternCompiler,
    VerbForms,
    alternation,
    either,
    number_pattern,
    plural,
)

FOLDER = "reading"
WORDS_FILE = "words.yaml"
PATTERNS_FILE = "patterns.yaml"
TRIED_FILE = "tried.yaml"
ACTIONS_FILE = Path("moves") / "actions.yaml"

ConstraintKind = Literal["budget", "authority", "time", "staff", "policy", "other"]

_LITERAL_WORD = re.compile(r"[a-z][a-z'-]*")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WordsFile(_Strict):
    """``knowledge/reading/words.yaml``."""

    version: Literal[1]
    abbreviations: list[str]
    numbers: dict[str, int]
    people: list[str] = Field(min_length=1)
    groups: list[str] = Field(min_length=1)
    bosses: list[str] = Field(min_length=1)
    senior_titles: list[str] = Field(min_length=1)
    roles: list[str] = Field(min_length=1)
    not_roles: list[str] = Field(default_factory=list)
    artefacts: list[str] = Field(min_length=1)
    determiners: list[str] = Field(min_length=1)
    quantifiers: list[str] = Field(default_factory=list)
    stop: list[str] = Field(min_length=1)
    possessive_only: list[str] = Field(default_factory=list)
    irregular_plurals: dict[str, str] = Field(default_factory=dict)
    irregular_verbs: dict[str, list[str]] = Field(default_factory=dict)


class TimePatterns(_Strict):
    dated: list[str]
    urgent: list[str]


class TeamSizePatterns(_Strict):
    in_leads: list[str]
    anywhere: list[str]


class PatternsFile(_Strict):
    """``knowledge/reading/patterns.yaml``."""

    version: Literal[1]
    fragments: dict[str, str] = Field(default_factory=dict)
    role: list[str]
    leads: list[str]
    team_size: TeamSizePatterns
    boss: list[str]
    constraints: dict[ConstraintKind, list[str]]
    time_pressure: TimePatterns
    questions: list[str]
    not_questions: list[str] = Field(default_factory=list)


class ActionPatterns(_Strict):
    done: list[str] = Field(min_length=1)
    named: list[str] = Field(default_factory=list)


class TriedFile(_Strict):
    """``knowledge/reading/tried.yaml``."""

    version: Literal[1]
    fragments: dict[str, str] = Field(default_factory=dict)
    first_person: str
    other_person: str
    before_subject: list[str]
    not_done: list[str]
    others_act: list[str]
    still_to_come: str
    tried_frame: str
    actions: dict[str, ActionPatterns] = Field(min_length=1)


@dataclass(frozen=True)
class TriedRules:
    """``tried.yaml`` compiled: per action, one pattern for the act (tried only where one of
    its verbs stands: ``triggers``) and one for its name in a list of things tried."""

    first_person: re.Pattern
    other_person: re.Pattern
    before_subject: re.Pattern
    not_done: re.Pattern
    others_act: re.Pattern
    still_to_come: re.Pattern
    frame: re.Pattern
    actions: tuple[tuple[str, re.Pattern, re.Pattern | None], ...]
    triggers: dict[str, tuple[int, ...]]  # a verb form -> the actions whose act starts with it
    past_forms: frozenset[str]  # "talked", "spoke", "held": a report of something done


@dataclass(frozen=True)
class Words:
    """``words.yaml`` as lookup tables for finding people and things word by word."""

    people: dict[str, str]  # every form of a people or boss noun, one or two words -> singular
    artefacts: frozenset[str]  # every form of a thing's noun, one or two words
    people_ends: frozenset[str]  # the last word of each form in `people`
    artefact_ends: frozenset[str]  # the last word of each form in `artefacts`
    determiners: frozenset[str]
    quantifiers: frozenset[str]
    stop: frozenset[str]
    numbers: dict[str, int]
    possessive_only: frozenset[str]
    lead_heads: frozenset[str]  # last words of people and group nouns, every form


@dataclass(frozen=True)
class ReadingRules:
    """Everything the reader needs, compiled."""

    abbreviations: frozenset[str]
    words: Words
    role: tuple[re.Pattern, ...]
    leads: tuple[re.Pattern, ...]
    team_size_in_leads: tuple[re.Pattern, ...]
    team_size_anywhere: re.Pattern  # all in one; pattern i in group p{i}, its number in n{i}
    boss: tuple[re.Pattern, ...]
    constraints: re.Pattern  # one group per kind, named for it
    constraint_kinds: tuple[ConstraintKind, ...]  # the most telling first
    time_dated: tuple[re.Pattern, ...]
    time_urgent: tuple[re.Pattern, ...]
    questions: re.Pattern
    not_questions: re.Pattern | None
    tried: TriedRules


def load_rules(knowledge_dir: Path | None = None) -> ReadingRules:
    """The reader's rules from ``knowledge_dir`` (default: the COACH_KNOWLEDGE_DIR setting),
    compiled once per folder."""
    if knowledge_dir is None:
        from app.settings import get_settings

        knowledge_dir = get_settings().knowledge_dir
    return _load_rules(Path(knowledge_dir).resolve())


@lru_cache(maxsize=4)
def _load_rules(knowledge_dir: Path) -> ReadingRules:
    folder = knowledge_dir / FOLDER
    words = load_yaml_model(folder / WORDS_FILE, WordsFile, "reader word list")
    patterns = load_yaml_model(folder / PATTERNS_FILE, PatternsFile, "reader patterns file")
    tried = load_yaml_model(folder / TRIED_FILE, TriedFile, "reader tried-actions file")
    from app.moves import load_actions  # the vocabulary's own loader, which checks it

    known = load_actions(knowledge_dir)
    for action in tried.actions:
        if action not in known:
            raise ConfigError(
                f"{folder / TRIED_FILE}: actions.{action} is not an action id of "
                f"{knowledge_dir / ACTIONS_FILE}: use one of its ids "
                f"({', '.join(known)}) or add the action there first."
            )
    compiler = PatternCompiler(_fragments(words), VerbForms(words.irregular_verbs))
    return ReadingRules(
        abbreviations=frozenset(a.lower().rstrip(".") for a in words.abbreviations),
        words=_words(words),
        **_patterns(patterns, compiler),
        tried=_tried(tried, compiler, folder / TRIED_FILE),
    )


def _fragments(words: WordsFile) -> dict[str, str]:
    """The fragments made from the word lists, for patterns to name as {{PEOPLE}} and so on."""
    irregular = words.irregular_plurals
    return {
        "PEOPLE": alternation(words.people + [plural(w, irregular) for w in words.people]),
        "PEOPLE_ONE": alternation(words.people),
        "GROUP": alternation(words.groups + [plural(w, irregular) for w in words.groups]),
        "GROUP_ONE": alternation(words.groups),
        "BOSS": alternation(words.bosses),
        "SENIOR": alternation(words.senior_titles),
        "ROLE": alternation([w for w in words.roles + words.people if w not in words.not_roles]),
        "ARTEFACT": alternation(words.artefacts + [plural(w, irregular) for w in words.artefacts]),
        "NUMBER": number_pattern(words.numbers),
        "STOP": alternation(words.stop),
    }


def _words(words: WordsFile) -> Words:
    irregular = words.irregular_plurals
    people: dict[str, str] = {}
    for noun in words.bosses + words.people:
        people[noun] = people[plural(noun, irregular)] = noun
    artefacts = {form for w in words.artefacts for form in (w, plural(w, irregular))}
    return Words(
        people=people,
        artefacts=frozenset(artefacts),
        people_ends=frozenset(p.split()[-1] for p in people),
        artefact_ends=frozenset(a.split()[-1] for a in artefacts),
        determiners=frozenset(words.determiners),
        quantifiers=frozenset(words.quantifiers),
        stop=frozenset(words.stop),
        numbers=dict(words.numbers),
        possessive_only=frozenset(words.possessive_only),
        lead_heads=frozenset(
            form.split()[-1]
            for w in words.people + words.groups
            for form in (w, plural(w, irregular))
        ),
    )


def _patterns(patterns: PatternsFile, compiler: PatternCompiler) -> dict:
    name, local = PATTERNS_FILE, patterns.fragments

    def each(where: str, items: list[str]) -> tuple[re.Pattern, ...]:
        return tuple(
            compiler.compile(p, local, f"{name}: {where}[{i}]") for i, p in enumerate(items)
        )

    return {
        "role": each("role", patterns.role),
        "leads": each("leads", patterns.leads),
        "team_size_in_leads": each("team_size.in_leads", patterns.team_size.in_leads),
        "team_size_anywhere": _union(
            compiler,
            {
                f"p{i}": p.replace("(?P<n>", f"(?P<n{i}>")
                for i, p in enumerate(patterns.team_size.anywhere)
            },
            local,
            f"{name}: team_size.anywhere",
        ),
        "boss": each("boss", patterns.boss),
        "constraints": _union(
            compiler,
            {kind: either(items) for kind, items in patterns.constraints.items()},
            local,
            f"{name}: constraints",
        ),
        "constraint_kinds": tuple(patterns.constraints),
        "time_dated": each("time_pressure.dated", patterns.time_pressure.dated),
        "time_urgent": each("time_pressure.urgent", patterns.time_pressure.urgent),
        "questions": compiler.compile(either(patterns.questions), local, f"{name}: questions"),
        "not_questions": (
            compiler.compile(either(patterns.not_questions), local, f"{name}: not_questions")
            if patterns.not_questions
            else None
        ),
    }


def _tried(tried: TriedFile, compiler: PatternCompiler, path: Path) -> TriedRules:
    name, local = TRIED_FILE, tried.fragments
    actions = []
    triggers: dict[str, list[int]] = {}
    for index, (action, entry) in enumerate(tried.actions.items()):
        where = f"{name}: actions.{action}"
        for i, pattern in enumerate(entry.done):
            leading = VERB.match(pattern)
            if not leading:
                raise ConfigError(
                    f"{path}: actions.{action}.done[{i}] must start with its verb in braces, "
                    f'like "{{talk|speak}} ...": the reader tries an action only where one of '
                    "its verbs stands."
                )
            for verb in leading.group(1).split("|"):
                first = verb.strip().split(" ", 1)[0]
                if not _LITERAL_WORD.fullmatch(first):
                    raise ConfigError(
                        f"{path}: actions.{action}.done[{i}]: the verb {first!r} must be a plain "
                        "lower-case word (write each spelling out: {organise|organize})."
                    )
                for form in compiler.verbs.forms(first):
                    triggers.setdefault(form, [])
                    if index not in triggers[form]:
                        triggers[form].append(index)
        done = compiler.compile(either(entry.done), local, f"{where}.done", whole=True)
        named = (
            compiler.compile(either(entry.named), local, f"{where}.named", whole=True)
            if entry.named
            else None
        )
        actions.append((action, done, named))

    def one(where: str, pattern: str) -> re.Pattern:
        return compiler.compile(pattern, local, f"{name}: {where}")

    return TriedRules(
        first_person=one("first_person", tried.first_person),
        other_person=one("other_person", tried.other_person),
        before_subject=one("before_subject", either(tried.before_subject)),
        not_done=one("not_done", either(tried.not_done)),
        others_act=one("others_act", either(tried.others_act)),
        still_to_come=one("still_to_come", tried.still_to_come),
        frame=one("tried_frame", tried.tried_frame),
        actions=tuple(actions),
        triggers={form: tuple(indexes) for form, indexes in triggers.items()},
        past_forms=compiler.verbs.past_forms(),
    )


def _union(
    compiler: PatternCompiler, parts: dict[str, str], local: dict[str, str], where: str
) -> re.Pattern:
    """One pattern for all of ``parts``, each in a group named by its key: one scan of a
    sentence instead of one per part. An error names the part at fault."""
    try:
        return compiler.compile(
            "|".join(f"(?P<{key}>{part})" for key, part in parts.items()), local, where
        )
    except ConfigError:
        for key, part in parts.items():
            compiler.compile(part, local, f"{where}.{key}")
        raise
