"""What the LLM engine tells a person when a call fails: client exceptions made plain.

* 429 and 5xx, and a stream cut halfway (the connection drops after the request was
  accepted, or the stream ends without a finish reason), are ``Transient``: the engine
  retries them with backoff (``Retry-After`` honoured) and shows ``final`` after the
  last attempt. A cut stream is not malformed output: the model did nothing wrong, and
  a repair prompt would only ask it to finish a text it never saw end.
* Timeouts, 401, 403, 404, 400, an exhausted quota and connection refused are an
  ``LLMError`` at once, whose message says what to do. A connection that cannot be
  opened at all is "not answering"; one that drops after the request was accepted is a
  cut stream.
* A 200 response that is not a chat completion (an HTML page from a proxy, an empty
  stream) is a ``FormatError``, so it gets the same repair-or-fallback as a bad reply.

Messages name the server only through ``app.urls.display_url`` and never contain the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.engines.reply_format import FormatError
from app.errors import LLMError
from app.urls import display_url

NOT_A_COMPLETION = "the server's reply was not an OpenAI chat completion"


class Transient(Exception):
    """A failure worth retrying (429, 5xx, a cut stream); ``final`` is shown after the last
    attempt, with ``{n}`` replaced by the number of attempts. ``what`` says what happened
    in a few words ("failed with error 503"), for when time runs out before the next try."""

    def __init__(self, final: str, what: str, retry_after: float | None = None) -> None:
        super().__init__(final)
        self.final = final
        self.what = what
        self.retry_after = retry_after


@dataclass(frozen=True)
class Server:
    """What failure messages say about the server: never the key, never credentials."""

    base_url: str | None  # as configured; None means OpenAI's own API
    model: str
    timeout: float
    secret: str | None = None  # the API key, only so that it can be scrubbed from messages
    env: str = "COACH_LLM"  # prefix of the variables that configure this model

    @property
    def host(self) -> str:
        return display_url(self.base_url, host_only=True)

    @property
    def url(self) -> str:
        return display_url(self.base_url)

    def scrub(self, text: str) -> str:
        """``text`` with the key (if it is long enough to be one) replaced by ``***``."""
        if self.secret and len(self.secret) >= 4:
            text = text.replace(self.secret, "***")
        return text


def cut_stream(server: Server) -> Transient:
    """The failure of a stream that ended before the answer did."""
    return Transient(
        f"The LLM server at {server.host} broke off its answer midway {{n}} times in a row; "
        "try again, or check the server.",
        "broke off its answer midway",
    )


def out_of_time(server: Server, failure: Transient, seconds: float) -> LLMError:
    """A transient failure with no time left to try again within the answer's deadline."""
    return LLMError(
        f"The LLM server at {server.host} {failure.what}, and there was no time left to try "
        f"again within {seconds:g} s (COACH_LLM_DEADLINE); try again later, or check the server."
    )


def translate(exc: Exception, server: Server, *, received: bool, raw: str = "") -> Exception:
    """The exception to raise for a client exception: ``LLMError``, ``Transient`` or
    ``FormatError``. ``received`` says whether any of the reply had arrived."""
    import openai

    host, model, env = server.host, server.model, server.env
    # A timeout mid-stream reaches us as the HTTP library's own exception, not the client's.
    timed_out = any(c.__name__ == "TimeoutException" for c in type(exc).__mro__)
    if isinstance(exc, openai.APITimeoutError) or timed_out:
        return LLMError(
            f"The LLM server at {host} did not answer within {server.timeout:g} s; "
            "try again or raise COACH_LLM_TIMEOUT."
        )
    if isinstance(exc, openai.APIConnectionError):
        if not received and "ConnectError" in _cause_names(exc):
            if not server.base_url:
                return LLMError(
                    "OpenAI (api.openai.com) cannot be reached; check the internet "
                    f"connection, or set {env}_BASE_URL to a local server."
                )
            return LLMError(
                f"The LLM server at {server.url} is not answering; start it or fix {env}_BASE_URL."
            )
        return cut_stream(server)
    if isinstance(exc, openai.RateLimitError):
        if exc.code == "insufficient_quota" or "quota" in str(exc.code or ""):
            return LLMError(
                f"The account behind the API key has no quota left at {host}; "
                "check its billing, or use another key or the offline engine."
            )
        return Transient(
            f"The LLM server at {host} is still rate-limiting requests (429) after {{n}} "
            "attempts; wait a minute and try again.",
            "is rate-limiting requests (429)",
            retry_after(exc),
        )
    if isinstance(exc, openai.AuthenticationError):
        keys = "OPENAI_API_KEY / COACH_LLM_API_KEY" if env == "COACH_LLM" else f"{env}_API_KEY"
        return LLMError(f"The LLM server at {host} refused the API key; check {keys}.")
    if isinstance(exc, openai.PermissionDeniedError):
        return LLMError(
            f"The LLM server at {host} does not let this API key use the model '{model}'; "
            f"check the key's permissions or set {env}_MODEL."
        )
    if isinstance(exc, openai.NotFoundError):
        return LLMError(
            f"The model '{model}' is unknown to the server at {host}; set {env}_MODEL "
            f"to a model it serves (and check that {env}_BASE_URL ends in /v1)."
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status >= 500:
            return Transient(
                f"The LLM server at {host} failed with error {status} {{n}} times in a row; "
                "try again later, or check the server's logs.",
                f"failed with error {status}",
                retry_after(exc),
            )
        if "ContextOverflowError" in {c.__name__ for c in type(exc).__mro__}:
            return LLMError(
                f"The conversation is too long for the model '{model}'; start a new "
                "conversation, or lower COACH_HISTORY_CHARS or COACH_MAX_INPUT_CHARS."
            )
        detail = server.scrub(server_message(exc))[:200]
        return LLMError(
            f"The LLM server at {host} rejected the request ({status}: {detail}); "
            f"check {env}_MODEL and {env}_BASE_URL."
        )
    if isinstance(exc, openai.APIError):
        return FormatError(NOT_A_COMPLETION, raw)
    if isinstance(exc, ValueError | TypeError | KeyError):
        # LangChain raises these when a 200 response is not a chat completion
        # (an HTML error page from a proxy, an empty stream).
        return FormatError(NOT_A_COMPLETION, raw)
    return LLMError(
        f"The call to the LLM server at {host} failed unexpectedly "
        f"({type(exc).__name__}); try again."
    )


def _cause_names(exc: BaseException) -> set[str]:
    names: set[str] = set()
    seen: BaseException | None = exc
    while seen is not None and len(names) < 20:
        names.add(type(seen).__name__)
        seen = seen.__cause__ or seen.__context__
    return names


def retry_after(exc: Any) -> float | None:
    """The server's ``Retry-After`` in seconds, if it sent one."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def server_message(exc: Any) -> str:
    """The server's own error text, without the client's "Error code: 400 - " prefix."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        if inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", "") or "")
