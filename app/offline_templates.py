"""The offline engine's wording (``prompts/offline.yaml``), validated when it is loaded.

A missing or misspelt key is a ``ConfigError`` naming the file and the key, raised at
``coach index`` (which loads it) rather than as a ``KeyError`` on the first question.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from app.data_files import load_yaml_model
from app.passages import FocusCode, Verdict

TEMPLATES_FILE = "offline.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Headings(_Strict):
    why: str
    steps: str
    pitfall: str
    watch: str
    check: str


class Connectors(_Strict):
    quote: str
    no_quote: str
    tried: str
    say: str
    question_lead: str
    no_direct_answer: str


class FocusWords(_Strict):
    why: str  # names the responsibility in the article's words; no claim about the person
    check: str  # what we can't know, asked instead of asserted
    step: str  # one step from the article, used only when no library situation fits
    follow_up: str  # the coach's own question when this area is unclear


class OfflineTemplates(_Strict):
    version: int = Field(ge=2)
    openings: dict[Verdict, str]
    summaries: dict[Verdict, str]
    headings: Headings
    verdict_phrases: dict[Verdict, str]
    connectors: Connectors
    focus: dict[FocusCode, FocusWords]
    suggested_asks: dict[Verdict, list[str]]
    follow_up_answer: str
    follow_up_same: str
    clarify_summary: str
    clarify_coaching: str
    closing: str


@lru_cache(maxsize=4)
def load_templates(prompts_dir: Path) -> OfflineTemplates:
    """The validated templates; a bad file raises ``ConfigError`` naming the key."""
    path = Path(prompts_dir) / TEMPLATES_FILE
    templates = load_yaml_model(path, OfflineTemplates, "offline coaching templates")
    missing = {"M1", "M2", "M3", "L1", "L2", "L3"} - set(templates.focus)
    if missing:
        from app.errors import ConfigError

        raise ConfigError(f"{path.name}: focus: missing {', '.join(sorted(missing))}.")
    return templates
