"""The LLM engine: LangChain's ChatOpenAI against OpenAI or any OpenAI-compatible server.

Output format, and why
----------------------
The prompt (``prompts/coach/*.yaml``, never this file) asks the model for a short
header of ``KEY: value`` lines, a line of three dashes, the Markdown prose, then
another line of three dashes and a trailer of ``KEY: value`` lines::

    VERDICT: management|leadership|both|unclear
    FOCUS: M1, M2
    ---
    <coaching markdown>
    ---
    CONFIDENCE: 0.0-1.0
    CITATIONS: id1, id2
    SUMMARY: one sentence
    QUESTIONS: q1 | q2

The header is short so that the prose starts almost at once: only the two fields the
UI needs before the coaching (the verdict for the badge, the focus codes) come first,
and every header token is blank screen before the first word of coaching. It still
comes first, so a malformed answer (chatter instead of a header, a bad verdict) is
caught in its first line, before anything is shown. The fields that are only shown
with the finished answer (confidence, citations, summary, questions) come in the
trailer, after the prose has streamed token by token exactly as the model writes it.

Parsing is tolerant. The older format, with all six fields in the header and no
trailer, is still read; a field given in both places counts from the header. A
missing trailer or trailer field is not an error: CONFIDENCE is then 0.0, CITATIONS,
SUMMARY and QUESTIONS are empty (an "unclear" verdict still needs a question, from
header or trailer). A ``---`` line in the prose followed by anything but ``KEY: value``
lines is a Markdown rule and part of the coaching.

JSON was rejected: the coaching would sit inside a string that cannot be shown until
it is complete and unescaped, and a small local model breaks JSON more often than a
few plain lines. Tool calls and ``response_format`` were rejected because many
OpenAI-compatible servers (Ollama, llama.cpp, LM Studio) support them partly or not
at all, and they do not stream prose.

Failures
--------
* Malformed output (no header, a bad verdict, no ``---`` line, an empty coaching
  text, a trailer line that is not ``KEY: value``, a bad CONFIDENCE, an "unclear"
  verdict without a question, or a 200 response that is not a chat completion at
  all) gets one repair
  attempt: a non-streamed call that sends the bad output back with the prompt's
  ``repair`` template. If that is malformed too, the ``fallback`` engine answers
  the same request; its answer has ``meta.fallback`` set and a notice. Without a
  fallback an ``LLMError`` says so.
* 429 and 5xx are retried with exponential backoff (``Retry-After`` honoured, capped),
  at most ``settings.llm_max_attempts`` attempts per call, then an ``LLMError``.
* A stream cut halfway (the connection drops, or the stream ends without a finish
  reason) is treated as a transient server failure, not as malformed output: the
  whole call is retried like a 5xx, because the model did nothing wrong and a
  repair prompt would only ask it to finish a text it never saw end.
* Timeouts, 401, 403, 404, 400, an exhausted quota and connection refused are not
  retried; each raises an ``LLMError`` whose message says what to do. A connection
  that cannot be opened at all is "not answering"; one that drops after the request
  was accepted is a cut stream. Messages never contain the key.

Streaming contract for the UI
-----------------------------
Chunks are yielded only after the header has been read, so a malformed header or a
repair never shows stray text. From then on prose is yielded as it arrives; only the
start of a line that is nothing but dashes and spaces so far is held back (it may be
the closing ``---``), and after a ``---`` line the text is held until its next line
shows whether a trailer follows. The trailer is never yielded. Two exceptions: a
stream cut after the header, whose chunks have been shown when the retry starts
streaming again from the top, and a malformed trailer (or an "unclear" verdict
without a question), found after the prose has been shown and then repaired. The UI
should therefore render chunks live into a placeholder and, when the final
``CoachingAnswer`` arrives, replace the placeholder with ``answer.coaching``. For a
normal answer the two are identical. A repaired answer arrives as one chunk.

History is rendered into the prompt's ``history`` variable, bounded by
``settings.history_chars``: the first thing the person said (the original situation)
is kept, then the newest turns that fit. The delimiter marks ``<<<`` and ``>>>`` are
neutralised in everything the person or the knowledge files supply, so a situation
cannot close its own ``SITUATION>>>`` block and pose as instructions.

This module and ``app.prompts`` are the only places that talk to LangChain/OpenAI.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

from app.answer import AnswerMeta, CoachingAnswer, CoachRequest, Turn, Usage
from app.engines.base import Engine, EngineEvent
from app.errors import ConfigError, LLMError
from app.passages import FOCUS_CODES, FOCUS_NAMES, VERDICTS, ScoredPassage, Verdict
from app.prompts import Prompt, load_prompt
from app.settings import Settings

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

_T = TypeVar("_T")

FALLBACK_NOTICE = (
    "The language model's answer could not be read, so this verdict comes from the offline engine."
)
LENGTH_NOTICE = "The language model stopped at its length limit, so the coaching may end abruptly."
PLACEHOLDER_KEY = "not-needed"  # local servers (Ollama, llama.cpp) ignore the key but need one
HEADER_KEYS = ("SAFETY", "VERDICT", "CONFIDENCE", "FOCUS", "CITATIONS", "SUMMARY", "QUESTIONS")
SAFETY_KINDS = ("none", "crisis", "unethical", "prompt_leak", "off_topic")
MAX_HEADER_CHARS = 3000  # a header longer than this is not coming; stop reading and repair
MAX_REPAIR_ECHO = 6000  # how much of a bad answer is sent back with the repair request
MAX_BACKOFF = 20.0

# fmt: off
LANGUAGE_NAMES = {
    "ar": "Arabic", "cs": "Czech", "da": "Danish", "de": "German", "el": "Greek",
    "en": "English", "es": "Spanish", "fi": "Finnish", "fr": "French", "he": "Hebrew",
    "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "ko": "Korean", "nb": "Norwegian", "nl": "Dutch", "no": "Norwegian", "pl": "Polish",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sv": "Swedish", "th": "Thai",
    "tr": "Turkish", "uk": "Ukrainian", "vi": "Vietnamese", "zh": "Chinese",
}
# fmt: on

_SEPARATOR = re.compile(r"^\s*-{3,}\s*$")
_HEADER_LINE = re.compile(r"^[\s>*#_-]*([A-Za-z][A-Za-z _]*?)[\s*_]*:[\s*_]*(.*?)[\s*_]*$")
_MAYBE_SEPARATOR = re.compile(r"^[ \t\r-]*$")  # an incomplete line that may become '---'
_KEY_PREFIX = re.compile(r"^[\s>*#_`-]*")
_PARTIAL_KEY = re.compile(r"^([A-Za-z][A-Za-z _]*?)[\s*_]*$")
_CODE = re.compile(r"\b([ML][1-3])\b")
_EMPTY = {"", "none", "n/a", "na", "-", "(none)", "[]"}


# --------------------------------------------------------------------------- parsing


class FormatError(ValueError):
    """The model's reply is not in the required format; ``problem`` says how."""

    def __init__(self, problem: str, raw: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.raw = raw


@dataclass
class Header:
    """The structured part of the model's reply."""

    verdict: Verdict | None
    confidence: float
    focus: list[str]
    citations: list[str]
    summary: str
    questions: list[str]
    safety: str | None = None  # the model's own safety reading; None when it gave none

    @property
    def stops(self) -> bool:
        """The model read the message as one the coach must not coach normally."""
        return self.safety not in (None, "none")


def _safety(value: str) -> str | None:
    """The model's SAFETY value, tolerant of case, spaces and punctuation; None if unknown."""
    word = re.sub(r"[^a-z_ -]", "", value.lower()).strip().replace(" ", "_").replace("-", "_")
    aliases = {"prompt": "prompt_leak", "leak": "prompt_leak", "offtopic": "off_topic"}
    word = aliases.get(word, word)
    return word if word in SAFETY_KINDS else None


def _is_fence(line: str) -> bool:
    return line.strip().startswith("```")


def _header_line(line: str) -> tuple[str, str] | None:
    match = _HEADER_LINE.match(line)
    if match is None:
        return None
    key = match[1].strip().upper().replace(" ", "_")
    return (key, match[2].strip()) if key in HEADER_KEYS else None


def _items(value: str, sep: str) -> list[str]:
    parts = (p.strip().strip("[]`'\"<>*").strip() for p in re.split(sep, value))
    return list(dict.fromkeys(p for p in parts if p.lower() not in _EMPTY))


def _confidence(value: str) -> float:
    text = value.strip().rstrip("%").strip()
    try:
        number = float(text)
    except ValueError:
        raise FormatError(f"CONFIDENCE must be a number from 0.0 to 1.0, not {value!r}") from None
    if 1 < number <= 100:
        number /= 100  # "82" or "82%" means 0.82
    if not 0 <= number <= 1:
        raise FormatError(f"CONFIDENCE must be between 0.0 and 1.0, not {value!r}")
    return number


def parse_fields(text: str, part: str = "header") -> dict[str, str]:
    """The ``KEY: value`` lines of a header or trailer; the first of each key counts."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or _is_fence(line) or _SEPARATOR.match(line):
            continue
        parsed = _header_line(line)
        if parsed is None:
            raise FormatError(f"the {part} line {line.strip()[:80]!r} is not one of 'KEY: value'")
        fields.setdefault(*parsed)
    return fields


def build_header(fields: dict[str, str], *, complete: bool = True) -> Header:
    """Validate the fields of a reply. With ``complete`` False only the header has been
    read, so fields that may still come in the trailer are not required yet."""
    safety = _safety(fields["SAFETY"]) if "SAFETY" in fields else None
    if safety not in (None, "none"):
        # The model declines to coach: no verdict or focus is needed, only its reading.
        return Header(None, 0.0, [], [], fields.get("SUMMARY", "").strip(), [], safety)
    if "VERDICT" not in fields:
        raise FormatError("the header has no VERDICT line")
    word = fields["VERDICT"].strip(" .`'\"").lower()
    if word not in (*VERDICTS, "unclear"):
        raise FormatError(
            f"VERDICT must be management, leadership, both or unclear, not {fields['VERDICT']!r}"
        )
    verdict: Verdict | None = None if word == "unclear" else word  # type: ignore[assignment]
    questions = _items(fields.get("QUESTIONS", ""), r"\|")[:3]
    confidence = _confidence(fields["CONFIDENCE"]) if "CONFIDENCE" in fields else 0.0
    if verdict is None:
        if not questions and (complete or "QUESTIONS" in fields):
            raise FormatError("VERDICT is unclear but QUESTIONS has no follow-up question")
        focus: list[str] = []
    else:
        codes = _CODE.findall(fields.get("FOCUS", "").upper())
        focus = [c for c in dict.fromkeys(codes) if c in FOCUS_CODES][:3]
        if not focus:
            raise FormatError("FOCUS needs 1 to 3 of the codes M1, M2, M3, L1, L2, L3")
    return Header(
        verdict=verdict,
        confidence=confidence,
        focus=focus,
        citations=_items(fields.get("CITATIONS", ""), r"[,\s]+"),
        summary=fields.get("SUMMARY", "").strip(),
        questions=questions,
        safety=safety,
    )


def parse_header(text: str, trailer: str = "") -> Header:
    """Parse the lines before the first ``---`` (and those after the closing one, if any);
    a FormatError says what is wrong. A field given in both places counts from the header."""
    fields = parse_fields(text)
    for key, value in parse_fields(trailer, "trailer").items():
        fields.setdefault(key, value)
    return build_header(fields)


def _could_be_key_line(partial: str) -> bool:
    """Whether an incomplete line could still become a ``KEY: value`` line (or a blank,
    fence or separator line, which a trailer may contain)."""
    if ":" in partial:
        return _header_line(partial) is not None
    rest = _KEY_PREFIX.sub("", partial)
    if not rest:
        return True
    match = _PARTIAL_KEY.match(rest)
    if match is None:
        return False
    key = match[1].upper().replace(" ", "_")
    return any(k.startswith(key) for k in HEADER_KEYS)


class AnswerReader:
    """Reads the reply as it streams: holds text back until the header is parsed, then
    passes the coaching through (trimmed of leading and trailing whitespace) until the
    closing ``---`` line, and keeps the trailer after it out of the coaching."""

    def __init__(self) -> None:
        self.raw = ""
        self.header: Header | None = None
        self.coaching = ""
        self._fields: dict[str, str] = {}  # the header's fields
        self._pending = ""  # whitespace held back until more text follows it
        self._line = ""  # the start of the current prose line while it may become '---'
        self._mid_line = False  # part of the current prose line has been shown
        self._tail: str | None = None  # from a '---' line in the prose on: maybe the trailer
        self._trailer = False  # the tail has a KEY line, so it is the trailer for sure

    def feed(self, text: str) -> str:
        """Take the next piece of the reply; return coaching text ready to show ('' if none)."""
        self.raw += text
        if self.header is None:
            return self._read_header()
        if self._tail is not None:
            self._tail += text
            return self._read_tail()
        return self._prose(text)

    def close(self) -> str:
        """The reply has ended: complete its last line; return any coaching that it frees."""
        if self.raw and not self.raw.endswith("\n"):
            return self.feed("\n")
        return ""

    def finish(self) -> tuple[Header, str]:
        """The parsed header and the complete coaching; FormatError if the reply is not valid."""
        if self.header is None:
            if self.raw.strip() == "":
                raise FormatError("the reply was empty", self.raw)
            self.close()  # complete the last line, so it is checked like the others
            if self.header is None:
                declined = _declining_header(self.raw)
                if declined is not None:
                    self.header = declined
                    return declined, ""
                raise FormatError("there is no '---' line after the header", self.raw)
        self.close()
        fields = dict(self._fields)
        if self._tail is not None:
            try:
                trailer = parse_fields(self._tail, "trailer")
            except FormatError as exc:
                raise FormatError(exc.problem, self.raw) from None
            for key, value in trailer.items():
                fields.setdefault(key, value)
        try:
            self.header = build_header(fields)
        except FormatError as exc:
            raise FormatError(exc.problem, self.raw) from None
        if self.header.verdict is not None and not self.header.stops and not self.coaching:
            raise FormatError("the coaching text after the '---' line is empty", self.raw)
        return self.header, self.coaching

    def _read_header(self) -> str:
        # Fail fast: every complete line before the separator must be a header line, so
        # a reply that opens with chatter is caught on its first line, not at the end.
        offset = 0
        seen_header = False
        for line in self.raw.split("\n")[:-1]:  # only complete lines
            if _SEPARATOR.match(line):
                try:
                    self._fields = parse_fields(self.raw[:offset])
                    self.header = build_header(self._fields, complete=False)
                except FormatError as exc:
                    raise FormatError(exc.problem, self.raw) from None
                return self._prose(self.raw[offset + len(line) + 1 :])
            if line.strip() and not _is_fence(line):
                if _header_line(line) is None:
                    problem = (
                        f"the header line {line.strip()[:80]!r} is not one of 'KEY: value'"
                        if seen_header
                        else "the reply does not start with the header (VERDICT, FOCUS)"
                    )
                    raise FormatError(problem, self.raw)
                seen_header = True
            offset += len(line) + 1
        if len(self.raw) > MAX_HEADER_CHARS:
            raise FormatError("there is no '---' line after the header", self.raw)
        return ""

    def _prose(self, text: str) -> str:
        # Show text at once, except the start of a line that is only dashes and spaces so
        # far: it may be the closing '---' line, which must never be shown.
        text = self._line + text
        self._line = ""
        shown = ""
        while text:
            end = text.find("\n")
            if end < 0:
                if not self._mid_line and _MAYBE_SEPARATOR.match(text):
                    self._line = text
                else:
                    shown += self._show(text)
                    self._mid_line = True
                break
            line, text = text[:end], text[end + 1 :]
            if not self._mid_line and _SEPARATOR.match(line):
                self._tail = line + "\n" + text
                return shown + self._read_tail()
            shown += self._show(line + "\n")
            self._mid_line = False
        return shown

    def _read_tail(self) -> str:
        # After a '---' line in the prose: a trailer if its first line is a KEY line,
        # otherwise the '---' was a Markdown rule and everything held is prose after all.
        assert self._tail is not None
        lines = self._tail.split("\n")
        for line in lines[1:-1]:  # complete lines after the '---' line
            if not line.strip() or _is_fence(line) or _SEPARATOR.match(line):
                continue
            if _header_line(line) is not None:
                self._trailer = True
            elif self._trailer:
                raise FormatError(
                    f"the trailer line {line.strip()[:80]!r} is not one of 'KEY: value'", self.raw
                )
            else:
                return self._not_a_trailer()
        if not self._trailer and not _could_be_key_line(lines[-1]):
            return self._not_a_trailer()
        return ""

    def _not_a_trailer(self) -> str:
        assert self._tail is not None
        rule, rest = self._tail.split("\n", 1)
        self._tail = None
        shown = self._show(rule + "\n")
        self._mid_line = False
        return shown + self._prose(rest)

    def _show(self, text: str) -> str:
        text = self._pending + text
        if not self.coaching:
            text = text.lstrip()
        ready = text.rstrip()
        self._pending = text[len(ready) :]
        self.coaching += ready
        return ready


def _declining_header(raw: str) -> Header | None:
    """A reply that is only header lines with a SAFETY stop kind (no '---' needed)."""
    try:
        fields = parse_fields(raw)
    except FormatError:
        return None
    header = build_header(fields, complete=False) if "SAFETY" in fields else None
    return header if header is not None and header.stops else None


def parse_answer(text: str) -> tuple[Header, str]:
    """Parse a complete reply (header, ``---``, coaching, optional ``---`` and trailer)."""
    reader = AnswerReader()
    reader.feed(text if text.endswith("\n") else text + "\n")
    return reader.finish()


# --------------------------------------------------------------------------- prompt values


def _neutralise(text: str) -> str:
    """Stop data from closing or opening a ``<<<NAME ... NAME>>>`` block."""
    return text.replace("<<<", "‹‹‹").replace(">>>", "›››")


def language_name(code: str) -> str:
    """'es' -> 'Spanish'; anything unknown is passed through as given."""
    base = re.split(r"[-_]", code.strip())[0].lower()
    return LANGUAGE_NAMES.get(base, code.strip() or "English")


def render_passages(passages: list[ScoredPassage]) -> str:
    """The retrieved passages as an id-tagged list for the prompt."""
    if not passages:
        return "(no passages were retrieved)"
    blocks = []
    for scored in passages:
        p = scored.passage
        where = p.section + (f"; {p.code} {FOCUS_NAMES[p.code]}" if p.code else "")
        blocks.append(f"[{p.id}] ({where})\n{_neutralise(p.text.strip())}")
    return "\n\n".join(blocks)


def render_history(turns: list[Turn], limit: int) -> str:
    """Earlier turns within about ``limit`` characters: the original situation (the first
    turn, when the person wrote it), then as many of the newest turns as fit."""
    lines = [
        (t.role, f"{'Coach' if t.role == 'assistant' else 'Person'}: {_neutralise(t.text.strip())}")
        for t in turns
        if t.text.strip()
    ]
    if not lines or limit <= 0:
        return "(none)"
    joined = "\n\n".join(line for _, line in lines)
    if len(joined) <= limit:
        return joined
    budget = limit - 40  # room for the "omitted" marker
    head: list[str] = []
    rest = [line for _, line in lines]
    if lines[0][0] != "assistant":
        first = rest.pop(0)
        head = [first if len(first) <= limit // 2 else first[: limit // 2 - 1] + "…"]
        budget -= len(head[0]) + 2
    kept: list[str] = []
    for line in reversed(rest):
        if len(line) + 2 > budget:
            if not kept and budget > 20:
                kept.append("…" + line[-(budget - 3) :])
            break
        kept.append(line)
        budget -= len(line) + 2
    omitted = len(rest) - len(kept)
    marker = [f"[{omitted} earlier turn(s) omitted]"] if omitted else []
    return "\n\n".join(head + marker + kept[::-1])


# --------------------------------------------------------------------------- failures


class _Transient(Exception):
    """A failure worth retrying (429, 5xx, a cut stream); ``final`` is shown after the last."""

    def __init__(self, final: str, retry_after: float | None = None) -> None:
        super().__init__(final)
        self.final = final
        self.retry_after = retry_after


def _cause_names(exc: BaseException) -> set[str]:
    names: set[str] = set()
    seen: BaseException | None = exc
    while seen is not None and len(names) < 20:
        names.add(type(seen).__name__)
        seen = seen.__cause__ or seen.__context__
    return names


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _public_url(url: str, host_only: bool = False) -> str:
    """``url`` without credentials (``user:password@``), query or fragment."""
    parsed = urlparse(url)
    if not parsed.hostname:
        return "(an invalid URL)" if "@" in url else url
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    try:
        port = parsed.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return netloc if host_only else f"{parsed.scheme}://{netloc}{parsed.path}"


def _server_message(exc: Any) -> str:
    """The server's own error text, without the client's "Error code: 400 - " prefix."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        if inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", "") or "")


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


# --------------------------------------------------------------------------- engine


class LLMEngine:
    """Coaches with a chat model; see the module docstring for format and failure handling.

    ``prompt`` pins a prompt ``name@version``; without it each request's ``prompt`` is used.
    ``retry_base_delay`` is the first backoff pause in seconds (doubled per retry).
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
    ) -> None:
        self.settings = settings
        self.fallback = fallback
        self.prompt = prompt
        self.model = settings.llm_model
        self.retry_base_delay = retry_base_delay
        self._sleep = sleep
        self._chat: ChatOpenAI | None = None
        self._prompts: dict[str, Prompt] = {}

    # -- description ------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The server's host[:port] for messages and the sidebar, without any user:password@."""
        if not self.settings.llm_base_url:
            return "api.openai.com"
        return _public_url(self.settings.llm_base_url, host_only=True)

    @property
    def base_url(self) -> str:
        """The server's URL for messages, without any user:password@."""
        return _public_url(self.settings.llm_base_url or "https://api.openai.com/v1")

    def describe(self) -> dict[str, str]:
        """Engine, model, host and prompt for display; never the key."""
        return {
            "engine": self.name,
            "model": self.model,
            "host": self.host,
            "prompt": self.prompt or self.settings.prompt,
        }

    # -- running ----------------------------------------------------------------------

    def run(self, request: CoachRequest) -> Iterator[EngineEvent]:
        """Stream the coaching text, then yield the CoachingAnswer."""
        started = time.perf_counter()
        prompt = self._load_prompt(self.prompt or request.prompt)
        system, user = prompt.render(
            situation=_neutralise(request.situation.strip()),
            passages=render_passages(request.passages),
            history=render_history(request.history, self.settings.history_chars),
            language=language_name(request.language),
        )
        messages: list[tuple[str, str]] = [("system", system), ("human", user)]
        tally = _Tally()
        repaired = False
        try:
            outcome = yield from self._retrying(lambda: self._stream_once(messages, tally))
        except FormatError as bad:
            repair = prompt.render_repair(problem=bad.problem)
            if repair is None:
                yield from self._fall_back(request, bad, asked_again=False)
                return
            retry = [*messages, ("ai", bad.raw[:MAX_REPAIR_ECHO]), ("human", repair)]
            try:
                text, finish = self._with_retries(lambda: self._invoke(retry, tally))
                header, coaching = parse_answer(text)
            except FormatError as again:
                yield from self._fall_back(request, again, asked_again=True)
                return
            yield coaching  # not streamed: the repaired answer arrives in one piece
            outcome = _Outcome(header, coaching, finish)
            repaired = True
        header = outcome.header
        notices = [LENGTH_NOTICE] if outcome.finish_reason == "length" else []
        yield CoachingAnswer(
            verdict=header.verdict,
            confidence=header.confidence,
            focus=header.focus,  # type: ignore[arg-type]
            summary=header.summary,
            coaching=outcome.coaching,
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
                repaired=repaired,
                model_safety=header.safety,
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
        for event in self.fallback.run(request):
            if isinstance(event, CoachingAnswer):
                answer = event.model_copy(deep=True)
                answer.meta.fallback = True
                answer.notices.append(FALLBACK_NOTICE)
                yield answer
            else:
                yield event

    def complete(self, system: str, user: str) -> tuple[str, Usage | None]:
        """One plain, non-streamed call (the eval judge uses it): reply text and token usage.

        429 and 5xx are retried as in ``run``; every failure is an ``LLMError`` with the
        same plain messages, and the reply is returned as is, without format checks.
        """
        tally = _Tally()
        messages = [("system", system), ("human", user)]
        try:
            text, _finish = self._with_retries(lambda: self._invoke(messages, tally))
        except FormatError:
            raise LLMError(
                f"The server at {self.base_url} did not answer like an OpenAI chat completion; "
                "check that COACH_LLM_BASE_URL points at an OpenAI-compatible /v1 endpoint."
            ) from None
        return text, tally.total()

    def _pause(self, number: int, failure: _Transient) -> None:
        """Back off before attempt ``number + 1``, or raise once attempts are used up."""
        attempts = self.settings.llm_max_attempts
        if number >= attempts:
            raise LLMError(failure.final.format(n=attempts)) from None
        delay = self.retry_base_delay * 2 ** (number - 1)
        if failure.retry_after is not None:
            delay = max(delay, failure.retry_after)
        self._sleep(min(delay, MAX_BACKOFF))

    def _retrying(
        self, attempt: Callable[[], Generator[str, None, _Outcome]]
    ) -> Generator[str, None, _Outcome]:
        """Run a streaming attempt, again after a transient failure."""
        number = 0
        while True:
            number += 1
            try:
                return (yield from attempt())
            except _Transient as failure:
                self._pause(number, failure)

    def _with_retries(self, call: Callable[[], _T]) -> _T:
        """Run a plain call, again after a transient failure."""
        number = 0
        while True:
            number += 1
            try:
                return call()
            except _Transient as failure:
                self._pause(number, failure)

    def _stream_once(
        self, messages: list[tuple[str, str]], tally: _Tally
    ) -> Generator[str, None, _Outcome]:
        reader = AnswerReader()
        finish: str | None = None
        received = False
        stream = self._client().stream(messages)
        try:
            while True:
                try:
                    chunk = next(stream)
                except StopIteration:
                    break
                except Exception as exc:
                    raise self._failure(exc, received, reader.raw) from exc
                received = True
                finish = (chunk.response_metadata or {}).get("finish_reason") or finish
                tally.add(getattr(chunk, "usage_metadata", None))
                text = _text(chunk.content)
                if text:
                    ready = reader.feed(text)
                    if reader.header is not None and reader.header.stops:
                        # The model will not coach this: stop generating, show nothing.
                        return _Outcome(reader.header, "", finish or "stop")
                    if ready:
                        yield ready
        finally:
            stream.close()
        if finish is None:
            raise _Transient(self._cut_message())
        rest = reader.close()  # a last line held back because it might have been '---'
        if rest:
            yield rest
        header, coaching = reader.finish()
        return _Outcome(header, coaching, finish)

    def _invoke(self, messages: list[tuple[str, str]], tally: _Tally) -> tuple[str, str | None]:
        """One non-streamed call: the reply text and its finish reason."""
        try:
            message = self._client().invoke(messages, stream=False)
        except Exception as exc:
            raise self._failure(exc, False, "") from exc
        tally.add(getattr(message, "usage_metadata", None))
        finish = (message.response_metadata or {}).get("finish_reason")
        return _text(message.content), finish

    # -- the client and its errors ----------------------------------------------------

    def _client(self) -> ChatOpenAI:
        if self._chat is None:
            key = self.settings.api_key()
            if not key and not self.settings.llm_base_url:
                raise ConfigError(
                    "No LLM is configured: set OPENAI_API_KEY or COACH_LLM_BASE_URL, "
                    "or use the offline engine (COACH_ENGINE=offline)."
                )
            from langchain_openai import ChatOpenAI

            self._chat = ChatOpenAI(
                model=self.settings.llm_model,
                base_url=self.settings.llm_base_url,
                api_key=key or PLACEHOLDER_KEY,
                timeout=self.settings.llm_timeout,
                temperature=self.settings.llm_temperature,
                streaming=True,
                stream_usage=True,
                max_retries=0,  # retries are ours, so their number and pauses are known
                use_responses_api=False,  # OpenAI-compatible servers speak chat completions
            )
        return self._chat

    def _scrub(self, text: str) -> str:
        key = self.settings.api_key()
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return text

    def _cut_message(self) -> str:
        return (
            f"The LLM server at {self.host} broke off its answer midway {{n}} times in a row; "
            "try again, or check the server."
        )

    def _failure(self, exc: Exception, received: bool, raw: str) -> Exception:
        """Translate a client exception into LLMError, _Transient or FormatError."""
        import openai

        host, model = self.host, self.model
        if isinstance(exc, openai.APITimeoutError):
            return LLMError(
                f"The LLM server at {host} did not answer within {self.settings.llm_timeout:g} s; "
                "try again or raise COACH_LLM_TIMEOUT."
            )
        if isinstance(exc, openai.APIConnectionError):
            if not received and "ConnectError" in _cause_names(exc):
                if not self.settings.llm_base_url:
                    return LLMError(
                        "OpenAI (api.openai.com) cannot be reached; check the internet "
                        "connection, or set COACH_LLM_BASE_URL to a local server."
                    )
                return LLMError(
                    f"The LLM server at {self.base_url} is not answering; "
                    "start it or fix COACH_LLM_BASE_URL."
                )
            return _Transient(self._cut_message())
        if isinstance(exc, openai.RateLimitError):
            if exc.code == "insufficient_quota" or "quota" in str(exc.code or ""):
                return LLMError(
                    f"The account behind the API key has no quota left at {host}; "
                    "check its billing, or use another key or the offline engine."
                )
            return _Transient(
                f"The LLM server at {host} is still rate-limiting requests (429) after {{n}} "
                "attempts; wait a minute and try again.",
                _retry_after(exc),
            )
        if isinstance(exc, openai.AuthenticationError):
            return LLMError(
                f"The LLM server at {host} refused the API key; "
                "check OPENAI_API_KEY / COACH_LLM_API_KEY."
            )
        if isinstance(exc, openai.PermissionDeniedError):
            return LLMError(
                f"The LLM server at {host} does not let this API key use the model '{model}'; "
                "check the key's permissions or set COACH_LLM_MODEL."
            )
        if isinstance(exc, openai.NotFoundError):
            return LLMError(
                f"The model '{model}' is unknown to the server at {host}; set COACH_LLM_MODEL "
                "to a model it serves (and check that COACH_LLM_BASE_URL ends in /v1)."
            )
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status >= 500:
                return _Transient(
                    f"The LLM server at {host} failed with error {status} {{n}} times in a row; "
                    "try again later, or check the server's logs.",
                    _retry_after(exc),
                )
            if "ContextOverflowError" in {c.__name__ for c in type(exc).__mro__}:
                return LLMError(
                    f"The conversation is too long for the model '{model}'; start a new "
                    "conversation, or lower COACH_HISTORY_CHARS or COACH_MAX_INPUT_CHARS."
                )
            detail = self._scrub(_server_message(exc))[:200]
            return LLMError(
                f"The LLM server at {host} rejected the request ({status}: {detail}); "
                "check COACH_LLM_MODEL and COACH_LLM_BASE_URL."
            )
        if isinstance(exc, openai.APIError):
            return FormatError("the server's reply was not an OpenAI chat completion", raw)
        if isinstance(exc, ValueError | TypeError | KeyError):
            # LangChain raises these when a 200 response is not a chat completion
            # (an HTML error page from a proxy, an empty stream).
            return FormatError("the server's reply was not an OpenAI chat completion", raw)
        return LLMError(
            f"The call to the LLM server at {host} failed unexpectedly "
            f"({type(exc).__name__}); try again."
        )
