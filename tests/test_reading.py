"""The situation reader: what it reads from a person's own words, and what it leaves out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.errors import ConfigError
from app.reading import MAX_NOUNS, MAX_PEOPLE, Reading, read_situation
from app.reading_rules import ReadingRules, load_rules

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = ROOT / "knowledge"


@pytest.fixture(scope="module")
def rules() -> ReadingRules:
    return load_rules(KNOWLEDGE)


def read(text: str, rules: ReadingRules) -> Reading:
    return read_situation(text, rules)


# --- who the writer is, whom they lead, whom they answer to ---------------------------------


@pytest.mark.parametrize(
    ("text", "role"),
    [
        ("I'm a team lead at a small agency and things are tense.", "team lead"),
        ("I am the new engineering manager for the payments squad.", "new engineering manager"),
        ("As a new supervisor, I feel out of my depth.", "new supervisor"),
        ("I was promoted to shift supervisor in spring.", "shift supervisor"),
        ("First-time manager here. My people ignore the rota.", "first-time manager"),
        ("I'm the founder and I still do all the sales calls.", "founder"),
        ("My role is head of operations at a logistics firm.", "head of operations"),
        ("The weather is lovely and I am a bit tired.", None),
        ("I'm a people person and I love my job.", None),
        ("I am an introvert and a first-time manager.", "first-time manager"),
    ],
)
def test_role_in_the_writers_words(text: str, role: str | None, rules: ReadingRules) -> None:
    assert read(text, rules).role == role


@pytest.mark.parametrize(
    ("text", "leads", "size"),
    [
        ("I lead a team of 8 developers in Lisbon.", "a team of 8 developers", 8),
        ("I manage a team of eight.", "a team of eight", 8),
        ("I supervise the night shift nurses on ward 4.", "the night shift nurses", None),
        ("I'm responsible for twelve warehouse pickers.", "twelve warehouse pickers", 12),
        ("I run a 15-person support team.", "a 15-person support team", 15),
        ("Nine engineers report to me directly.", "Nine engineers", 9),
        ("I oversee a dozen contractors across two sites.", "a dozen contractors", 12),
        ("I manage twenty-five people.", "twenty-five people", 25),
    ],
)
def test_whom_they_lead_and_how_many(
    text: str, leads: str, size: int | None, rules: ReadingRules
) -> None:
    reading = read(text, rules)
    assert reading.leads is not None and reading.leads.lower() == leads.lower()
    assert reading.team_size == size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("My team has 6 people and one of them is new.", 6),
        ("There are only four of us in the office now.", 4),
        ("I have 11 direct reports and no deputy.", 11),
        ("Our team is small but we ship a lot.", None),
        ("I've been a manager for 10 years.", None),
    ],
)
def test_team_size_only_when_a_number_is_stated(
    text: str, size: int | None, rules: ReadingRules
) -> None:
    assert read(text, rules).team_size == size


@pytest.mark.parametrize(
    ("text", "boss"),
    [
        ("My director wants weekly numbers from me.", "my director"),
        ("I report to the VP of product, who is rarely around.", "the VP of product"),
        ("My boss's boss has started joining our stand-ups.", "my boss's boss"),
        ("The CEO keeps changing priorities on us.", "the CEO"),
        ("The VP of sales reports to me and ignores my requests.", None),
        ("Before the board meeting I need a plan.", None),
        ("My managers disagree with each other about hiring.", None),  # they are reports
    ],
)
def test_how_they_name_their_own_manager(text: str, boss: str | None, rules: ReadingRules) -> None:
    assert read(text, rules).boss == boss


def test_people_mentioned_by_role_in_their_words(rules: ReadingRules) -> None:
    reading = read(
        "One of my senior developers clashes with a new hire. My two leads take sides, "
        "and the client has noticed. One of my senior developers also skips retros.",
        rules,
    )
    people = {p.noun: p.mention for p in reading.people}
    assert people == {
        "senior developer": "one of my senior developers",
        "new hire": "a new hire",
        "lead": "my two leads",
        "client": "the client",
    }


def test_people_leave_out_the_writer_their_team_and_their_boss(rules: ReadingRules) -> None:
    reading = read(
        "I'm a project manager and I lead a team of five designers. My manager is on leave.",
        rules,
    )
    assert reading.role == "project manager"
    assert reading.boss == "my manager"
    assert reading.people == []


def test_a_document_is_not_a_person(rules: ReadingRules) -> None:
    reading = read("The report is late again. One of my reports wrote it.", rules)
    assert [p.mention for p in reading.people] == ["one of my reports"]


def test_people_are_capped(rules: ReadingRules) -> None:
    text = " ".join(
        f"The {noun} disagrees."
        for noun in ["client", "nurse", "driver", "chef", "tester", "analyst", "intern"]
    )
    assert len(read(text, rules).people) == MAX_PEOPLE


# --- limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "clause"),
    [
        ("We have no budget for training this year.", "budget", "We have no budget for training this year"),
        ("I can't fire anyone without a long process.", "authority", "I can't fire anyone without a long process"),
        ("I'm not their manager, so they ignore me.", "authority", "I'm not their manager"),
        ("The deadline is in two weeks.", "time", "The deadline is in two weeks"),
        ("We are short-staffed since March.", "staff", "We are short-staffed since March"),
        ("Company policy says no remote work on Fridays.", "policy", "Company policy says no remote work on Fridays"),
        ("There's a hiring freeze until summer.", "staff", "There's a hiring freeze until summer"),
    ],
)  # fmt: skip
def test_constraints_by_kind_with_their_clause(
    text: str, kind: str, clause: str, rules: ReadingRules
) -> None:
    constraints = read(text, rules).constraints
    assert [(c.kind, c.text) for c in constraints] == [(kind, clause)]


def test_several_constraints_in_order(rules: ReadingRules) -> None:
    reading = read(
        "Our budget was cut in half. I can't promote anyone, and we lost two engineers "
        "in May. Still, the team is great.",
        rules,
    )
    assert [c.kind for c in reading.constraints] == ["budget", "authority", "staff"]


def test_a_threat_is_not_a_staffing_limit(rules: ReadingRules) -> None:
    assert read("If I push harder, he'll quit.", rules).constraints == []


# --- what they already tried ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("I've talked to each of them several times.", "one_to_ones"),
        ("We already hold weekly check-ins.", "tracking_cadence"),
        ("I escalated to my director in October.", "escalate_to_boss"),
        ("I tried explaining why it matters for the customers.", "explain_why"),
        ("Last month I raised it with my boss.", "escalate_to_boss"),
        ("I pulled him aside after the retro.", "direct_conversation"),
        ("I've given her specific feedback twice.", "feedback_conversation"),
        ("We put him on a PIP in January.", "performance_plan"),
        ("I got HR involved last week.", "hr_involvement"),
        ("I sat the two of them down together.", "mediation"),
        ("We brought in two contractors for the peak.", "hire_or_backfill"),
        ("I reassigned his tickets to the other squad.", "reallocate_work"),
        ("I thanked the whole team at the all-hands.", "recognition"),
        ("We ran a two-week pilot with one squad.", "pilot_small"),
        ("I documented the whole deployment process.", "documentation"),
        ("I asked the team for ideas on fixing the rota.", "ask_for_ideas"),
        ("I stopped answering emails after 8pm.", "boundaries"),
        ("We switched to kanban in the spring.", "process_change"),
        ("I've been mentoring her since she joined.", "coaching_development"),
        ("I delegated the decision to my deputy.", "delegate_decision"),
        ("Already spoke to every one of them individually.", "one_to_ones"),
        ("Tried giving him feedback, nothing changed.", "feedback_conversation"),
    ],
)
def test_tried_reports_of_things_done(text: str, action: str, rules: ReadingRules) -> None:
    assert action in read(text, rules).tried_actions


@pytest.mark.parametrize(
    "text",
    [
        "Should I talk to each of them?",  # a question
        "Do I escalate to my director or not?",
        "What if I put him on a PIP?",
        "I plan to talk to each of them next week.",  # an intention
        "I'm thinking about escalating to my boss.",
        "I want to give her feedback but I'm nervous.",
        "I'd like to set up weekly check-ins.",
        "I haven't talked to each of them yet.",  # a negation
        "I never escalated it to my manager.",
        "I didn't give him any feedback.",
        "We don't hold weekly check-ins any more.",
        "I asked my deputy to talk to each of them.",  # someone else does it
        "My predecessor held one-on-ones with everyone.",
        "They escalated to my director without telling me.",
        "I know my boss talked to each of them.",
        "I was coached by my manager for a year.",  # done to the writer
        "I've been asked to prioritise the backlog.",
        "I should have escalated sooner.",  # a regret, not an act
        "We have a hiring freeze, so no new hires this year.",
        "I delegated the hiring decision to my deputy.",  # "hiring" is not an act here
        "I'm meeting my boss tomorrow to raise it.",  # still to come
    ],
)
def test_not_tried_intentions_questions_negations_others(text: str, rules: ReadingRules) -> None:
    tried = read(text, rules).tried_actions
    assert "one_to_ones" not in tried
    assert "escalate_to_boss" not in tried
    assert "feedback_conversation" not in tried
    assert "tracking_cadence" not in tried
    assert "performance_plan" not in tried
    assert "hire_or_backfill" not in tried
    assert "set_priorities" not in tried
    assert "coaching_development" not in tried


def test_tried_keeps_the_writers_clause_and_order(rules: ReadingRules) -> None:
    reading = read(
        "We already hold weekly check-ins, but nothing improves. Should I escalate? "
        "I've talked to each of them and escalated to my director.",
        rules,
    )
    assert [(t.action, t.text) for t in reading.tried] == [
        ("tracking_cadence", "We already hold weekly check-ins"),
        ("one_to_ones", "I've talked to each of them"),
        ("escalate_to_boss", "escalated to my director"),
    ]


def test_a_weekly_meeting_is_a_rhythm_not_one_to_ones(rules: ReadingRules) -> None:
    tried = read("We meet every Monday and nobody speaks up.", rules).tried_actions
    assert tried == ["tracking_cadence"]


def test_tried_with_masked_names(rules: ReadingRules) -> None:
    reading = read("I pulled [name] aside on Tuesday. [name] sat [name] down together.", rules)
    assert reading.tried_actions == ["direct_conversation"]
    assert reading.tried[0].text == "I pulled [name] aside on Tuesday"


def test_a_list_of_things_tried(rules: ReadingRules) -> None:
    reading = read(
        "I've tried one-on-ones, a team meeting and even a PIP, but he won't change.", rules
    )
    assert reading.tried_actions == ["one_to_ones", "team_meeting", "performance_plan"]
    assert reading.tried[0].text == "I've tried one-on-ones, a team meeting and even a PIP"


def test_a_list_of_things_tried_leaves_out_the_exceptions(rules: ReadingRules) -> None:
    reading = read("We've tried coaching and mentoring, not a PIP.", rules)
    assert "coaching_development" in reading.tried_actions
    assert "performance_plan" not in reading.tried_actions


def test_every_action_has_recognition_phrases(rules: ReadingRules) -> None:
    actions = yaml.safe_load((KNOWLEDGE / "moves" / "actions.yaml").read_text())["actions"]
    assert sorted(a for a, _, _ in rules.tried.actions) == sorted(actions)


# --- questions, time pressure, the things of the situation ----------------------------------


def test_explicit_questions_as_whole_sentences(rules: ReadingRules) -> None:
    reading = read(
        "My team misses deadlines.   Should I   change how we plan? I'd like to know how "
        "other managers handle this. Any advice on running retros. Thanks for any advice. "
        "What should I do about the rota",
        rules,
    )
    assert reading.questions == [
        "Should I change how we plan?",
        "I'd like to know how other managers handle this.",
        "Any advice on running retros.",
        "What should I do about the rota",
    ]


def test_no_questions_in_plain_statements(rules: ReadingRules) -> None:
    assert read("The team is fine. I am tired. We shipped on time.", rules).questions == []


@pytest.mark.parametrize(
    ("text", "pressure"),
    [
        ("The director needs the plan by Friday.", "by Friday"),
        ("We go live next week and nothing is tested.", "next week"),
        ("Everything must be ready before the launch in March.", "before the launch in March"),
        ("The deadline is in two weeks.", "in two weeks"),
        ("We have only three days left to fix it.", "only three days left"),
        ("This is urgent and my manager is away.", "urgent"),
        ("The team has been unhappy for a long time.", None),
    ],
)
def test_time_pressure_in_their_words(text: str, pressure: str | None, rules: ReadingRules) -> None:
    assert read(text, rules).time_pressure == pressure


def test_nouns_of_the_situation_in_their_words(rules: ReadingRules) -> None:
    reading = read(
        "Nobody prepares for the sprint review. The migration slipped and the Q3 roadmap "
        "is at risk; my manager wants a new dashboard. The review itself takes two hours.",
        rules,
    )
    assert reading.nouns == [
        "the sprint review",
        "the migration",
        "the Q3 roadmap",
        "a new dashboard",
    ]


def test_nouns_skip_verbs_and_groups(rules: ReadingRules) -> None:
    reading = read("My boss expects weekly reports. The product team owns the backlog.", rules)
    assert reading.nouns == ["the backlog"]


def test_nouns_are_capped(rules: ReadingRules) -> None:
    things = "meeting review roadmap budget release launch audit dashboard survey contract"
    text = " ".join(f"The {thing} is late." for thing in things.split())
    assert len(read(text, rules).nouns) == MAX_NOUNS


# --- odd input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t ",
        "help",
        "???",
        "Mi equipo de ocho personas no cumple los plazos y mi jefe no me escucha.",
        "Mein Team hält keine Fristen ein und meine Chefin hört mir nicht zu.",
        "私のチームは締め切りを守りません。",
        "\u202e\u200b<<<>>> 12345 ;;; ----",
    ],
)
def test_odd_input_gives_a_mostly_empty_reading(text: str, rules: ReadingRules) -> None:
    reading = read(text, rules)
    assert reading.role is None and reading.leads is None and reading.boss is None
    assert reading.tried == [] and reading.constraints == [] and reading.people == []
    assert reading.nouns == []


def test_a_very_long_message_is_read_to_the_end_of_its_limit(rules: ReadingRules) -> None:
    paragraph = (
        "I'm a team lead and my director wants the roadmap by Friday. I've talked to each "
        "of them. We have no budget for contractors. Should I escalate? "
    )
    reading = read(paragraph * 2000, rules)  # ~300,000 characters, cut to the input limit
    assert reading.role == "team lead"
    assert reading.tried_actions == ["one_to_ones"]
    assert reading.questions == ["Should I escalate?"]
    assert len(reading.constraints) == 1


def test_one_enormous_sentence_completes(rules: ReadingRules) -> None:
    text = "and the team lead of the " * 4000 + "."
    assert isinstance(read(text, rules), Reading)


# --- the data files are checked when loaded -------------------------------------------------


@pytest.fixture
def knowledge_copy(tmp_path: Path) -> Path:
    (tmp_path / "moves").mkdir()
    shutil.copy(KNOWLEDGE / "moves" / "actions.yaml", tmp_path / "moves" / "actions.yaml")
    shutil.copytree(KNOWLEDGE / "reading", tmp_path / "reading")
    return tmp_path


def _edit_tried(folder: Path, change) -> None:
    path = folder / "reading" / "tried.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_an_unknown_action_id_names_the_file_and_the_id(knowledge_copy: Path) -> None:
    _edit_tried(knowledge_copy, lambda d: d["actions"].update({"hug_it_out": {"done": ["{hug}"]}}))
    with pytest.raises(ConfigError) as caught:
        load_rules(knowledge_copy)
    assert "tried.yaml" in str(caught.value)
    assert "hug_it_out" in str(caught.value)
    assert "actions.yaml" in str(caught.value)


def test_a_misspelt_key_is_refused(knowledge_copy: Path) -> None:
    _edit_tried(knowledge_copy, lambda d: d["actions"]["one_to_ones"].update({"dones": []}))
    with pytest.raises(ConfigError, match=r"tried\.yaml: actions\.one_to_ones\.dones"):
        load_rules(knowledge_copy)


def test_an_act_must_start_with_its_verb(knowledge_copy: Path) -> None:
    _edit_tried(knowledge_copy, lambda d: d["actions"]["mediation"].update(done=["both of"]))
    with pytest.raises(ConfigError, match=r"actions\.mediation\.done\[0\] must start with"):
        load_rules(knowledge_copy)


def test_patterns_must_be_lower_case(knowledge_copy: Path) -> None:
    _edit_tried(knowledge_copy, lambda d: d["actions"]["mediation"].update(done=["{mediate} Now"]))
    with pytest.raises(ConfigError, match="lower case"):
        load_rules(knowledge_copy)


def test_an_unknown_fragment_is_named(knowledge_copy: Path) -> None:
    _edit_tried(
        knowledge_copy, lambda d: d["actions"]["mediation"].update(done=["{mediate} {{NOPE}}"])
    )
    with pytest.raises(ConfigError, match=r"\{\{NOPE\}\}"):
        load_rules(knowledge_copy)


# --- python -m app.reading ------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("COACH_", "OPENAI_"))}


def test_the_module_prints_the_reading_as_json() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.reading", "I'm a team lead. I escalated to my boss."],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_clean_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["role"] == "team lead"
    assert printed["boss"] == "my boss"
    assert printed["tried"] == [{"action": "escalate_to_boss", "text": "I escalated to my boss"}]
    assert set(printed) == set(Reading.model_fields)


def test_the_module_reads_standard_input() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.reading"],
        input="We have no budget. What should I do?",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_clean_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["questions"] == ["What should I do?"]
