"""The offline engine: the local classifier's verdict, and coaching composed from the move
library and the article, about this person's situation.

It needs no network, no key and no model download. The pipeline (``app.coach``) runs the
classifier, reads the situation (``app.reading``) and matches the move library
(``app.move_match``) once for every engine; this engine composes the answer from them
(``app.offline_compose``) with the wording of ``prompts/offline.yaml``. A follow-up is
answered as one: a new question is answered about that question; more detail (or an
answer to the coach's question) updates the reading and the advice. It is deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from app.answer import AnswerMeta, CoachingAnswer, CoachRequest
from app.engines.base import Capabilities, EngineEvent
from app.moves import load_library
from app.offline_compose import compose, main_question
from app.offline_templates import OfflineTemplates, load_templates
from app.passages import FOCUS_NAMES
from app.settings import Settings

SURE_WORDS = 40  # a description this long always gets a verdict
TOO_SHORT_WORDS = 8  # below this there is nothing to judge


def _nothing_to_judge(situation: str, confidence: float, settings: Settings) -> bool:
    """Ask instead of judging only when there is too little to go on."""
    words = len(situation.split())
    if words >= SURE_WORDS:
        return False
    return words < TOO_SHORT_WORDS or confidence < settings.min_confidence


def is_follow_up(request: CoachRequest) -> bool:
    return any(t.role == "user" for t in request.history)


class OfflineEngine:
    """Coaching from the local classifier, the move library and the article; no model."""

    name = "offline"
    model = "local-classifier"
    capabilities = Capabilities(remote=False, uses_prompt=False, second_opinion=False)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def describe(self) -> dict[str, str]:
        return {"engine": self.name, "model": self.model}

    def warm_up(self) -> None:
        load_templates(self.settings.prompts_dir)
        load_library(self.settings.knowledge_dir)

    def run(self, request: CoachRequest) -> Iterator[EngineEvent]:
        answer = self.answer(request)
        for paragraph in re.split(r"(\n\n)", answer.coaching):
            if paragraph:
                yield paragraph
        yield answer

    def answer(self, request: CoachRequest) -> CoachingAnswer:
        templates = load_templates(self.settings.prompts_dir)
        meta = AnswerMeta(engine=self.name, model=self.model)
        verdict = request.local_verdict
        confidence = round(request.local_confidence, 4)
        follow_up = is_follow_up(request)
        judged_text = request.context or request.situation
        if verdict is None or _nothing_to_judge(judged_text, confidence, self.settings):
            return self._clarify(request, templates, meta)
        focus = list(request.local_focus)[:3]
        reading = request.reading
        question = main_question(reading.questions) if reading is not None else None
        lead_in = None
        if follow_up:
            # A new question is answered about that question; anything else (more detail,
            # an answer to the coach's question) updates the reading of the whole situation.
            question = main_question(request.turn_questions)
            lead_in = templates.follow_up_answer if question is None else None
        composed = compose(
            verdict=verdict,
            focus=focus,
            evidence=request.local_evidence,
            reading=reading,
            situations=[m.situation for m in request.moves],
            question=question,
            question_situation=request.question_move.situation if request.question_move else None,
            question_closeness=request.question_move.score if request.question_move else 0.0,
            action_labels=load_library(self.settings.knowledge_dir).actions,
            templates=templates,
            situation_text=judged_text,
            already_said="\n".join(t.text for t in request.history if t.role == "assistant"),
            lead_in=lead_in,
            brief=follow_up and question is not None,
        )
        names = ", ".join(FOCUS_NAMES[c].lower() for c in focus)
        citations = [sp.passage.id for sp in request.passages if sp.passage.code in focus]
        side_paragraphs = [
            sp.passage.id
            for sp in request.passages
            if sp.passage.kind == "paragraph" and sp.passage.side == verdict
        ]
        citations += side_paragraphs[:1]
        return CoachingAnswer(
            verdict=verdict,
            confidence=confidence,
            focus=focus,
            summary=templates.summaries[verdict].format(focus_names=names),
            coaching=composed.coaching,
            follow_up_questions=composed.questions,
            suggested_questions=composed.suggested,
            citations=citations,
            reading=reading,
            meta=meta,
        )

    def _clarify(
        self, request: CoachRequest, templates: OfflineTemplates, meta: AnswerMeta
    ) -> CoachingAnswer:
        guess = request.local_verdict or "neither"
        ranked = sorted(
            request.local_focus_scores, key=request.local_focus_scores.get, reverse=True
        )
        questions = [templates.focus[c].follow_up for c in ranked[:3]] or [
            templates.focus["M1"].follow_up,
            templates.focus["L3"].follow_up,
        ]
        coaching = templates.clarify_coaching.format(
            guess=guess, confidence=f"{request.local_confidence:.0%} sure"
        )
        coaching += "\n\n" + "\n".join(f"- {q}" for q in questions[:3])
        coaching += "\n\n" + templates.closing
        return CoachingAnswer(
            verdict=None,
            confidence=round(request.local_confidence, 4),
            summary=templates.clarify_summary,
            coaching=coaching,
            follow_up_questions=questions[:3],
            reading=request.reading,
            meta=meta,
        )
