"""The offline engine: the local classifier's verdict, and coaching composed from the article.

It needs no network, no key and no model download. The verdict and focus come
from the request (the pipeline runs the classifier once for every engine); this
engine turns them into coaching that quotes the person's own words, using the
templates in ``prompts/offline.yaml``. Below the confidence threshold it asks
follow-up questions instead of guessing. It is deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import yaml

from app.answer import AnswerMeta, CoachingAnswer, CoachRequest, Evidence
from app.engines.base import EngineEvent
from app.passages import FOCUS_NAMES, focus_side
from app.settings import Settings

TEMPLATES_FILE = "offline.yaml"
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")


@lru_cache(maxsize=4)
def load_templates(prompts_dir: Path) -> dict:
    return yaml.safe_load((prompts_dir / TEMPLATES_FILE).read_text(encoding="utf-8"))


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z][a-z'-]*", text.lower()))


SURE_WORDS = 40  # a description this long always gets a verdict
TOO_SHORT_WORDS = 8  # below this there is nothing to judge


def _nothing_to_judge(situation: str, confidence: float, settings: Settings) -> bool:
    """Ask instead of judging only when there is too little to go on."""
    words = len(situation.split())
    if words >= SURE_WORDS:
        return False
    return words < TOO_SHORT_WORDS or confidence < settings.min_confidence


def quotes_for(focus: list[str], evidence: list[Evidence]) -> dict[str, str]:
    """For each focus code, the person's sentence the classifier read as that code (or,
    failing that, as that code's side); never a sentence read as the other side."""
    details: dict[str, str] = {}
    used: set[str] = set()
    for exact in (True, False):
        for code in focus:
            if code in details:
                continue
            for item in evidence:
                fits = item.code == code if exact else item.side == focus_side(code)
                if fits and item.text not in used:
                    details[code] = _shorten(item.text)
                    used.add(item.text)
                    break
    return details


def _shorten(sentence: str, max_words: int = 22) -> str:
    words = sentence.strip().rstrip(".!?").split()
    text = " ".join(words[:max_words])
    return text + ("…" if len(words) > max_words else "")


def find_people(situation: str, templates: dict) -> str:
    lowered = _words(situation)
    for noun in templates["people"]:
        if noun in lowered:
            return f"your {noun}"
    return "your team"


class OfflineEngine:
    """Coaching from the local classifier and the article, with no language model."""

    name = "offline"
    model = "local-classifier"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

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
        if verdict is None or _nothing_to_judge(request.situation, confidence, self.settings):
            return self._clarify(request, templates, meta)
        focus = list(request.local_focus)[:3]
        people = find_people(request.situation, templates)
        details = quotes_for(focus, request.local_evidence)

        why = [templates["openings"][verdict]]
        for code in focus:
            block = templates["focus"][code]
            line = block["why"].format(people=people)
            if code in details:
                line += " " + templates["connectors"]["detail"].format(detail=details[code])
            why.append(line)
        steps = []
        for code in focus:
            for step in templates["focus"][code]["steps"]:
                steps.append(step.format(people=people))
        watch = [templates["focus"][code]["watch"] for code in focus]
        phrase = templates["verdict_phrases"][verdict]
        coaching = "\n\n".join(
            [
                templates["why_intro"].format(verdict_phrase=phrase),
                "\n\n".join(why),
                templates["steps_intro"],
                "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1)),
                templates["watch_intro"],
                "\n".join(f"- {w}" for w in watch),
                templates["closing"],
            ]
        )
        names = ", ".join(FOCUS_NAMES[c].lower() for c in focus)
        citations = [sp.passage.id for sp in request.passages if sp.passage.code in focus]
        side_paragraphs = [
            sp.passage.id
            for sp in request.passages
            if sp.passage.kind == "paragraph" and sp.passage.side == verdict
        ]
        citations += side_paragraphs[:1]
        questions = [templates["follow_ups"][c] for c in focus if c not in details][:2]
        return CoachingAnswer(
            verdict=verdict,
            confidence=confidence,
            focus=focus,
            summary=templates["summaries"][verdict].format(focus_names=names),
            coaching=coaching,
            follow_up_questions=questions,
            citations=citations,
            meta=meta,
        )

    def _clarify(self, request: CoachRequest, templates: dict, meta: AnswerMeta) -> CoachingAnswer:
        guess = request.local_verdict or "neither"
        ranked = sorted(
            request.local_focus_scores, key=request.local_focus_scores.get, reverse=True
        )
        questions = [templates["follow_ups"][c] for c in ranked[:3]] or [
            templates["follow_ups"]["M1"],
            templates["follow_ups"]["L3"],
        ]
        coaching = templates["clarify_coaching"].format(
            guess=guess, confidence=f"{request.local_confidence:.0%} sure"
        )
        coaching += "\n\n" + "\n".join(f"- {q}" for q in questions[:3])
        coaching += "\n\n" + templates["closing"]
        return CoachingAnswer(
            verdict=None,
            confidence=round(request.local_confidence, 4),
            summary=templates["clarify_summary"],
            coaching=coaching,
            follow_up_questions=questions[:3],
            meta=meta,
        )
