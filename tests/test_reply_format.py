"""The reply protocol: the prompts' own examples, keys in their place, steps, and the grammar."""

import re

import pytest

from app.engines.reply_format import (
    MAX_STEPS,
    AnswerReader,
    FormatError,
    parse_answer,
    reply_grammar,
)
from app.passages import FOCUS_CODES, VERDICTS
from app.prompts import load_prompt

COACH_REFS = ["coach@v1", "coach@v2"]


def example_reply(ref: str) -> str:
    """The filled-in reply a coach prompt shows the model, as the model would write it."""
    fmt = load_prompt(ref).system.split("# Output format", 1)[1]
    match = re.search(r"^SAFETY: none\n.*?^QUESTIONS: [^\n]*$", fmt, re.S | re.M)
    assert match, f"{ref} shows no complete example reply"
    return match[0]


@pytest.mark.parametrize("ref", COACH_REFS)
def test_each_prompt_shows_a_reply_the_parser_reads(ref: str):
    header, coaching = parse_answer(example_reply(ref))
    assert header.verdict in VERDICTS and 1 <= len(header.focus) <= 3
    assert header.summary and header.questions and 0 < header.confidence <= 1
    assert header.citations == ["management-vs-leadership#" + header.citations[0].split("#")[1]]
    assert len(coaching.split()) > 40, "the example shows real coaching, not a description"


@pytest.mark.parametrize("ref", COACH_REFS)
def test_no_prompt_spells_the_format_as_alternatives(ref: str):
    """What Qwen copied literally: 'VERDICT: management, leadership, both or unclear'.
    Every key line in a prompt is a filled-in value, as a reply would have it."""
    system = load_prompt(ref).system
    values = {
        "SAFETY": r"none",
        "VERDICT": r"management|leadership|both|unclear",
        "FOCUS": r"([ML][1-3])(, [ML][1-3]){0,2}",
        "CONFIDENCE": r"[01]\.\d",
    }
    seen = 0
    for key, value in values.items():
        for found in re.findall(rf"^{key}: (.*)$", system, re.M):
            assert re.fullmatch(value, found), f"{key}: {found}"
            seen += 1
    assert seen >= 4


def feed(text: str, size: int) -> tuple[str, AnswerReader]:
    reader = AnswerReader()
    shown = "".join(reader.feed(text[i : i + size]) for i in range(0, len(text), size))
    return shown + reader.close(), reader


STEPS = """\
SAFETY: none
VERDICT: management
FOCUS: M2
---
Plan the shifts.

1. Draft the rota.
2. Share it.
3. Fix the gaps.
4. Celebrate.
5) Repeat.
2024 was hard, and 10 people left.
---
CONFIDENCE: 0.7
CITATIONS:
SUMMARY: Plan the shifts.
QUESTIONS: Who builds the rota?
"""


@pytest.mark.parametrize("size", [1, 2, 5, len(STEPS)])
def test_steps_after_the_third_are_never_shown(size: int):
    shown, reader = feed(STEPS, size)
    header, coaching = reader.finish()
    assert shown == coaching
    assert "3. Fix the gaps." in coaching and "2024 was hard, and 10 people left." in coaching
    assert "Celebrate" not in coaching and "Repeat" not in coaching
    assert reader.steps_dropped == 2 and MAX_STEPS == 3


@pytest.mark.parametrize(
    "reply, problem",
    [
        (
            "VERDICT: both\nCONFIDENCE: 0.6\nFOCUS: M1\n---\nDo it.\n",
            "CONFIDENCE belongs after the coaching",
        ),
        (
            "VERDICT: both\nFOCUS: M1\n---\nDo it.\n---\nVERDICT: both\nSUMMARY: s\n",
            "VERDICT belongs before the coaching",
        ),
    ],
    ids=["old-six-line-header", "header-key-in-trailer"],
)
def test_keys_out_of_place_are_refused(reply: str, problem: str):
    with pytest.raises(FormatError, match=problem):
        parse_answer(reply)


@pytest.mark.parametrize(
    "reply",
    [
        "**Verdict:** Leadership.\n**Focus:** L2\n---\nLet them decide.\n---\n"
        "**Confidence:** 80%\nSummary: Hand over the decision.\n",
        "```\nverdict: `leadership`\nfocus: [L2]\n---\nLet them decide.\n---\n"
        "confidence: 0.8\nsummary: Hand over the decision.\n```\n",
    ],
    ids=["bold-and-punctuation", "fenced-lower-case"],
)
def test_usual_deviations_are_read(reply: str):
    header, coaching = parse_answer(reply)
    assert (header.verdict, header.focus, header.confidence) == ("leadership", ["L2"], 0.8)
    assert coaching == "Let them decide." and header.summary == "Hand over the decision."


def test_the_grammar_names_only_retrieved_passages_and_the_protocol_keys():
    grammar = reply_grammar(["doc#management-2", 'odd"id'], max_tokens=900)
    assert grammar.startswith("%llguidance")
    cite = next(line for line in grammar.splitlines() if line.startswith("cite:"))
    assert cite == 'cite: "doc#management-2" | "odd\\"id"'
    assert 'start: "SAFETY: none\\nVERDICT: "' in grammar
    for word in (*VERDICTS, *FOCUS_CODES, "CONFIDENCE: ", "SUMMARY: ", "QUESTIONS: "):
        assert word in grammar, word


@pytest.mark.parametrize("max_tokens", [120, 400, 900, 4000])
def test_the_grammar_keeps_the_coaching_inside_the_token_budget(max_tokens: int):
    grammar = reply_grammar([], max_tokens=max_tokens)
    width = int(re.search(r"\{0,(\d+)\}/ \|", grammar)[1]) + 2  # LINE's first chars too
    lines = len(re.findall(r"^more\d+:", grammar, re.M)) + 1
    prose_chars = lines * (width + 2)
    # At 3 characters a token, the longest coaching leaves the header and trailer room.
    assert prose_chars / 3 <= max(max_tokens - 300, 60) + lines * 2
    assert lines <= 8


@pytest.mark.parametrize(
    "value, expected",
    [
        ("Who owns it? | When is it due?", ["Who owns it?", "When is it due?"]),
        (
            "Who owns it? When is it due? What changed?",
            ["Who owns it?", "When is it due?", "What changed?"],
        ),
        ("Who owns it? When is it due? How can we be", ["Who owns it?", "When is it due?"]),
        ("A? | B? | C? | D?", ["A?", "B?", "C?"]),
        ("What would help most", ["What would help most"]),
    ],
    ids=["pipes", "run-on", "cut-fragment", "at-most-three", "no-mark"],
)
def test_questions_as_small_models_write_them(value: str, expected: list[str]):
    reply = f"VERDICT: both\nFOCUS: M1, L1\n---\nDo both.\n---\nQUESTIONS: {value}\n"
    assert parse_answer(reply)[0].questions == expected


MISSING_RULE = """\
SAFETY: none
VERDICT: both
FOCUS: M1, L3
---
Agree who owns each file.

Watch for this: fewer clashes.

CONFIDENCE: 0.6
CITATIONS: doc#m-1
SUMMARY: Give files owners.
---
CONFIDENCE: 0.7
CITATIONS: doc#m-1
SUMMARY: Give files owners.
QUESTIONS: Who owns the build? | When is the release?
"""


@pytest.mark.parametrize("size", [1, 3, 8, len(MISSING_RULE)])
def test_a_trailer_without_its_dashes_is_still_the_trailer(size: int):
    """What Qwen2.5-Coder-1.5B wrote once: the trailer straight after the coaching."""
    shown, reader = feed(MISSING_RULE, size)
    header, coaching = reader.finish()
    assert shown == coaching == "Agree who owns each file.\n\nWatch for this: fewer clashes."
    assert (header.confidence, header.summary) == (0.6, "Give files owners.")
    assert header.questions == ["Who owns the build?", "When is the release?"]


@pytest.mark.parametrize("size", [1, 4, 200])
def test_a_key_like_line_inside_the_coaching_stays_in_it(size: int):
    reply = (
        "VERDICT: leadership\nFOCUS: L2\n---\nTry this.\nQuestions: ask them first.\n"
        "Then let them choose.\n---\nSUMMARY: Let them choose.\nQUESTIONS: Who decides?\n"
    )
    shown, reader = feed(reply, size)
    header, coaching = reader.finish()
    assert shown == coaching
    assert coaching == "Try this.\nQuestions: ask them first.\nThen let them choose."
    assert header.summary == "Let them choose." and header.questions == ["Who decides?"]
