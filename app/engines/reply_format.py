"""The reply protocol of the LLM engine: what a model's answer looks like, and how it is read.

The protocol
------------
A reply is three header lines, a line of three dashes, the coaching in Markdown,
another line of three dashes and four trailer lines::

    SAFETY: none
    VERDICT: management            (or leadership, both, unclear)
    FOCUS: M1, M2                  (1 to 3 codes; empty when unclear)
    ---
    <the coaching>
    ---
    CONFIDENCE: 0.8
    CITATIONS: <ids of retrieved passages>
    SUMMARY: <one sentence>
    QUESTIONS: <1 to 3 questions, separated by " | ">

or, when the model reads the message as one not to coach, only ``SAFETY: <kind>``.
Each key has one place: a trailer key in the header (the old six-line format, with
every field before the coaching) is refused and repaired, not half read.

Why this shape, and how real models are held to it
--------------------------------------------------
The header is short so that the coaching starts streaming almost at once, and it comes
first so that chatter instead of an answer is caught on its first line, before anything
is shown. The fields shown only with the finished answer come after the coaching.

Real small models did not follow the earlier prompt, which spelt the format out as a
spec with alternatives ("VERDICT: management, leadership, both or unclear"): tried
through the built-in runtime, Qwen2.5-Coder-1.5B copied the spec lines literally into
its header and coaching, and SmolLM2-135M produced text with no header at all, so every
answer fell back to the offline engine. Two changes make them follow it:

* **A filled-in example instead of a spec.** The prompts (``prompts/coach/*.yaml``)
  show one complete reply to a different situation, then say in prose what goes on each
  line. A model copies shapes better than it reads rules.
* **Constrained decoding where the server allows it.** The built-in runtime (llama.cpp
  with llguidance) gets ``reply_grammar`` with each request, so the model can only
  write a reply in the protocol: a valid verdict, 1 to 3 real focus codes, citations
  chosen from the passages actually retrieved, and a coaching part bounded in lines and
  line length so that header, coaching and trailer always fit in ``max_tokens``
  (``COACH_LLM_MAX_TOKENS``); no reply is cut before its trailer. The coaching still
  streams token by token: the grammar only masks what the model may write next. With
  it, SmolLM2-135M gave 12 of 12 readable replies on dev situations where it gave 0 of
  4 without, and Qwen2.5-Coder-1.5B 16 of 16 (8 dev cases, both prompt versions, no
  repair). OpenAI and other OpenAI-compatible servers get no grammar (its dialect is
  llguidance's) and rely on the example and on tolerant parsing.

The prompts show two examples from different situations, not one: with a single example
Qwen2.5-Coder-1.5B copied its steps word for word into unrelated answers (a welding plant
got "give every open ticket one named owner"), and an instruction not to copy changed
nothing. With two it mostly writes its own, though it still borrows an example's sentence
now and then (the eval's ``step_diversity_max_share`` shows it).

Under the grammar the SAFETY line is always ``none``. When the grammar let the model
choose among the five safety words, SmolLM2 chose off_topic for 2, and with another
grammar 7, of 12 ordinary dev situations: a masked choice picks whichever allowed word
is least unlikely, which is not a judgement. Every message is screened by the guard
before any engine sees it, so a small local model is not asked for a second reading it
cannot give. Unconstrained models still give theirs.

JSON and tool calls were rejected: the coaching would sit inside a string that cannot be
shown until it is complete and unescaped, and a small model breaks JSON more often than
a few plain lines. A separate classification call before the coaching was rejected as
well: it doubles the prompt processing, which dominates the time of a local model on a
CPU.

Parsing is tolerant of the usual deviations: bold or lower-case keys, code fences,
quotes and trailing punctuation around values, a percentage for CONFIDENCE. A missing
trailer or trailer field is not an error: CONFIDENCE is then 0.0, CITATIONS, SUMMARY
and QUESTIONS are empty (an "unclear" verdict still needs a question). A ``---`` line in
the coaching followed by anything but ``KEY: value`` lines is a Markdown rule and part
of the coaching. At most ``MAX_STEPS`` numbered steps are shown: a line numbered 4 or
higher is dropped (and the grammar does not let a held model write one).

Reading as it streams
---------------------
Chunks are yielded only after the header has been read, so a malformed header or a
repair never shows stray text. From then on prose is yielded as it arrives; only the
start of a line that is nothing but dashes and spaces so far is held back (it may be
the closing ``---``), or only a number so far (it may be a step after the third), and
after a ``---`` line the text is held until its next line shows whether a trailer
follows. The trailer is never yielded. Two exceptions: a stream cut after the header,
whose chunks have been shown when the retry starts streaming again from the top, and a
malformed trailer (or an "unclear" verdict without a question), found after the prose
has been shown and then repaired. The UI should therefore render chunks live into a
placeholder and, when the final ``CoachingAnswer`` arrives, replace the placeholder
with ``answer.coaching``. For a normal answer the two are identical. A repaired answer
arrives as one chunk.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from app.passages import FOCUS_CODES, VERDICTS, Verdict

HEAD_KEYS = ("SAFETY", "VERDICT", "FOCUS")  # before the coaching
TRAILER_KEYS = ("CONFIDENCE", "CITATIONS", "SUMMARY", "QUESTIONS")  # after it
HEADER_KEYS = HEAD_KEYS + TRAILER_KEYS
SAFETY_KINDS = ("none", "crisis", "unethical", "prompt_leak", "off_topic")
MAX_HEADER_CHARS = 3000  # a header longer than this is not coming; stop reading and repair
MAX_STEPS = 3  # numbered steps shown; later ones are dropped, and a grammar forbids them

_SEPARATOR = re.compile(r"^\s*-{3,}\s*$")
_HEADER_LINE = re.compile(r"^[\s>*#_-]*([A-Za-z][A-Za-z _]*?)[\s*_]*:[\s*_]*(.*?)[\s*_]*$")
_MAYBE_SEPARATOR = re.compile(r"^[ \t\r-]*$")  # an incomplete line that may become '---'
_MAYBE_STEP = re.compile(r"^[ \t]*\d{1,3}[.)]?$")  # ... or a numbered step
_STEP = re.compile(r"^[ \t]*(\d{1,3})[.)](?:\s|$)")
_KEY_PREFIX = re.compile(r"^[\s>*#_`-]*")
_PARTIAL_KEY = re.compile(r"^([A-Za-z][A-Za-z _]*?)[\s*_]*$")
_CODE = re.compile(r"\b([ML][1-3])\b")
_EMPTY = {"", "none", "n/a", "na", "-", "(none)", "[]"}


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


def _questions(value: str) -> list[str]:
    """Up to 3 questions: separated by " | " as asked, or one after another ("A? B?"), as
    small models write them; a last fragment cut off before its question mark is dropped."""
    parts = _items(value, r"\||(?<=[?？])\s+")
    if len(parts) > 1 and not re.search(r"[?？]$", parts[-1]):
        parts = parts[:-1]
    return parts[:3]


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
    """The ``KEY: value`` lines of a header or trailer; the first of each key counts.

    Each key has one place: SAFETY, VERDICT and FOCUS before the coaching, the other four
    after it. A key in the wrong place is a FormatError, so the old format with all
    fields in the header is refused (and repaired) rather than half read.
    """
    allowed = HEAD_KEYS if part == "header" else TRAILER_KEYS
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or _is_fence(line) or _SEPARATOR.match(line):
            continue
        parsed = _header_line(line)
        if parsed is None:
            raise FormatError(f"the {part} line {line.strip()[:80]!r} is not one of 'KEY: value'")
        if parsed[0] not in allowed:
            where = "after the coaching" if part == "header" else "before the coaching"
            raise FormatError(f"{parsed[0]} belongs {where}, not in the {part}")
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
    questions = _questions(fields.get("QUESTIONS", ""))
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
    """Parse the lines before the first ``---`` and those after the closing one, if any;
    a FormatError says what is wrong."""
    return build_header({**parse_fields(text), **parse_fields(trailer, "trailer")})


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
        self._skipping = False  # the rest of this line is a step after the third: not shown
        self._implied = False  # the tail began with a trailer line, not with '---'
        self.steps_dropped = 0

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
            fields.update(trailer)
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
        # far (it may be the closing '---' line, which must never be shown) or only a
        # number (it may be a step after the third, which is dropped: at most MAX_STEPS).
        text = self._line + text
        self._line = ""
        shown = ""
        while text:
            end = text.find("\n")
            if end < 0:
                if self._skipping:
                    break
                if not self._mid_line and (
                    _MAYBE_SEPARATOR.match(text)
                    or _MAYBE_STEP.match(text)
                    or _could_be_trailer_line(text)
                ):
                    self._line = text
                elif not self._mid_line and self._late_step(text):
                    self._skipping = True
                else:
                    shown += self._show(text)
                    self._mid_line = True
                break
            line, text = text[:end], text[end + 1 :]
            if self._skipping:
                self._skipping = False
                continue
            if not self._mid_line and _SEPARATOR.match(line):
                self._tail = line + "\n" + text
                return shown + self._read_tail()
            if not self._mid_line and _is_trailer_line(line):
                # The trailer without its '---' line, as small models sometimes write it.
                self._tail, self._implied = line + "\n" + text, True
                return shown + self._read_tail()
            if not self._mid_line and self._late_step(line):
                continue
            shown += self._show(line + "\n")
            self._mid_line = False
        return shown

    def _late_step(self, line: str) -> bool:
        """Whether ``line`` starts a numbered step after the third (counted once)."""
        match = _STEP.match(line)
        if match is None or int(match[1]) <= MAX_STEPS:
            return False
        self.steps_dropped += 1
        return True

    def _read_tail(self) -> str:
        # After a '---' line in the prose: a trailer if its first line is a KEY line,
        # otherwise the '---' was a Markdown rule and everything held is prose after all.
        assert self._tail is not None
        lines = self._tail.split("\n")
        first = 0 if self._implied else 1
        for line in lines[first:-1]:  # complete lines after the '---' line
            if not line.strip() or _is_fence(line) or _SEPARATOR.match(line):
                continue
            if _header_line(line) is not None:
                self._trailer = True
            elif self._trailer and not self._implied:
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
        rule, rest = self._tail.split("\n", 1)  # the '---', or the trailer-like line
        self._tail, self._implied, self._trailer = None, False, False
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


def _is_trailer_line(line: str) -> bool:
    parsed = _header_line(line)
    return parsed is not None and parsed[0] in TRAILER_KEYS


def _could_be_trailer_line(partial: str) -> bool:
    """Whether an incomplete prose line may still become a trailer ``KEY: value`` line."""
    if ":" in partial:
        return _is_trailer_line(partial)
    match = _PARTIAL_KEY.match(_KEY_PREFIX.sub("", partial))
    if match is None or not _KEY_PREFIX.sub("", partial):
        return False
    key = match[1].upper().replace(" ", "_")
    return any(k.startswith(key) for k in TRAILER_KEYS)


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


# --------------------------------------------------------------------------- the grammar

TRAILER_TOKENS = 300  # the longest header and trailer the grammar admits, in tokens
CHARS_PER_TOKEN = 3  # a cautious rate for English prose (it is nearer 4)
PROSE_LINES = 8  # most lines of coaching, blank lines between them not counted
LINE_CHARS = 150  # a line gets at least this many characters while the budget allows
SUMMARY_CHARS = 200
QUESTION_CHARS = 150


def _lark(text: str) -> str:
    return json.dumps(text)


def reply_grammar(citable: list[str], max_tokens: int) -> str:
    """An llguidance grammar (the ``grammar`` field of llama.cpp's chat request, marked
    ``%llguidance``) that admits only replies in the protocol: the header, the coaching,
    the trailer; or a lone SAFETY line that stops.

    ``citable`` are the ids of the passages retrieved for this question, the only ones a
    CITATIONS line may name. The coaching is at most ``PROSE_LINES`` lines, each short
    enough that the whole reply, header and trailer included, fits in ``max_tokens``,
    so the model always reaches a complete trailer. No coaching line may start with
    ``---`` (that is the separator, which ends the coaching) nor be a numbered step after
    the third. Each line is its own small lexeme: one regex for the whole coaching with
    its length bound and exclusions is too big for llguidance to build.
    """
    budget = max(max_tokens - TRAILER_TOKENS, 60) * CHARS_PER_TOKEN
    count = min(max(budget // LINE_CHARS, 2), PROSE_LINES)
    width = budget // count
    rest = f"[^\\n]{{0,{width}}}"
    verdicts = " | ".join(_lark(v) for v in VERDICTS)
    codes = " | ".join(_lark(c) for c in FOCUS_CODES)
    cites = " | ".join(_lark(i) for i in dict.fromkeys(citable)) or _lark("none")
    lines = [
        "%llguidance {}",
        # The '---' before the trailer may be left out: a small model sometimes goes
        # straight from the coaching to CONFIDENCE, and the reader takes that as the trailer.
        'start: "SAFETY: none\\nVERDICT: " (judged | unclear) "---\\n" prose ("---\\n" | "") trailer',
        f'judged: ({verdicts}) "\\nFOCUS: " code (", " code)? (", " code)? "\\n"',
        'unclear: "unclear\\nFOCUS:\\n"',
        f"code: {codes}",
        # A line cannot start with '---', a step number after the third, or a trailer key.
        f"TEXT: /[^\\s0-9-]{rest}/ | /-[^\\n-]{rest}/ | /[1-{MAX_STEPS}][.)]{rest}/"
        f" | /[0-9]+[^\\n.)0-9]{rest}/",
        f"LINE: TEXT & ~/({'|'.join(TRAILER_KEYS)})[ \\t]*:[^\\n]*/",
        'gap: "\\n" | "\\n\\n"',
    ]
    # prose: LINE, then up to PROSE_LINES - 1 more, each after a line break or a blank
    # line, and a line break (or a blank line) before the closing '---'.
    lines.append("prose: LINE more1 gap" if count > 1 else "prose: LINE gap")
    for n in range(1, count):
        tail = f" more{n + 1}" if n + 1 < count else ""
        lines.append(f'more{n}: "" | gap LINE{tail}')
    lines += [
        'trailer: "CONFIDENCE: " /0\\.[0-9]|1\\.0/ "\\nCITATIONS: " citations'
        ' "\\nSUMMARY: " summary "\\nQUESTIONS: " question (" | " question)? (" | " question)?'
        ' "\\n"',
        'citations: "" | cite | cite ", " cite | cite ", " cite ", " cite',
        f"cite: {cites}",
        f"summary: /[^\\s|][^\\n]{{0,{SUMMARY_CHARS}}}/",
        f"question: /[^\\s|][^\\n|]{{0,{QUESTION_CHARS}}}/",
    ]
    return "\n".join(lines)
