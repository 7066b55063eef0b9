"""What the pipeline reads in a situation before any engine answers: the ``Reading`` of the
person's messages and the move-library situations that fit, found once for every engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.answer import Turn
from app.classifier import sentences
from app.move_match import Match, MoveStore
from app.offline_compose import main_question

# Below this closeness a typical question of the library is not the person's question.
QUESTION_MATCH_FLOOR = 0.45
# TF-IDF closeness below which a library situation shares no real word with theirs.
SHARED_WORDS = 0.05


@dataclass
class CoachingContext:
    reading: Any = None
    moves: list[Match] = field(default_factory=list)
    question_move: Match | None = None
    turn_questions: list[str] = field(default_factory=list)


def facts(reading: Any) -> dict[str, bool | None]:
    """What the reading says for the library's ``needs`` conditions (None: not known)."""
    if reading is None:
        return {}
    kinds = {c.kind for c in getattr(reading, "constraints", [])}
    has_reports = True if (reading.leads or reading.team_size) else None
    return {
        "has_boss": True if reading.boss else None,
        "formal_authority": False if "authority" in kinds else None,
        "has_reports": has_reports,
    }


def read_context(
    *,
    moves: MoveStore,
    embedder: Any,
    message: str,
    history: Sequence[Turn],
    vector: np.ndarray,
    verdict: str | None,
    focus: Sequence[str],
) -> CoachingContext:
    """The reading of everything the person wrote so far, and the fitting situations."""
    from app.reading import read_situation

    earlier = [t.text for t in history if t.role == "user"]
    everything = "\n\n".join([*earlier, message])
    reading = read_situation(everything)
    turn_questions = list(read_situation(message).questions) if earlier else []
    fitted = moves.get()
    # The situation is matched on what they describe; their questions are matched to the
    # library's questions below ("how do I get them on board?" is about no board).
    asked_set = set(reading.questions)
    units = [u for u in sentences(everything) if u not in asked_set]
    described = " ".join(units) or everything
    units = units[:40]
    sentence_vectors = embedder.embed(units) if units else None
    known = facts(reading)
    # A situation is a candidate only when nothing known rules it out and it shares a
    # distinctive word with theirs: advice for a situation that has nothing in common with
    # theirs is worse than none.
    shared = fitted.lexical(described)
    index = {s.id: i for i, s in enumerate(fitted.situations)}

    def allowed(situation) -> bool:
        if not situation.needs.allows(known):
            return False
        return bool(shared[index[situation.id]] >= SHARED_WORDS)

    scores = fitted.scores(vector, sentence_vectors, text=described, focus=focus, verdict=verdict)
    matches = fitted.match(scores, allowed=allowed)
    asked = turn_questions or list(reading.questions)
    question_move = None
    if asked:
        question = main_question(asked) or asked[-1]
        found = fitted.closest_ask(
            embedder.embed([question])[0], scores, lambda s: s.needs.allows(known)
        )
        if found is not None and found.score >= QUESTION_MATCH_FLOOR:
            question_move = found
    return CoachingContext(reading, matches, question_move, turn_questions)
