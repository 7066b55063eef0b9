"""The offline coach talks about this person's situation: their question first, nothing they
already tried, quotes that fit, their follow-ups answered as follow-ups.

The situations here were written for these tests; none comes from an eval suite, the
training set or the move library.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from app.answer import Turn
from app.coach import Coach
from app.engines.offline import OfflineEngine
from app.errors import ConfigError
from app.offline_templates import load_templates
from app.passages import FOCUS_NAMES, focus_side
from tests.coach_env import shared_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def coach() -> Coach:
    settings, index, classifiers = shared_env()
    return Coach(OfflineEngine(settings), settings=settings, index=index, classifiers=classifiers)


WAREHOUSE = (
    "I supervise the picking crew at a distribution warehouse, fourteen people on the early "
    "shift. Since the new scanners arrived, half the crew keep the old paper pick lists in their "
    "pockets and use them instead, and our mis-picks doubled in a month. I've already explained "
    "why the scanners matter in two team huddles. How do I get them to actually use the "
    "scanners?"
)


def steps_of(coaching: str) -> list[str]:
    return re.findall(r"^\d+\. (.+)$", coaching, re.MULTILINE)


def test_the_explicit_question_is_answered_first(coach):
    answer = coach.ask(WAREHOUSE).result()
    assert answer.verdict is not None
    first = answer.coaching.split("\n\n")[0]
    assert "How do I get them to actually use the scanners?" in first
    assert answer.reading is not None
    assert answer.reading.questions == ["How do I get them to actually use the scanners?"]


def test_what_they_tried_is_built_on_not_repeated(coach):
    answer = coach.ask(WAREHOUSE).result()
    tried = {t.action for t in answer.reading.tried}
    assert "explain_why" in tried
    assert "You've already tried" in answer.coaching
    from app.moves import load_library

    library = load_library(coach.settings.knowledge_dir)
    by_do = {m.do.strip(): m.action for s in library.situations for m in s.moves}
    for step in steps_of(answer.coaching):
        action = next((a for do, a in by_do.items() if step.startswith(do)), None)
        assert action is not None, step  # every step is a move of the library
        assert action not in tried, step


def test_quotes_are_the_persons_words_read_as_the_focus_they_support(coach):
    answer = coach.ask(WAREHOUSE).result()
    codes = {name.lower(): code for code, name in FOCUS_NAMES.items()}
    quoted = 0
    for line in answer.coaching.splitlines():
        found = re.search(r'\*\*(.+?)\*\*.*In your words: "([^"]+)"', line)
        if not found:
            continue
        code = codes[found.group(1).lower()]
        quote = found.group(2).rstrip("…")
        source = next(e for e in answer.evidence if e.text.startswith(quote))
        assert quote in WAREHOUSE
        assert source.side == focus_side(code), (quote, code)
        quoted += 1
    assert quoted >= 1


def test_answer_stays_short_and_cites_the_article(coach):
    answer = coach.ask(WAREHOUSE).result()
    body = answer.coaching.rsplit("\n\n", 1)[0]  # without the closing line
    assert len(body.split()) <= 380
    assert answer.citations
    assert 1 <= len(steps_of(answer.coaching)) <= 3


def test_no_invented_facts_in_the_wording():
    """The templates around the moves never claim what the person didn't say."""
    templates = load_templates(ROOT / "prompts")
    for words in templates.focus.values():
        assert "right now" not in words.why and "can't point" not in words.why
        assert words.check.rstrip().endswith("?")


def test_a_follow_up_question_is_answered_as_a_follow_up(coach):
    first = (
        "I run a small bakery with six staff. Two of the bakers argue every morning about "
        "who cleans the mixers, and yesterday one of them walked out mid-shift. The others "
        "now tiptoe around both of them and the early bake is running late most days."
    )
    opening = coach.ask(first).result()
    assert opening.verdict is not None
    history = [Turn(role="user", text=first), Turn(role="assistant", text=opening.coaching)]
    follow = coach.ask("Should I get the two of them in a room together?", history).result()
    assert follow.verdict is not None
    assert follow.coaching.startswith('**You asked:** "Should I get the two of them in a room')
    assert "**Why" not in follow.coaching  # the verdict's reasons aren't repeated
    assert follow.coaching != opening.coaching


def test_more_detail_updates_the_advice(coach):
    first = (
        "I lead a team of five designers at an agency. Deadlines keep slipping and I only "
        "find out on the day, when the client is already waiting. Nobody warns me early, and "
        "by then all I can do is apologise and ask for another week."
    )
    opening = coach.ask(first).result()
    history = [Turn(role="user", text=first), Turn(role="assistant", text=opening.coaching)]
    more = coach.ask(
        "We have no project tracker at all; everything lives in people's heads and in chat.",
        history,
    ).result()
    assert more.coaching.startswith("Thanks, that helps.")
    assert more.reading is not None and more.verdict is not None


def test_suggested_questions_are_the_persons_and_differ_from_the_coachs(coach):
    answer = coach.ask(WAREHOUSE).result()
    assert answer.suggested_questions
    assert not set(answer.suggested_questions) & set(answer.follow_up_questions)
    asked = answer.reading.questions[0].lower()
    assert all(q.lower() != asked for q in answer.suggested_questions)


def test_json_output_carries_the_reading(coach):
    answer = coach.ask(WAREHOUSE).result()
    data = answer.model_dump(mode="json")
    assert data["reading"]["questions"]
    assert data["reading"]["tried"][0]["action"] == "explain_why"


def test_a_misspelt_key_in_the_templates_names_the_file_and_key(tmp_path):
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    path = prompts / "offline.yaml"
    path.write_text(path.read_text().replace("  pitfall:", "  pitfal:"), encoding="utf-8")
    load_templates.cache_clear()
    with pytest.raises(ConfigError, match=r"offline\.yaml: headings\.pitfal"):
        load_templates(prompts)
    load_templates.cache_clear()
