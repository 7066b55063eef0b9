"""The coaching scorers (app/evals/coaching_scorers.py): what passes, what fails, how they are
gamed, and `coach eval run` reporting and gating them on a small suite."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest
import yaml

from app.answer import AnswerMeta, CoachingAnswer
from app.errors import SuiteError
from app.evals import coaching_scorers as cs
from app.evals.suites import load_suite
from app.settings import Settings

MIGRATION = "How do I tell my boss we can't take on the migration?"
ROTA_SITUATION = (
    "I'm the nurse manager on a 28-bed surgical ward. I build the rota by hand in a "
    "spreadsheet, and next month two senior nurses are on annual leave in the same week as a "
    "new starter's induction, so three night shifts have nobody qualified to run the ward. "
    "How do I fix the way I plan shifts?"
)
ONE_TO_ONES = "talked to each of them one-on-one"


@lru_cache(maxsize=1)
def article() -> frozenset[str]:
    from app.knowledge import load_knowledge

    return cs.article_terms(p.text for p in load_knowledge(Settings().knowledge_dir))


def coached(coaching: str, verdict: str = "management", focus: tuple[str, ...] = ("M2",)):
    return CoachingAnswer(
        verdict=verdict,
        confidence=0.8,
        focus=list(focus),
        summary="This calls mainly for management.",
        coaching=coaching,
        meta=AnswerMeta(engine="fake", model="fake-model"),
    )


# ---------------------------------------------------------------------- answers_question


def test_an_opening_that_answers_the_question_passes():
    answer = (
        "**Your question**\n\n"
        "Tell your boss this week, in one short meeting, that the team cannot take on the "
        "migration before the release ships, and bring the two dates that collide.\n\n"
        "**Why this is management**\n\nIt is about organizing resources."
    )
    score = cs.answers_question(MIGRATION, answer)
    assert score.value == 1.0
    assert "boss" in score.reason and "migrat" in score.reason


@pytest.mark.parametrize(
    ("coaching", "why"),
    [
        pytest.param(
            f"{MIGRATION}\n\nThis is mainly a management problem. Set clear objectives for "
            "your team and organize your resources.",
            "0 of the 2 key terms",
            id="verbatim-echo",
        ),
        pytest.param(
            f'You asked: "{MIGRATION}" That is a good question. Let us look at your team and '
            "its objectives first.",
            "0 of the 2 key terms",
            id="quoted-echo",
        ),
        pytest.param(
            "You asked how do I tell my boss we can't take on the migration, and here is the "
            "answer: set clear objectives.",
            "0 of the 2 key terms",
            id="echo-without-quote-marks",
        ),
        pytest.param(
            "**Telling your boss about the migration**\n\nThis is mainly a management "
            "problem: set clear objectives and monitor performance.",
            "0 of the 2 key terms",
            id="only-a-heading-restates-it",
        ),
        pytest.param(
            "This is mainly a management problem.\n\nSet clear objectives for the team.\n\n"
            "Tell your boss the migration has to wait until the release ships.",
            "0 of the 2 key terms",
            id="answered-only-in-the-third-paragraph",
        ),
    ],
)
def test_an_opening_that_does_not_answer_the_question_fails(coaching, why):
    score = cs.answers_question(MIGRATION, coaching)
    assert score.value == 0.0
    assert why in score.reason


def test_quoting_the_person_is_not_answering_them():
    situation = "Our boss keeps piling on work. The migration is due in May. " + MIGRATION
    quoting = (
        'You said "Our boss keeps piling on work. The migration is due in May", and that '
        "points to organizing resources."
    )
    assert cs.answers_question(MIGRATION, quoting, situation=situation).value == 0.0
    own_words = "Ask your boss for ten minutes and tell them the migration cannot start in May."
    assert cs.answers_question(MIGRATION, own_words, situation=situation).value == 1.0


def test_the_articles_own_words_do_not_answer_a_question_about_something_else():
    question = "How should I plan rooms and staff this year?"
    template = "Management is about planning, organizing and coordinating work to meet objectives."
    score = cs.answers_question(question, template, article=article())
    assert score.value == 0.0 and "none of its own: room" in score.reason
    answer = "Plan the rooms first: book the sports hall for one exam at a time."
    assert cs.answers_question(question, answer, article=article()).value == 1.0


def test_a_question_with_nothing_but_generic_words_cannot_be_scored():
    score = cs.answers_question("Where do I start?", "Start with the rota.")
    assert score.value is None and "sentence it refers to" in score.reason


def test_the_opening_is_the_first_two_paragraphs_without_headings_and_at_most_120_words():
    text = "**Heading**\n\none two\n\nthree four\n\nfive six"
    assert cs.opening(text) == "one two\n\nthree four"
    long = " ".join(f"w{i}" for i in range(300))
    assert len(cs.opening(long).split()) == cs.OPENING_WORDS


# -------------------------------------------------------------------- no_repeat_of_tried


STEPS = "**What to do this week**\n\n1. {step}\n2. Put the rota for next month on one page.\n"


def test_a_step_that_repeats_what_was_tried_fails():
    answer = STEPS.format(step="Hold short one-to-ones with each person on the team this week.")
    score = cs.no_repeat_of_tried([ONE_TO_ONES], answer)
    assert score.value == 0.0
    assert "Hold short one-to-ones" in score.reason and ONE_TO_ONES in score.reason


@pytest.mark.parametrize(
    ("tried", "step"),
    [
        ("we hold a daily stand-up", "Start a short daily check-in with the whole team."),
        ("I have spoken to him about his code quality", "Talk to him about his code quality."),
        ("I sat down with each of them", "Meet every person individually this week."),
        ("We put a suggestion box on the shop floor", "Put a suggestion box on the floor."),
    ],
)
def test_synonyms_do_not_hide_a_repeat(tried, step):
    assert cs.no_repeat_of_tried([tried], STEPS.format(step=step)).value == 0.0


def test_a_step_that_builds_on_what_was_tried_passes():
    step = (
        "You've already talked to each of them one-on-one; next, agree one change with each "
        "person and write it down."
    )
    assert cs.no_repeat_of_tried([ONE_TO_ONES], STEPS.format(step=step)).value == 1.0


def test_a_pronoun_is_not_an_acknowledgement():
    step = "You've got to hold one-to-ones with each of them."
    assert cs.no_repeat_of_tried([ONE_TO_ONES], STEPS.format(step=step)).value == 0.0


@pytest.mark.parametrize(
    ("tried", "step"),
    [
        ("I sat down with each of them", "Hold a team meeting to agree the new rota."),
        (
            "the booking system records no-shows",  # only everyday words in common
            "Record estimates against actuals for a month and show the team the gap.",
        ),
        ("I suggested pairing", "Give the new hires a buddy for their first month."),
    ],
)
def test_a_different_step_passes(tried, step):
    score = cs.no_repeat_of_tried([tried], STEPS.format(step=step))
    assert score.value == 1.0 and "none of 2 step(s)" in score.reason


def test_steps_are_numbered_lines_and_bullets_under_a_steps_heading_only():
    text = (
        "**Why this is management**\n\n- Hold one-to-ones with each person (a reason).\n\n"
        "**Next steps**\n\n- Hold one-to-ones with each person.\n  Ask what gets in the way.\n\n"
        "**What to watch for**\n\n- Hold one-to-ones with each person, watch the mood.\n\n"
        "Finally:\n3. Tell your boss.\n"
    )
    found = cs.steps(text)
    assert [s.text for s in found] == [
        "Hold one-to-ones with each person. Ask what gets in the way.",
        "Tell your boss.",
    ]
    assert cs.no_repeat_of_tried(["we hold one-to-ones"], text).value == 0.0


# ----------------------------------------------------------------- quotes_support_focus


def fake_reader() -> cs.FocusReader:
    """A reader whose embedding is keyword counts: rota words are management, trust words
    leadership. It tests how quotes are found and given a focus, not the embedding."""
    management = ("rota", "shift", "budget", "M-", "spreadsheet", "leave")
    leadership = ("trust", "believe", "culture", "L-", "kind", "vision")

    def embed(texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            m = sum(text.count(w) for w in management)
            le = sum(text.count(w) for w in leadership)
            row = np.array([m, le, 0.2], dtype=np.float32)
            rows.append(row / np.linalg.norm(row))
        return np.array(rows)

    return cs.FocusReader(
        embed=embed,
        sections={"management": "M-section", "leadership": "L-section"},
        bullets={code: f"{code[0]}-bullet" for code in ("M1", "M2", "M3", "L1", "L2", "L3")},
    )


SITUATION = (
    "Our vision is clear and honestly the nurses are kind, they trust each other and believe "
    "in the culture. The trouble is the rota: two senior nurses are on leave in the same week "
    "and the spreadsheet shift plan has nobody on nights."
)
TRUST_QUOTE = "they trust each other and believe in the culture"
ROTA_QUOTE = "two senior nurses are on leave in the same week and the spreadsheet shift plan"


def test_a_quote_on_the_other_side_of_its_focus_fails():
    answer = f'**Organizing resources** is where it hurts. You said "{TRUST_QUOTE}", so look here.'
    score = cs.quotes_support_focus(answer, SITUATION, fake_reader())
    assert score.value == 0.0
    assert "quoted for Organizing resources but reads as leadership" in score.reason


def test_a_quote_on_its_focus_side_passes():
    answer = f'**Organizing resources** is where it hurts. You said "{ROTA_QUOTE}", so look here.'
    score = cs.quotes_support_focus(answer, SITUATION, fake_reader())
    assert score.value == 1.0 and "1 quote(s)" in score.reason


def test_the_focus_is_the_responsibility_named_before_the_quote_in_its_paragraph():
    answer = (
        "**Building trust** matters less here than **Organizing resources**: you said "
        f'"{ROTA_QUOTE}".\n\n**Building trust** is fine: you said "{TRUST_QUOTE}".'
    )
    assert cs.quotes_support_focus(answer, SITUATION, fake_reader()).value == 1.0


def test_quotes_of_the_article_and_quotes_without_a_focus_are_not_checked():
    article_quote = (
        'The article says "Allocating resources, such as time and budget, efficiently" and '
        "that is Building trust."
    )
    no_focus = f'You said "{TRUST_QUOTE}". Think about it.'
    for text in (article_quote, no_focus):
        assert cs.quotes_support_focus(text, SITUATION, fake_reader()).value is None


def test_a_quote_that_says_both_is_support_when_one_clause_reads_as_its_focus():
    reader = fake_reader()
    mixed = f"{TRUST_QUOTE} and they are kind, but the rota is broken"
    one_sided = f"{TRUST_QUOTE} and they are kind, and the culture is warm"
    for quote, supports in ((mixed, 1.0), (one_sided, 0.0)):
        answer = f'**Organizing resources** hurts. You said "{quote}".'
        assert cs.quotes_support_focus(answer, f"{quote}.", reader).value == supports


@lru_cache(maxsize=1)
def minilm_reader() -> cs.FocusReader:
    from app.evals.runner import coaching_context

    return coaching_context(Settings()).reader()


PRIORITIES = (
    "We have fourteen 'top priorities' on the board, people switch tasks every day depending "
    "on who shouted last, and two engineers are splitting their time across four things."
)
CULTURE = (
    "My team trusts each other completely and I trust them; honestly it's the best team "
    "culture I've worked in."
)


@pytest.mark.parametrize(
    ("quote", "focus", "supports"),
    [
        (PRIORITIES, "Setting a compelling vision", False),  # planning failures as a vision gap
        (PRIORITIES, "Organizing resources", True),
        (CULTURE, "Organizing resources", False),  # praise of the culture as a rota problem
        (CULTURE, "Building trust", True),
    ],
)
def test_the_minilm_reader_reads_the_side_of_the_persons_words(quote, focus, supports):
    answer = f'**{focus}** is the gap. You said "{quote.rstrip(".")}", and that points here.'
    score = cs.quotes_support_focus(answer, f"{PRIORITIES} {CULTURE}", minilm_reader())
    assert score.value == (1.0 if supports else 0.0), score.reason


def test_the_reader_needs_the_articles_sections_and_six_bullets():
    with pytest.raises(ValueError, match="the article lacks"):
        cs.focus_reader([], lambda texts: np.zeros((len(texts), 3)))


# -------------------------------------------------------------------------- specificity


def test_an_answer_about_the_situation_is_specific_and_a_generic_one_is_not():
    specific = (
        "Build next month's rota around the annual leave first. "
        "Book agency cover for the three night shifts now. "
        "Set clear objectives."
    )
    generic = (
        "Set clear objectives for your team. Monitor performance every week. "
        "Build trust with honest conversations."
    )
    high = cs.specificity(specific, ROTA_SITUATION, article())
    low = cs.specificity(generic, ROTA_SITUATION, article())
    assert high.value == pytest.approx(2 / 3) and "rota" in high.reason
    assert low.value == 0.0 and "0 of 3 sentence(s)" in low.reason


def test_quoting_the_person_is_not_specificity_but_their_numbers_are():
    quoting = 'You said "three night shifts have nobody qualified to run the ward". Think.'
    assert cs.specificity(quoting, ROTA_SITUATION, article()).value == 0.0
    numbers = "A 28-bed ward needs two qualified nurses on nights."
    assert cs.specificity(numbers, ROTA_SITUATION, article()).value == 1.0


# ----------------------------------------------------------------------- step_diversity


def test_step_diversity_finds_the_template_step_even_with_the_teams_noun_filled_in():
    situations = [
        "I manage eight nurses on a ward and the rota is chaos.",
        "I lead five designers and our briefs have no owners.",
        "I run a kitchen with six chefs and food cost is rising.",
    ]
    answers = [
        "**What to do this week**\n\n1. Hold short one-to-ones with your nurses this week.\n"
        "2. Redo the rota for the night shifts.",
        "**What to do this week**\n\n1. Hold short one-to-ones with your designers this week.\n"
        "2. Give every brief one owner.",
        "**What to do this week**\n\n1. Add up the waste sheets every Friday.",
    ]
    found = cs.step_diversity(answers, situations, article())
    assert found.max_share == pytest.approx(2 / 3)
    assert found.answers_with_it == 2 and found.answers == 3
    assert found.sentence.startswith("Hold short one-to-ones with your")
    distinct = cs.step_diversity(answers[1:], situations[1:], article())
    assert distinct.max_share == pytest.approx(1 / 2)
    assert cs.step_diversity([]).max_share is None


# ------------------------------------------------------------------------ suite fields


def test_suite_cases_take_a_question_and_what_was_tried(tmp_path):
    path = tmp_path / "s.yaml"
    case = {
        "id": "q-1",
        "situation": ROTA_SITUATION,
        "expected_verdict": "management",
        "expected_focus": ["M2"],
        "question": "How do I fix the way I plan shifts?",
        "tried": ["I build the rota by hand in a spreadsheet"],
    }
    path.write_text(yaml.safe_dump({"cases": [case]}))
    loaded = load_suite(path).cases[0]
    assert loaded.question == case["question"] and loaded.tried == tuple(case["tried"])
    assert loaded.expected()["question"] == case["question"]
    assert loaded.expected()["tried"] == case["tried"]

    path.write_text(yaml.safe_dump({"cases": [{**case, "tried": "the rota"}]}))
    with pytest.raises(SuiteError, match="field tried"):
        load_suite(path)


def test_the_dev_suites_mark_questions_and_tried_in_the_persons_words():
    from app.evals.scorers import in_situation
    from app.settings import PROJECT_ROOT

    marked = 0
    for name in ("core", "real-dev"):
        for case in load_suite(PROJECT_ROOT / "evals" / "suites" / f"{name}.yaml").cases:
            for piece in (case.question or "").split(" … "):
                assert not piece or in_situation(piece, case.situation), (case.id, piece)
            marked += bool(case.question) + bool(case.tried)
            if case.question:
                assert cs.question_terms(case.question), case.id
    assert marked >= 60


# --------------------------------------------------------------- coach eval run, end to end


SUITE_CASES = [
    {
        "id": "e-1",
        "situation": ROTA_SITUATION,
        "expected_verdict": "management",
        "expected_focus": ["M2"],
        "question": "How do I fix the way I plan shifts?",
        "tried": ["I build the rota by hand in a spreadsheet"],
    },
    {
        "id": "e-2",
        "situation": (
            "Since the merger my two team leads do not trust each other. I have already talked "
            "to each of them one-on-one. How do I get them to work together?"
        ),
        "expected_verdict": "leadership",
        "expected_focus": ["L3"],
        "question": "How do I get them to work together?",
        "tried": [ONE_TO_ONES],
    },
]
GOOD = coached(
    "Fix the shifts first: plan the night shifts around the annual leave before anything else, "
    "and book agency cover for the three nights now.\n\n"
    '**Organizing resources** is where it hurts: you said "I build the rota by hand in a '
    'spreadsheet, and next month two senior nurses are on annual leave", and that is a '
    "resourcing problem.\n\n"
    "**What to do this week**\n\n"
    "1. Ask the ward's rostering lead to set up next month's nights in the rostering tool.\n"
    "2. Ask the senior nurses which nights they can swap around the induction.\n"
)
GENERIC = coached(
    "This is mainly a leadership problem.\n\n"
    "**Building trust** is at the heart of this.\n\n"
    "**What to do this week**\n\n"
    "1. Hold short one-to-ones with each person on the team this week.\n"
    "2. Pick one decision you make yourself and hand it to someone.\n",
    verdict="leadership",
    focus=("L3",),
)


@pytest.fixture
def fake_target(monkeypatch):
    """`coach eval run` on the real pipeline with a scripted engine: one good answer, one
    generic one."""
    from app.coach import Coach
    from app.engines.fake import FakeEngine
    from app.evals import runner
    from tests.coach_env import shared_env

    settings, index, store = shared_env()
    engine = FakeEngine([GOOD, GENERIC])
    coach = Coach(engine, settings=settings, index=index, classifiers=store)
    target = runner.Target.from_coach(coach)
    monkeypatch.setattr(runner.Target, "from_settings", classmethod(lambda cls, *a: target))
    monkeypatch.setenv("COACH_DATA_DIR", str(settings.data_dir))
    return engine


def test_coach_eval_run_scores_reports_and_gates_the_coaching(fake_target, tmp_path, capsys):
    from app.cli import main

    suite = tmp_path / "tiny.yaml"
    suite.write_text(yaml.safe_dump({"name": "tiny", "cases": SUITE_CASES}, sort_keys=False))
    out, page = tmp_path / "run.json", tmp_path / "run.html"
    code = main(
        [
            "eval",
            "run",
            str(suite),
            "--no-cache",
            "--quiet",
            "--jobs",
            "1",
            "--out",
            str(out),
            "--html",
            str(page),
            "--fail-under",
            "tiny.answers_question_rate=0.5",
            "--fail-under",
            "no_repeat_rate=1",
            "--fail-over",
            "step_diversity_max_share=0.5",
        ]
    )
    printed = capsys.readouterr()
    assert code == 1  # the generic answer repeats the one-to-ones
    assert "threshold missed: no_repeat_rate = 0.5000" in printed.err
    assert "answers_question_rate" not in printed.err and "step_diversity" not in printed.err

    record = json.loads(out.read_text())
    assert [c["error"] for c in record["cases"]] == [None, None]
    good, generic = record["cases"]
    assert good["scores"]["answers_question"]["value"] == 1.0
    assert good["scores"]["no_repeat_of_tried"]["value"] == 1.0
    assert good["scores"]["quotes_support_focus"]["value"] == 1.0
    assert generic["scores"]["answers_question"]["value"] == 0.0
    assert generic["scores"]["no_repeat_of_tried"]["value"] == 0.0
    assert generic["scores"]["quotes_support_focus"]["value"] is None  # it quotes nobody
    assert good["scores"]["specificity"]["value"] > generic["scores"]["specificity"]["value"]
    assert good["expected"]["question"] == SUITE_CASES[0]["question"]

    metrics = record["metrics"]
    assert metrics["answers_question_rate"] == 0.5 and metrics["no_repeat_rate"] == 0.5
    assert metrics["quote_support_rate"] == 1.0 and metrics["quote_support_cases"] == 1
    assert metrics["step_diversity_max_share"] == 0.5 and metrics["step_diversity_answers"] == 2
    assert 0 < metrics["specificity_mean"] < 1

    assert "| answers_question_rate | 0.500 |" in printed.out
    assert "### Coaching checks" in printed.out
    assert "| e-2 | no_repeat_of_tried |" in printed.out
    html = page.read_text()
    assert "<h2>Coaching checks</h2>" in html and "step_diversity_max_share" in html


def test_a_case_without_the_fields_gets_no_question_or_repeat_score(fake_target, tmp_path):
    from app.evals.runner import Target, run_eval

    bare = [{k: v for k, v in SUITE_CASES[0].items() if k not in ("question", "tried")}]
    path = tmp_path / "bare.yaml"
    path.write_text(yaml.safe_dump({"cases": bare}))
    record = run_eval([load_suite(path)], Target.from_settings())
    scores = record["cases"][0]["scores"]
    assert record["cases"][0]["error"] is None, record["cases"][0].get("traceback")
    assert "answers_question" not in scores and "no_repeat_of_tried" not in scores
    assert {"quotes_support_focus", "specificity"} <= set(scores)
    assert "answers_question_rate" not in record["metrics"]


def test_the_usefulness_judge_rates_each_answer_through_the_llm_seam(
    fake_target, tmp_path, openai_server
):
    from app.evals.judge import llm_judge
    from app.evals.runner import USEFULNESS_PROMPT, Target, run_eval
    from tests.coach_env import shared_env

    settings = shared_env()[0].model_copy(
        update={"llm_base_url": openai_server.base_url, "judge_model": "judge-model"}
    )
    useful = llm_judge(settings, USEFULNESS_PROMPT)
    openai_server.enqueue(
        "SCORE: 5\nREASON: Answers the question first.", "SCORE: 2\nREASON: A menu."
    )
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"cases": SUITE_CASES}))
    record = run_eval([load_suite(path)], Target.from_settings(), usefulness=useful)

    first, second = (c["scores"]["usefulness"] for c in record["cases"])
    assert first == {"value": 1.0, "reason": "5/5: Answers the question first."}
    assert second["value"] == 0.25
    assert record["metrics"]["usefulness_mean"] == 3.5
    assert record["config"]["usefulness_judge"]["prompt"] == "judge@usefulness"
    assert "judge" not in record["cases"][0]["scores"]  # the overall rubric was not asked for
    request = openai_server.chat_requests[0]
    assert "Rate usefulness only" in request.system and ROTA_SITUATION in request.user


def test_a_lower_step_diversity_is_the_better_one_in_a_comparison():
    from app.evals.compare import MetricRow

    assert MetricRow("step_diversity_max_share", 0.4, 0.1).better is True
    assert MetricRow("core.specificity_mean", 0.1, 0.3).better is True
    assert MetricRow("quote_support_cases", 10, 20).better is None
