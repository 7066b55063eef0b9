"""``prompts/safety.yaml`` as validated data: patterns, replies and notices of the guard.

A missing or misspelt key is an error naming the file and the key when the rules are
first loaded (``coach index`` loads them), not a ``KeyError`` on the first question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from app.data_files import load_yaml_model
from app.errors import ConfigError

SAFETY_FILE = "safety.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PatternsFile(_Strict):
    injection: list[str] = Field(min_length=1)
    crisis_explicit: list[str] = Field(default_factory=list)
    crisis_other_languages: list[str] = Field(default_factory=list)


class Reply(_Strict):
    summary: str
    coaching: str
    follow_up_questions: list[str] = Field(default_factory=list)


class WorkplaceTopic(_Strict):
    when: list[str] = Field(min_length=1)
    say: str


class CrisisReply(_Strict):
    summary: str
    contacts: str
    right_now: dict[str, str]
    at_risk: dict[str, list[str]]
    workplace: list[WorkplaceTopic] = Field(default_factory=list)
    closing: str
    follow_up_questions: list[str] = Field(default_factory=list)


class Replies(_Strict):
    crisis: CrisisReply
    unethical: Reply
    prompt_leak: Reply
    off_topic: Reply
    clarify: Reply


class Notices(_Strict):
    injection: str
    prompt_leak: str
    masked: str
    masked_offline: str
    language_offline: str
    truncated: str
    canary: str
    model_escalated: str


class SafetyFile(_Strict):
    version: int
    patterns: PatternsFile
    replies: Replies
    notices: Notices


@dataclass(frozen=True)
class GuardRules:
    """The compiled rules."""

    injection: list[re.Pattern]
    crisis_explicit: list[re.Pattern]
    crisis_other_languages: list[re.Pattern]
    replies: Replies
    notices: dict[str, str]
    crisis_at_risk: dict[str, list[re.Pattern]]
    crisis_workplace: list[tuple[list[re.Pattern], str]]


def _compile(patterns: list[str], where: str, flags: int = re.IGNORECASE) -> list[re.Pattern]:
    out = []
    for i, pattern in enumerate(patterns):
        try:
            out.append(re.compile(pattern, flags))
        except re.error as exc:
            raise ConfigError(
                f"{SAFETY_FILE}: {where}[{i}] is not a valid pattern: {exc}."
            ) from None
    return out


@lru_cache(maxsize=4)
def load_rules(prompts_dir: Path) -> GuardRules:
    """Read and validate ``prompts/safety.yaml``."""
    data = load_yaml_model(prompts_dir / SAFETY_FILE, SafetyFile, "guard rules file")
    crisis = data.replies.crisis
    return GuardRules(
        injection=_compile(data.patterns.injection, "patterns.injection"),
        crisis_explicit=_compile(data.patterns.crisis_explicit, "patterns.crisis_explicit"),
        crisis_other_languages=_compile(
            data.patterns.crisis_other_languages, "patterns.crisis_other_languages"
        ),
        replies=data.replies,
        notices=data.notices.model_dump(),
        crisis_at_risk={
            k: _compile(v, f"replies.crisis.at_risk.{k}") for k, v in crisis.at_risk.items()
        },
        crisis_workplace=[
            (_compile(t.when, f"replies.crisis.workplace[{i}].when"), t.say)
            for i, t in enumerate(crisis.workplace)
        ],
    )
