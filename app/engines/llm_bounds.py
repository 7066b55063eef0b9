"""The limits of one LLM answer: a deadline for the whole answer and a cap on its size.

``COACH_LLM_TIMEOUT`` bounds each wait for the server's next bytes, so a server that
keeps sending (a runaway generation, a stream that never ends, megabytes of text)
never trips it. Every answer therefore gets ``AnswerBounds``: a deadline on the
monotonic clock (``COACH_LLM_DEADLINE``, retries and repair included) and a cap on the
reply's characters (``COACH_LLM_MAX_REPLY_CHARS``). They hold in two places:

* the engine counts the reply's text as it streams and stops reading at the cap or
  the deadline (``app.engines.llm``), keeping what it has shown;
* the HTTP client's event hooks (``BoundHooks``) shorten each request's timeouts to the
  time left and wrap each response body, so no read waits past the deadline and no
  body, streamed or not, grows past a byte cap. That covers what the engine cannot
  see: a non-streamed reply (repair, judge) and bytes that never complete an event.

Stopping means closing the response, which closes the connection: the server sees
the client go and stops generating.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from app.engines.reply_format import Header

# A streamed reply carries far more bytes than text: every token is a JSON event of
# about 150 to 300 bytes. The byte cap is a backstop for memory, well above what a
# reply at the character cap needs, so it never cuts a reply the character cap allows.
BYTES_PER_CHAR = 400
BYTES_SLACK = 1_000_000


class CutOff(Exception):
    """The answer passed its deadline (``reason`` "deadline") or size cap ("size").

    ``header`` and ``coaching`` are what had been read and shown when it stopped.
    """

    def __init__(self, reason: str, header: Header | None = None, coaching: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.header = header
        self.coaching = coaching


@dataclass
class AnswerBounds:
    """The deadline and size cap of one answer, started when it is made."""

    seconds: float
    max_chars: int
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0, init=False)
    tripped: str | None = field(default=None, init=False)  # the reason, once passed

    def __post_init__(self) -> None:
        self.started = self.clock()

    @property
    def max_bytes(self) -> int:
        return BYTES_PER_CHAR * self.max_chars + BYTES_SLACK

    def remaining(self) -> float:
        return self.seconds - (self.clock() - self.started)

    def trip(self, reason: str) -> NoReturn:
        self.tripped = reason
        raise CutOff(reason)

    def check_time(self) -> None:
        if self.remaining() <= 0:
            self.trip("deadline")

    def reason_for(self, failure: BaseException) -> str | None:
        """Whether ``failure`` (from the client) came from these bounds: their reason, or None.

        A failure raised by a hook reaches the engine wrapped by the client; a timeout
        after the deadline is the deadline, since the hooks shortened it to the time left.
        """
        if self.tripped is not None:
            return self.tripped
        if self.remaining() <= 0:
            self.tripped = "deadline"
            return self.tripped
        return None


class BoundHooks:
    """httpx event hooks that apply the calling thread's ``AnswerBounds`` to each request.

    ``active(bounds)`` makes ``bounds`` the current ones for the calls made inside it
    on this thread; outside it the hooks change nothing.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    @contextmanager
    def active(self, bounds: AnswerBounds) -> Iterator[None]:
        previous = getattr(self._local, "bounds", None)
        self._local.bounds = bounds
        try:
            yield
        finally:
            self._local.bounds = previous

    def event_hooks(self) -> dict[str, list[Callable[[Any], None]]]:
        return {"request": [self._on_request], "response": [self._on_response]}

    def _current(self) -> AnswerBounds | None:
        return getattr(self._local, "bounds", None)

    def _on_request(self, request: Any) -> None:
        bounds = self._current()
        if bounds is None:
            return
        bounds.check_time()
        left = max(bounds.remaining(), 0.001)
        timeout = request.extensions.get("timeout")
        if isinstance(timeout, dict):
            request.extensions["timeout"] = {
                name: left if value is None else min(value, left) for name, value in timeout.items()
            }

    def _on_response(self, response: Any) -> None:
        bounds = self._current()
        if bounds is not None:
            base = _sync_stream_class(response)
            response.stream = _bounded_body(response.stream, bounds, base)


def _bounded_body(stream: Any, bounds: AnswerBounds, base: type) -> Any:
    class BoundedBody(base):  # type: ignore[misc, valid-type]
        """The response body, stopped at the deadline or the byte cap."""

        def __iter__(self) -> Iterator[bytes]:
            received = 0
            for chunk in stream:
                received += len(chunk)
                if received > bounds.max_bytes:
                    bounds.trip("size")
                bounds.check_time()
                yield chunk

        def close(self) -> None:
            stream.close()

    return BoundedBody()


def _sync_stream_class(response: Any) -> type:
    """The ``SyncByteStream`` of the HTTP library that made ``response`` (the OpenAI client
    ships its own fork of httpx, so the class is looked up, not imported)."""
    package = sys.modules[type(response).__module__.split(".")[0]]
    return package.SyncByteStream
