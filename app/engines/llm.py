"""The LLM engine: LangChain's ChatOpenAI against OpenAI or any OpenAI-compatible server.

It renders the prompt (``prompts/coach/*.yaml`` through ``app.prompts``, with the
values from ``app.engines.llm_prompt``), streams the reply through the reader of
``app.engines.reply_format`` and turns client failures into plain errors with
``app.engines.llm_errors``.

* Malformed output (see ``reply_format``; also a 200 response that is not a chat
  completion at all) gets one repair attempt: a non-streamed call that sends the bad
  output back with the prompt's ``repair`` template. If that is malformed too, the
  ``fallback`` engine answers the same request; its answer has ``meta.fallback`` set
  and a notice. Without a fallback an ``LLMError`` says so.
* 429, 5xx and cut streams are retried with exponential backoff (``Retry-After``
  honoured, capped), at most ``settings.llm_max_attempts`` attempts per call, then an
  ``LLMError``; every other failure is an ``LLMError`` at once (see ``llm_errors``).
* Every answer is bounded (``llm_bounds``): a whole-answer deadline
  (``COACH_LLM_DEADLINE``) and a reply-size cap (``COACH_LLM_MAX_REPLY_CHARS``). Past
  either, reading stops and the connection is closed. Coaching already shown is kept
  as the answer, with a notice that it was cut off and ``meta.cut_off`` set; when
  nothing was shown yet, the ``fallback`` engine answers with a notice saying why
  (without a fallback, an ``LLMError``).
* Chunks are yielded only after the reply's header has been read; the UI renders them
  live and replaces them with ``answer.coaching`` when the answer arrives (see
  ``reply_format`` for when the two differ).

This module and ``app.prompts`` are the only places that talk to LangChain/OpenAI.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from app.answer import AnswerMeta, CoachingAnswer, CoachRequest, Usage
from app.engines.base import LOCAL_LLM, REMOTE_LLM, Engine, EngineEvent
from app.engines.llm_bounds import AnswerBounds, BoundHooks, CutOff
from app.engines.llm_errors import Server, Transient, cut_stream, out_of_time, translate
from app.engines.llm_prompt import language_name, neutralise, render_history, render_passages
from app.engines.reply_format import AnswerReader, FormatError, Header, parse_answer
from app.errors import ConfigError, LLMError
from app.prompts import Prompt, load_prompt
from app.settings import Settings
from app.urls import display_url

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

__all__ = [
    "FALLBACK_NOTICE",
    "LENGTH_NOTICE",
    "AnswerReader",
    "FormatError",
    "LLMEngine",
    "parse_answer",
    "render_history",
    "render_passages",
]

_T = TypeVar("_T")

FALLBACK_NOTICE = (
    "The language model's answer could not be read, so this verdict comes from the offline engine."
)
LENGTH_NOTICE = "The language model stopped at its length limit, so the coaching may end abruptly."
CUT_OFF_NOTICES = {
    "deadline": "The language model was still writing after {seconds:g} s, the limit for one "
    "answer, so its answer ends here. Raise COACH_LLM_DEADLINE to allow more time.",
    "size": "The language model's answer passed {chars:,} characters, the limit for one "
    "answer, so it ends here. Raise COACH_LLM_MAX_REPLY_CHARS to allow longer answers.",
}
CUT_OFF_FALLBACK = {
    "deadline": "The language model had not given a readable answer after {seconds:g} s, the "
    "limit for one answer (COACH_LLM_DEADLINE), so this verdict comes from the offline engine.",
    "size": "The language model's reply passed {chars:,} characters (COACH_LLM_MAX_REPLY_CHARS) "
    "without a readable answer, so this verdict comes from the offline engine.",
}
CUT_OFF_ERRORS = {
    "deadline": "The language model had not given a readable answer after {seconds:g} s, the "
    "limit for one answer; try again, raise COACH_LLM_DEADLINE, use a faster model "
    "(COACH_LLM_MODEL), or use the offline engine (COACH_ENGINE=offline).",
    "size": "The language model's reply passed {chars:,} characters without a readable "
    "answer; try again, raise COACH_LLM_MAX_REPLY_CHARS, use another model (COACH_LLM_MODEL), "
    "or use the offline engine (COACH_ENGINE=offline).",
}
PLACEHOLDER_KEY = "not-needed"  # local servers (Ollama, llama.cpp) ignore the key but need one
MAX_REPAIR_ECHO = 6000  # how much of a bad answer is sent back with the repair request
MAX_BACKOFF = 20.0


@dataclass
class _Outcome:
    header: Header
    coaching: str
    finish_reason: str | None


@dataclass
class _Tally:
    usages: list[Usage] = field(default_factory=list)

    def add(self, metadata: Any) -> None:
        if not metadata:
            return
        self.usages.append(
            Usage(
                prompt_tokens=int(metadata.get("input_tokens") or 0),
                completion_tokens=int(metadata.get("output_tokens") or 0),
                total_tokens=int(metadata.get("total_tokens") or 0),
            )
        )

    def total(self) -> Usage | None:
        if not self.usages:
            return None
        return Usage(
            prompt_tokens=sum(u.prompt_tokens for u in self.usages),
            completion_tokens=sum(u.completion_tokens for u in self.usages),
            total_tokens=sum(u.total_tokens for u in self.usages),
        )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in content
            if isinstance(part, str | dict)
        )
    return ""


def _cause(failure: Exception, exc: Exception) -> Exception | None:
    """What to chain ``failure`` to: nothing for an ``LLMError``, whose message says it all
    (the client's exception may echo the server's URL, query and all, into a recorded
    traceback); the client's exception for the internal failures."""
    return None if isinstance(failure, LLMError) else exc


def _split_url(url: str | None) -> tuple[str | None, dict[str, str] | None]:
    """A base URL without its query and fragment, and the query as parameters to send with
    every request (the client would otherwise glue paths onto the query)."""
    if not url:
        return url, None
    parts = urlsplit(url)
    if not parts.query and not parts.fragment:
        return url, None
    query = dict(parse_qsl(parts.query, keep_blank_values=True)) or None
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), query


class LLMEngine:
    """Coaches with a chat model; see the module docstring for format and failure handling.

    ``prompt`` pins a prompt ``name@version``; without it each request's ``prompt`` is used.
    ``retry_base_delay`` is the first backoff pause in seconds (doubled per retry).
    ``settings_env`` is the prefix of the variables that configure this model, named in
    error messages (``COACH_JUDGE`` for the eval judge's own model).
    ``remote`` False declares that the server runs on this machine (the built-in local
    runtime), so the pipeline does not treat the text as leaving it; any configured
    server counts as remote, since a URL alone cannot prove where the text goes.
    """

    name = "llm"

    def __init__(
        self,
        settings: Settings,
        fallback: Engine | None = None,
        prompt: str | None = None,
        *,
        retry_base_delay: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        remote: bool = True,
        request_options: Callable[[CoachRequest], dict[str, Any]] | None = None,
        settings_env: str = "COACH_LLM",
    ) -> None:
        self.settings = settings
        self.capabilities = REMOTE_LLM if remote else LOCAL_LLM
        # Extra arguments for each coaching call, e.g. the local engine's grammar.
        self.request_options = request_options
        self.fallback = fallback
        self.prompt = prompt
        self.model = settings.llm_model
        self.retry_base_delay = retry_base_delay
        self._sleep = sleep
        self.settings_env = settings_env
        self._chat: ChatOpenAI | None = None
        self._hooks = BoundHooks()
        self._prompts: dict[str, Prompt] = {}

    # -- description ------------------------------------------------------------------

    @property
    def server(self) -> Server:
        """The server as failure messages name it (never the key)."""
        return Server(
            base_url=self.settings.llm_base_url,
            model=self.model,
            timeout=self.settings.llm_timeout,
            secret=self.settings.api_key(),
            env=self.settings_env,
        )

    @property
    def host(self) -> str:
        """The server's host[:port] for messages and the sidebar, without any user:password@."""
        return display_url(self.settings.llm_base_url, host_only=True)

    @property
    def base_url(self) -> str:
        """The server's URL for messages, without credentials or query."""
        return display_url(self.settings.llm_base_url)

    def describe(self) -> dict[str, str]:
        """Engine, model, host and prompt for display; never the key."""
        return {
            "engine": self.name,
            "model": self.model,
            "host": self.host,
            "prompt": self.prompt or self.settings.prompt,
        }

    def warm_up(self) -> None:
        """Make the client now (importing it takes seconds), not inside the first answer's
        deadline; without a key or server there is nothing to make yet."""
        with contextlib.suppress(ConfigError):
            self._client()

    # -- running ----------------------------------------------------------------------

    def run(self, request: CoachRequest) -> Iterator[EngineEvent]:
        """Stream the coaching text, then yield the CoachingAnswer."""
        started = time.perf_counter()
        prompt = self._load_prompt(self.prompt or request.prompt)
        system, user = prompt.render(
            situation=neutralise(request.situation.strip()),
            passages=render_passages(request.passages),
            history=render_history(request.history, self.settings.history_chars),
            language=language_name(request.language),
        )
        messages: list[tuple[str, str]] = [("system", system), ("human", user)]
        options = self.request_options(request) if self.request_options else {}
        tally = _Tally()
        self._client()  # made (imported, the first time) before the answer's clock starts
        bounds = self._bounds()
        repaired = False
        try:
            outcome = yield from self._retrying(
                lambda: self._stream_once(messages, tally, bounds, options), bounds
            )
        except CutOff as cut:
            yield from self._cut_short(request, cut, prompt, tally, started)
            return
        except FormatError as bad:
            repair = prompt.render_repair(problem=bad.problem)
            if repair is None:
                yield from self._fall_back(request, bad, asked_again=False)
                return
            retry = [*messages, ("ai", bad.raw[:MAX_REPAIR_ECHO]), ("human", repair)]
            try:
                text, finish = self._with_retries(
                    lambda: self._invoke(retry, tally, bounds, options), bounds
                )
                header, coaching = parse_answer(text)
            except CutOff as cut:
                yield from self._cut_short(request, CutOff(cut.reason), prompt, tally, started)
                return
            except FormatError as again:
                yield from self._fall_back(request, again, asked_again=True)
                return
            yield coaching  # not streamed: the repaired answer arrives in one piece
            outcome = _Outcome(header, coaching, finish)
            repaired = True
        notices = [LENGTH_NOTICE] if outcome.finish_reason == "length" else []
        yield self._answer(
            outcome.header,
            outcome.coaching,
            notices,
            request,
            prompt,
            tally,
            started,
            repaired=repaired,
        )

    def _bounds(self) -> AnswerBounds:
        return AnswerBounds(self.settings.llm_deadline, self.settings.llm_max_reply_chars)

    def _cut_short(
        self,
        request: CoachRequest,
        cut: CutOff,
        prompt: Prompt,
        tally: _Tally,
        started: float,
    ) -> Iterator[EngineEvent]:
        """The answer passed its deadline or size cap: keep the coaching shown so far, or,
        when nothing was shown, let the fallback answer and say why."""
        limits = {"seconds": self.settings.llm_deadline, "chars": self.settings.llm_max_reply_chars}
        header = cut.header
        if header is None or header.stops or not cut.coaching.strip():
            if self.fallback is None:
                raise LLMError(CUT_OFF_ERRORS[cut.reason].format(**limits))
            yield from self._fallback_answer(request, CUT_OFF_FALLBACK[cut.reason].format(**limits))
            return
        notices = [CUT_OFF_NOTICES[cut.reason].format(**limits)]
        yield self._answer(
            header, cut.coaching, notices, request, prompt, tally, started, cut_off=cut.reason
        )

    def _answer(
        self,
        header,
        coaching: str,
        notices: list[str],
        request: CoachRequest,
        prompt: Prompt,
        tally: _Tally,
        started: float,
        **meta,
    ) -> CoachingAnswer:
        """The answer a read header and its coaching make, with how it was made."""
        return CoachingAnswer(
            verdict=header.verdict,
            confidence=header.confidence,
            focus=header.focus,  # type: ignore[arg-type]
            summary=header.summary,
            coaching=coaching,
            follow_up_questions=header.questions,
            citations=header.citations,
            notices=notices,
            meta=AnswerMeta(
                engine=self.name,
                model=self.model,
                prompt=prompt.ref,
                latency_ms=(time.perf_counter() - started) * 1000,
                usage=tally.total(),
                language=request.language,
                model_safety=header.safety,
                **meta,
            ),
        )

    def _load_prompt(self, ref: str) -> Prompt:
        if ref not in self._prompts:
            self._prompts[ref] = load_prompt(ref, self.settings.prompts_dir)
        return self._prompts[ref]

    def _fall_back(
        self, request: CoachRequest, bad: FormatError, *, asked_again: bool
    ) -> Iterator[EngineEvent]:
        if self.fallback is None:
            again = ", even after asking again" if asked_again else ""
            raise LLMError(
                f"The language model's answer could not be read{again} ({bad.problem}). "
                "Try again, use another model (COACH_LLM_MODEL), or use the offline engine "
                "(COACH_ENGINE=offline)."
            )
        yield from self._fallback_answer(request, FALLBACK_NOTICE)

    def _fallback_answer(self, request: CoachRequest, notice: str) -> Iterator[EngineEvent]:
        assert self.fallback is not None
        for event in self.fallback.run(request):
            if isinstance(event, CoachingAnswer):
                answer = event.model_copy(deep=True)
                answer.meta.fallback = True
                answer.notices.append(notice)
                yield answer
            else:
                yield event

    def complete(self, system: str, user: str) -> tuple[str, Usage | None]:
        """One plain, non-streamed call (the eval judge uses it): reply text and token usage.

        429 and 5xx are retried as in ``run``, within the same deadline and size cap;
        every failure is an ``LLMError`` with the same plain messages, and the reply is
        returned as is, without format checks.
        """
        tally = _Tally()
        messages = [("system", system), ("human", user)]
        self._client()  # made (imported, the first time) before the answer's clock starts
        bounds = self._bounds()
        try:
            text, _finish = self._with_retries(
                lambda: self._invoke(messages, tally, bounds), bounds
            )
        except FormatError:
            raise LLMError(
                f"The server at {self.base_url} did not answer like an OpenAI chat completion; "
                f"check that {self.settings_env}_BASE_URL points at an OpenAI-compatible /v1 "
                "endpoint."
            ) from None
        except CutOff as cut:
            limit = (
                f"within {self.settings.llm_deadline:g} s (COACH_LLM_DEADLINE)"
                if cut.reason == "deadline"
                else f"within {self.settings.llm_max_reply_chars:,} characters "
                "(COACH_LLM_MAX_REPLY_CHARS)"
            )
            raise LLMError(
                f"The LLM server at {self.host} did not finish its reply {limit}; "
                "try again, or raise the limit."
            ) from None
        return text, tally.total()

    def _pause(self, number: int, failure: Transient, bounds: AnswerBounds) -> None:
        """Back off before attempt ``number + 1``, or raise once attempts are used up or the
        pause would outlast the answer's deadline."""
        delay = self.retry_base_delay * 2 ** (number - 1)
        if failure.retry_after is not None:
            delay = max(delay, failure.retry_after)
        delay = min(delay, MAX_BACKOFF)
        if number >= self.settings.llm_max_attempts:
            raise LLMError(failure.final.format(n=number)) from None
        if delay >= bounds.remaining():
            raise out_of_time(self.server, failure, self.settings.llm_deadline) from None
        self._sleep(delay)

    def _retrying(
        self, attempt: Callable[[], Generator[str, None, _Outcome]], bounds: AnswerBounds
    ) -> Generator[str, None, _Outcome]:
        """Run a streaming attempt, again after a transient failure."""
        number = 0
        while True:
            number += 1
            try:
                return (yield from attempt())
            except Transient as failure:
                self._pause(number, failure, bounds)

    def _with_retries(self, call: Callable[[], _T], bounds: AnswerBounds) -> _T:
        """Run a plain call, again after a transient failure."""
        number = 0
        while True:
            number += 1
            try:
                return call()
            except Transient as failure:
                self._pause(number, failure, bounds)

    def _stream_once(
        self,
        messages: list[tuple[str, str]],
        tally: _Tally,
        bounds: AnswerBounds,
        options: dict[str, Any] | None = None,
    ) -> Generator[str, None, _Outcome]:
        reader = AnswerReader()
        finish: str | None = None
        received = False

        def cut_off(reason: str) -> CutOff:
            return CutOff(reason, reader.header, reader.coaching)

        bounds.check_time()
        stream = self._client().stream(messages, **(options or {}))
        try:  # closing the stream closes the connection: the server stops generating
            while True:
                try:
                    with self._hooks.active(bounds):
                        chunk = next(stream)
                except StopIteration:
                    break
                except Exception as exc:
                    if reason := bounds.reason_for(exc):
                        raise cut_off(reason) from None
                    failure = translate(exc, self.server, received=received, raw=reader.raw)
                    raise failure from _cause(failure, exc)
                received = True
                finish = (chunk.response_metadata or {}).get("finish_reason") or finish
                tally.add(getattr(chunk, "usage_metadata", None))
                text = _text(chunk.content)
                if text:
                    room = max(bounds.max_chars - len(reader.raw), 0)
                    ready = reader.feed(text[:room]) if room else ""
                    if reader.header is not None and reader.header.stops:
                        # The model will not coach this: stop generating, show nothing.
                        return _Outcome(reader.header, "", finish or "stop")
                    if ready:
                        yield ready
                    if len(text) > room:
                        raise cut_off("size")
                if bounds.remaining() <= 0:
                    raise cut_off("deadline")
        finally:
            stream.close()
        if finish is None:
            raise cut_stream(self.server)
        rest = reader.close()  # a last line held back because it might have been '---'
        if rest:
            yield rest
        header, coaching = reader.finish()
        return _Outcome(header, coaching, finish)

    def _invoke(
        self,
        messages: list[tuple[str, str]],
        tally: _Tally,
        bounds: AnswerBounds,
        options: dict[str, Any] | None = None,
    ) -> tuple[str, str | None]:
        """One non-streamed call: the reply text and its finish reason."""
        bounds.check_time()
        try:
            with self._hooks.active(bounds):
                message = self._client().invoke(messages, stream=False, **(options or {}))
        except Exception as exc:
            if reason := bounds.reason_for(exc):
                raise CutOff(reason) from None
            failure = translate(exc, self.server, received=False)
            raise failure from _cause(failure, exc)
        tally.add(getattr(message, "usage_metadata", None))
        finish = (message.response_metadata or {}).get("finish_reason")
        text = _text(message.content)
        if len(text) > bounds.max_chars:
            raise CutOff("size")
        return text, finish

    # -- the client and its errors ----------------------------------------------------

    def _client(self) -> ChatOpenAI:
        if self._chat is None:
            key = self.settings.api_key()
            if not key and not self.settings.llm_base_url:
                raise ConfigError(
                    "No LLM is configured: set OPENAI_API_KEY or COACH_LLM_BASE_URL, "
                    "or use the offline engine (COACH_ENGINE=offline)."
                )
            import openai
            from langchain_openai import ChatOpenAI

            base_url, query = _split_url(self.settings.llm_base_url)
            self._chat = ChatOpenAI(
                model=self.settings.llm_model,
                base_url=base_url,
                default_query=query,
                api_key=key or PLACEHOLDER_KEY,
                timeout=self.settings.llm_timeout,
                temperature=self.settings.llm_temperature,
                max_tokens=self.settings.llm_max_tokens,  # every call is bounded
                streaming=True,
                stream_usage=True,
                max_retries=0,  # retries are ours, so their number and pauses are known
                use_responses_api=False,  # OpenAI-compatible servers speak chat completions
                # Our own HTTP client, so each answer's deadline and size cap reach the
                # bytes themselves (see llm_bounds).
                http_client=openai.DefaultHttpxClient(event_hooks=self._hooks.event_hooks()),
            )
        return self._chat
