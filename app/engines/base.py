"""The one interface every engine implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from app.answer import CoachingAnswer, CoachRequest

EngineEvent = str | CoachingAnswer


@runtime_checkable
class Engine(Protocol):
    """Streams the coaching text as ``str`` chunks, then yields one ``CoachingAnswer``.

    The chunks, joined, equal the final answer's ``coaching``, except when an LLM
    attempt is abandoned mid-stream (a cut stream or a repair): its chunks come first,
    so a UI shows the final ``answer.coaching`` once it arrives. The pipeline
    (``app.coach``) validates citations, adds the second opinion and the timing;
    an engine only answers the request. Failures raise ``app.errors.CoachError``.
    """

    name: str
    model: str

    def run(self, request: CoachRequest) -> Iterator[EngineEvent]: ...
