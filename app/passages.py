"""The coach's vocabulary: passages of the article, responsibility codes and verdicts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

Verdict = Literal["management", "leadership", "both"]
Side = Literal["management", "leadership", "both", "none"]
Kind = Literal["paragraph", "responsibility"]
FocusCode = Literal["M1", "M2", "M3", "L1", "L2", "L3"]

VERDICTS: tuple[Verdict, ...] = ("management", "leadership", "both")
FOCUS_CODES: tuple[FocusCode, ...] = ("M1", "M2", "M3", "L1", "L2", "L3")
FOCUS_NAMES: dict[str, str] = {
    "M1": "Setting clear objectives",
    "M2": "Organizing resources",
    "M3": "Monitoring performance",
    "L1": "Setting a compelling vision",
    "L2": "Empowering others",
    "L3": "Building trust",
}


def focus_side(code: str) -> Literal["management", "leadership"]:
    """M codes are management responsibilities, L codes leadership ones."""
    return "management" if code.startswith("M") else "leadership"


class Passage(BaseModel):
    """One retrievable paragraph or responsibility bullet of a knowledge article."""

    id: str
    doc_id: str
    title: str
    author: str = ""
    publisher: str = ""
    section: str
    kind: Kind
    side: Side
    code: FocusCode | None = None
    text: str
    source: str
    start: int
    end: int
    hint: str = ""

    def embedding_text(self) -> str:
        """What the index embeds: the text, plus the everyday phrasing hint if any."""
        return f"{self.text}\n{self.hint}" if self.hint else self.text

    def metadata(self) -> dict[str, str | int]:
        """Flat metadata for the vector store (no None values)."""
        data = self.model_dump(exclude={"text", "code"})
        data["code"] = self.code or ""
        return data

    @classmethod
    def from_metadata(cls, text: str, meta: dict) -> Passage:
        return cls(text=text, **{**meta, "code": meta.get("code") or None})


class ScoredPassage(BaseModel):
    """A passage with its similarity to the question (cosine, higher is closer)."""

    passage: Passage
    score: float
