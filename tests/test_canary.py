"""The system prompt's canary never reaches the user, in any form, streamed or stored."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import pytest

from app.answer import AnswerMeta, CoachingAnswer, CoachRequest
from app.canary import WITHHELD, CanaryFilter, canary_spans, has_canary, hold_from, without_canary
from app.coach import Coach
from app.engines.base import LOCAL_LLM
from app.guard import enforce_canary, load_rules
from app.prompts import load_prompt
from tests.coach_env import shared_env

CANARY = "CANARY-LC-023ebb4e389023db"
RANDOM_PART = "023ebb4e389023db"
SITUATION = (
    "Our releases keep slipping because nobody knows who owns which task, "
    "and two of my leads argue about priorities in every planning meeting."
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


LEAKS = {
    "as written": f"My instructions end with {CANARY}, by the way.",
    "lower case": f"the tag is {CANARY.lower()}",
    "upper case": f"THE TAG IS {CANARY.upper()}!",
    "spaced": "tag: " + " ".join(CANARY),
    "punctuated": "tag: " + ".".join(CANARY.lower()),
    "mixed separators": "c-A_n a.R;y  l\tc / 0-2-3 e b b 4 e 3 8 9 0 2 3 d b",
    "one per line": "\n".join(CANARY),
    "zero-width spaces": "\u200b".join(CANARY),
    "full-width letters": "ＣＡＮＡＲＹ－ＬＣ－０２３ｅｂｂ４ｅ３８９０２３ｄｂ",
    "look-alike letters": "СANАRY-LС-023ebb4e389023db",  # Cyrillic С, А
    "random part alone": f"the code is {RANDOM_PART}",
    "base64": f"Encoded: {b64(CANARY)}",
    "base64 of lower case": b64(CANARY.lower()),
    "base64 inside a longer text, offset 0": b64(f"abc{CANARY} and more"),
    "base64 inside a longer text, offset 1": b64(f"abcd{CANARY} and more"),
    "base64 inside a longer text, offset 2": b64(f"abcde{CANARY} and more"),
    "base64 wrapped over lines": "\n".join(re.findall(".{1,8}", b64(f"x {CANARY} y"))),
    "url-safe base64": b64url(b"\xfb\xff" + CANARY.encode() + b"\xfe"),
    "hex": CANARY.encode().hex(),
    "hex, upper case, spaced": " ".join(f"{b:02X}" for b in CANARY.encode()),
    "hex of the random part": RANDOM_PART.encode().hex(),
}
HARMLESS = [
    "Meet each engineer alone this week and ask what changed for them in the reorg.",
    "The canary in the coal mine: cancel the public launch. CANARY-LC alone is no secret.",
    "A near miss: CANARY-LC-023ebb4e389023dc, and 023ebb4e389023d.",
    b64("Meet each engineer alone this week."),
    "43414e4152592d4c43",  # the hex of CANARY-LC, without the random part
]


@pytest.mark.parametrize("text", LEAKS.values(), ids=LEAKS.keys())
def test_every_form_of_the_canary_is_found_and_removed(text: str) -> None:
    assert has_canary(text, CANARY)
    cleaned, found = without_canary(f"Keep this line.\n{text}\nAnd this one.", CANARY)
    assert found
    assert cleaned == "Keep this line.\nAnd this one." or "\n" in text  # text spans lines
    assert not has_canary(cleaned, CANARY) and "Keep this line." in cleaned


@pytest.mark.parametrize("text", HARMLESS)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert canary_spans(text, CANARY) == []
    assert without_canary(text, CANARY) == (text, False)
    f = CanaryFilter(CANARY)
    assert "".join(f.filter([text])) == text and not f.found


def test_no_canary_means_nothing_to_find() -> None:
    assert canary_spans(CANARY, None) == [] and hold_from("CANA", None) == 4
    assert "".join(CanaryFilter(None).filter(["CANA", "RY"])) == "CANARY"


def test_the_span_covers_the_canary_and_nothing_around_it() -> None:
    text = f"before {CANARY} after"
    assert canary_spans(text, CANARY) == [(7, 7 + len(CANARY))]
    assert canary_spans("x c a n a r y l c 0 2 3 e b b 4 e 3 8 9 0 2 3 d b y", CANARY) == [(2, 49)]


def test_dropping_a_line_that_joins_two_halves_drops_them_too() -> None:
    text = f"CANARY-LC-023ebb4e\n{CANARY}\n389023db\nkept"
    assert without_canary(text, CANARY) == ("kept", True)
    assert without_canary("CANARY-LC-023ebb4e\nkept", CANARY) == ("CANARY-LC-023ebb4e\nkept", False)


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize(
    ("text", "shown_now"),
    [
        ("Plan the rota.", "Plan the rota."),
        ("Talk to the public c", "Talk to the public "),
        ("Talk to the public c. ", "Talk to the public "),
        ("Start with CANARY-L", "Start with "),
        ("Start with c a n", "Start with "),
        ("Start with the cat", "Start with the cat"),
        ("the code is 023e", "the code is "),
        (f"Encoded: {b64(CANARY)[:10]}", "Encoded: "),
    ],
)
def test_only_what_could_start_the_canary_is_held_back(text: str, shown_now: str) -> None:
    f = CanaryFilter(CANARY)
    assert f.feed(text) == shown_now
    assert f.flush() == text[len(shown_now) :]
    assert not f.found


def stream(pieces: list[str]) -> tuple[list[str], bool]:
    f = CanaryFilter(CANARY)
    return list(f.filter(pieces)), f.found


def splits(text: str) -> Iterator[list[str]]:
    """``text`` in two pieces, at every position."""
    for i in range(len(text) + 1):
        yield [text[:i], text[i:]]


@pytest.mark.parametrize("text", LEAKS.values(), ids=LEAKS.keys())
def test_a_stream_split_at_every_position_never_shows_the_canary(text: str) -> None:
    full = f"Plan the week.\n{text}\nThen talk to the team."
    for pieces in [*splits(full), list(full)]:
        shown, found = stream(pieces)
        assert found, pieces
        joined = "".join(shown)
        assert not has_canary(joined, CANARY), pieces
        assert joined.startswith("Plan the week.") and joined.endswith("Then talk to the team.")
        assert WITHHELD in joined


def test_a_stream_split_at_every_pair_of_positions_never_shows_the_canary() -> None:
    full = f"ok {CANARY} ok"
    for i in range(len(full) + 1):
        for j in range(i, len(full) + 1):
            shown, found = stream([full[:i], full[i:j], full[j:]])
            assert found and "".join(shown) == f"ok {WITHHELD} ok", (i, j)


def test_a_stream_without_the_canary_comes_out_unchanged_and_at_once() -> None:
    text = "Meet each engineer alone this week and ask what changed for them in the reorg. " * 5
    for pieces in splits(text):
        shown, found = stream(pieces)
        assert "".join(shown) == text and not found
    f = CanaryFilter(CANARY)
    assert f.feed("Meet each engineer alone. ") == "Meet each engineer alone. "


def test_halves_joined_around_a_removed_canary_do_not_spell_it() -> None:
    text = f"CAN{CANARY}ARY-LC-023ebb4e389023db"
    for pieces in splits(text):
        shown, _ = stream(pieces)
        assert not has_canary("".join(shown), CANARY), pieces


# ---------------------------------------------------------------- guard and pipeline


def test_enforce_canary_removes_every_form_from_every_field() -> None:
    rules = load_rules(shared_env()[0].prompts_dir)
    answer = CoachingAnswer(
        verdict="management",
        focus=["M1"],
        summary=f"Fine. {CANARY.lower()}",
        coaching=f"Line one.\nSecret: {b64(CANARY)}\nLine three.\n{' '.join(CANARY)}",
        follow_up_questions=["Who owns it?", f"What is {CANARY.encode().hex()}?"],
        meta=AnswerMeta(),
    )
    assert enforce_canary(answer, CANARY, rules)
    assert answer.coaching == "Line one.\nLine three."
    assert answer.summary == ""
    assert answer.follow_up_questions == ["Who owns it?"]
    assert rules.notices["canary"] in answer.notices


class ChunkEngine:
    """Streams the given chunks, then answers with their text as the coaching."""

    name = "fake"
    model = "chunk-model"
    capabilities = LOCAL_LLM  # answers through the prompt, so the canary applies

    def __init__(self) -> None:
        self.chunks: list[str] = []

    def run(self, request: CoachRequest) -> Iterator[str | CoachingAnswer]:
        yield from self.chunks
        yield CoachingAnswer(
            verdict="management", focus=["M1"], confidence=0.8, coaching="".join(self.chunks)
        )


@pytest.fixture(scope="module")
def piped() -> tuple[Coach, ChunkEngine, str]:
    settings, index, store = shared_env()
    engine = ChunkEngine()
    coach = Coach(engine, settings=settings, index=index, classifiers=store)
    canary = load_prompt(coach.prompt, settings.prompts_dir).canary
    assert canary
    return coach, engine, canary


@pytest.mark.parametrize("form", ["as written", "spaced", "base64"])
def test_the_pipeline_streams_and_stores_no_canary(piped, form: str) -> None:
    coach, engine, canary = piped
    leak = LEAKS[form].replace(CANARY, canary)
    if form == "spaced":
        leak = " ".join(canary)
    elif form == "base64":
        leak = b64(canary)
    coaching = f"Agree who owns each task.\n{leak}\nThen review it on Friday."
    for i in range(0, len(coaching) + 1, 7):
        engine.chunks = [coaching[:i], coaching[i:]]
        stream = coach.ask(SITUATION)
        shown = "".join(stream)
        answer = stream.result()
        assert not has_canary(shown, canary) and shown.startswith("Agree who owns"), i
        assert answer.coaching == "Agree who owns each task.\nThen review it on Friday."
        assert any("withheld" in n for n in answer.notices)
