"""The structured answer every engine produces, and the request it answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from app.passages import FOCUS_CODES, FOCUS_NAMES, FocusCode, ScoredPassage, Verdict
from app.reading import Reading


class Usage(BaseModel):
    """Token counts as the model reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class SecondOpinion(BaseModel):
    """The local classifier's reading of the same situation."""

    verdict: Verdict
    confidence: float = Field(ge=0, le=1)
    agrees: bool
    note: str | None = None


class Evidence(BaseModel):
    """One of the person's own sentences, and the side and focus it was read as."""

    text: str
    side: Literal["management", "leadership"]
    code: FocusCode
    score: float = Field(ge=0, le=1)


class AnswerMeta(BaseModel):
    """How the answer was made: engine, model, prompt, timing, checks."""

    engine: str = ""
    model: str = ""
    prompt: str | None = None
    latency_ms: float = 0.0
    usage: Usage | None = None
    retrieved: list[str] = Field(default_factory=list)
    citation_errors: int = 0
    dropped_citations: list[str] = Field(default_factory=list)
    masked: list[str] = Field(default_factory=list)
    safety: str | None = None
    model_safety: str | None = None  # an LLM's own safety reading of the message
    safety_disagreement: str | None = None  # when the guard and the model read it differently
    injection_ignored: bool = False
    language: str = "en"
    fallback: bool = False
    repaired: bool = False
    cut_off: str | None = None  # "deadline" or "size": the LLM's answer was cut short there


class CoachingAnswer(BaseModel):
    """The coach's answer: a verdict (or questions when too vague), focus, coaching, sources."""

    verdict: Verdict | None = None
    confidence: float = Field(0.0, ge=0, le=1)
    focus: list[FocusCode] = Field(default_factory=list, max_length=3)
    summary: str = ""
    coaching: str = ""
    follow_up_questions: list[str] = Field(default_factory=list, max_length=3)  # the coach asks
    suggested_questions: list[str] = Field(default_factory=list, max_length=3)  # they might ask
    citations: list[str] = Field(default_factory=list)
    notices: list[str] = Field(default_factory=list)
    second_opinion: SecondOpinion | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    reading: Reading | None = None  # what the coach read in the person's messages
    meta: AnswerMeta = Field(default_factory=AnswerMeta)

    @field_validator("focus")
    @classmethod
    def _unique_focus(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _focus_when_judged(self) -> CoachingAnswer:
        if self.verdict is not None and not self.focus:
            raise ValueError("an answer with a verdict needs 1 to 3 focus codes")
        return self

    @property
    def needs_clarification(self) -> bool:
        """True when the coach asks questions instead of giving a verdict."""
        return self.verdict is None

    def focus_names(self) -> list[str]:
        return [FOCUS_NAMES[c] for c in self.focus]


class Turn(BaseModel):
    """One earlier message in the conversation."""

    role: str  # "user" or "assistant"
    text: str


class CoachRequest(BaseModel):
    """What an engine is asked: the situation, its context and the retrieved passages."""

    situation: str
    history: list[Turn] = Field(default_factory=list)
    passages: list[ScoredPassage] = Field(default_factory=list)
    prompt: str = "coach@v1"
    language: str = "en"
    local_verdict: Verdict | None = None
    local_confidence: float = 0.0
    local_probabilities: dict[str, float] = Field(default_factory=dict)
    local_focus: list[FocusCode] = Field(default_factory=list)
    local_focus_scores: dict[str, float] = Field(default_factory=dict)
    local_evidence: list[Evidence] = Field(default_factory=list)
    context: str = ""  # what was judged: the conversation's first message plus this one
    reading: Reading | None = None  # of the person's messages so far
    moves: list[Any] = Field(default_factory=list)  # app.move_match.Match, best first
    question_move: Any = None  # the Match closest to the question asked, if any
    turn_questions: list[str] = Field(default_factory=list)  # questions asked in this message

    def retrieved_ids(self) -> list[str]:
        return [p.passage.id for p in self.passages]


__all__ = [
    "FOCUS_CODES",
    "AnswerMeta",
    "CoachRequest",
    "CoachingAnswer",
    "Evidence",
    "SecondOpinion",
    "Turn",
    "Usage",
]
