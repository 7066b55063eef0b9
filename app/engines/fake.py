"""A deterministic engine for tests: scripted replies, and a record of the calls it got."""

from __future__ import annotations

import re
from collections.abc import Iterator

from app.answer import CoachingAnswer, CoachRequest
from app.engines.base import LOCAL_LLM, Capabilities, EngineEvent


class FakeEngine:
    """Answers from a queue of scripted replies (an answer or an exception to raise).

    With an empty queue it answers ``default`` if given, else raises AssertionError,
    so a test never gets an answer it did not script. By default it declares the
    capabilities of a language model on this machine (a prompt and a second opinion,
    nothing sent away); a test of what happens for a remote model passes
    ``capabilities=REMOTE_LLM``.
    """

    name = "fake"

    def __init__(
        self,
        replies: list[CoachingAnswer | Exception] | None = None,
        *,
        default: CoachingAnswer | None = None,
        model: str = "fake-model",
        capabilities: Capabilities = LOCAL_LLM,
    ) -> None:
        self.replies: list[CoachingAnswer | Exception] = list(replies or [])
        self.default = default
        self.model = model
        self.capabilities = capabilities
        self.warmed_up = False
        self.calls: list[CoachRequest] = []

    def enqueue(self, *replies: CoachingAnswer | Exception) -> FakeEngine:
        self.replies.extend(replies)
        return self

    def describe(self) -> dict[str, str]:
        return {"engine": self.name, "model": self.model}

    def warm_up(self) -> None:
        self.warmed_up = True

    def run(self, request: CoachRequest) -> Iterator[EngineEvent]:
        self.calls.append(request)
        if self.replies:
            reply = self.replies.pop(0)
        elif self.default is not None:
            reply = self.default
        else:
            raise AssertionError("FakeEngine has no scripted reply left")
        if isinstance(reply, Exception):
            raise reply
        # Stream word by word, keeping whitespace, so joined chunks equal the coaching text.
        yield from re.findall(r"\S+\s*|\s+", reply.coaching)
        yield reply.model_copy(deep=True)
