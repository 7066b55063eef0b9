"""The one interface every engine implements, and what an engine declares it can do."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from app.answer import CoachingAnswer, CoachRequest

EngineEvent = str | CoachingAnswer


@dataclass(frozen=True)
class Capabilities:
    """What the pipeline needs to know about an engine, instead of its name.

    ``remote``: the situation's text leaves this machine, so the guard masks personal
    data before it goes and says so. ``uses_prompt``: the engine answers through a
    versioned prompt (``prompts/coach/``), so the answer records the prompt and the
    prompt's canary is enforced. ``second_opinion``: the local classifier's reading is
    shown beside the engine's verdict (pointless when the engine is that classifier).
    """

    remote: bool = False
    uses_prompt: bool = False
    second_opinion: bool = False


OFFLINE = Capabilities()
REMOTE_LLM = Capabilities(remote=True, uses_prompt=True, second_opinion=True)
LOCAL_LLM = Capabilities(remote=False, uses_prompt=True, second_opinion=True)


@runtime_checkable
class Engine(Protocol):
    """Streams the coaching text as ``str`` chunks, then yields one ``CoachingAnswer``.

    The chunks, joined, equal the final answer's ``coaching``, except when an LLM
    attempt is abandoned mid-stream (a cut stream or a repair): its chunks come first,
    so a UI shows the final ``answer.coaching`` once it arrives. The pipeline
    (``app.coach``) validates citations, adds the second opinion and the timing;
    an engine only answers the request. Failures raise ``app.errors.CoachError``.

    ``name`` and ``model`` are plain labels for answers and records; the pipeline asks
    ``capabilities`` what to do, never the name.
    """

    name: str
    model: str
    capabilities: Capabilities

    def describe(self) -> dict[str, str]:
        """What to show and record about the engine (``engine``, ``model``, and ``host``
        and ``prompt`` when it has them); never a key or credentials."""
        ...

    def warm_up(self) -> None:
        """Load what the first answer would otherwise wait for (templates, a model)."""
        ...

    def run(self, request: CoachRequest) -> Iterator[EngineEvent]: ...
