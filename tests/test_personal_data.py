"""Personal data is masked before any engine sees it, and ordinary words are left alone."""

from __future__ import annotations

import pytest

from app.personal_data import load_masker, mask
from app.settings import PROJECT_ROOT

PROMPTS = PROJECT_ROOT / "prompts"


def masked(text: str) -> str:
    return mask(text, PROMPTS).text


@pytest.mark.parametrize(
    ("text", "expected", "kind", "value"),
    [
        # emails, phone and ID numbers
        (
            "Write to dana.k@example.com today.",
            "Write to [email] today.",
            "email",
            "dana.k@example.com",
        ),
        (
            "Call +1 555 0142 337 after lunch.",
            "Call [phone number] after lunch.",
            "phone number",
            "+1 555 0142 337",
        ),
        (
            "Her mobile 07700 900123 is off.",
            "Her mobile [phone number] is off.",
            "phone number",
            "07700 900123",
        ),
        (
            "call (555) 123-4567 today",
            "call [phone number] today",
            "phone number",
            "(555) 123-4567",
        ),
        ("His SSN is 123-45-6789.", "His SSN is [id number].", "id number", "123-45-6789"),
        (
            "Pay GB29 NWBK 6016 1331 9268 19 now.",
            "Pay [id number] now.",
            "id number",
            "GB29 NWBK 6016 1331 9268 19",
        ),
        (
            "Card 4111 1111 1111 1111 was declined.",
            "Card [id number] was declined.",
            "id number",
            "4111 1111 1111 1111",
        ),
        (
            "NI number AB 12 34 56 C on file.",
            "NI number [id number] on file.",
            "id number",
            "AB 12 34 56 C",
        ),
        (
            "passport number X1234567 expired",
            "passport number [id number] expired",
            "id number",
            "X1234567",
        ),
        # staff and employee numbers
        (
            "His employee ID EMP-20931 is wrong.",
            "His employee ID [employee number] is wrong.",
            "employee number",
            "EMP-20931",
        ),
        (
            "staff number 00-4471 on the rota",
            "staff number [employee number] on the rota",
            "employee number",
            "00-4471",
        ),
        (
            "Her badge #A1234 stopped working.",
            "Her badge #[employee number] stopped working.",
            "employee number",
            "A1234",
        ),
        (
            "payroll no. 55812 was skipped",
            "payroll no. [employee number] was skipped",
            "employee number",
            "55812",
        ),
        (
            "Employee number: 884213 left.",
            "Employee number: [employee number] left.",
            "employee number",
            "884213",
        ),
        # dates of birth
        (
            "DOB 04/07/1988, joined 2019.",
            "DOB [date of birth], joined 2019.",
            "date of birth",
            "04/07/1988",
        ),
        (
            "She was born on 3 March 1990.",
            "She was born on [date of birth].",
            "date of birth",
            "3 March 1990",
        ),
        (
            "date of birth: 1990-03-03",
            "date of birth: [date of birth]",
            "date of birth",
            "1990-03-03",
        ),
        (
            "He was born in 1961 and retires soon.",
            "He was born in [date of birth] and retires soon.",
            "date of birth",
            "1961",
        ),
        # names: a cue, a title, a common first name, a full name
        (
            "My report Priya keeps missing deadlines.",
            "My report [name] keeps missing deadlines.",
            "name",
            "Priya",
        ),
        (
            "I met Mr Okafor about the budget.",
            "I met Mr [name] about the budget.",
            "name",
            "Okafor",
        ),
        (
            "Dana Whitfield said the sprint was late.",
            "[name] said the sprint was late.",
            "name",
            "Dana Whitfield",
        ),
        ("Then Tom took over the rota.", "Then [name] took over the rota.", "name", "Tom"),
        (
            "Our newest hire, Mbali, is quiet.",
            "Our newest hire, [name], is quiet.",
            "name",
            "Mbali",
        ),
        ("I'm in Priya's team now.", "I'm in [name]'s team now.", "name", "Priya"),
        ("a nurse called Siobhan Kelly", "a nurse called [name]", "name", "Siobhan Kelly"),
        (
            "I told Will that the plan changed.",
            "I told [name] that the plan changed.",
            "name",
            "Will",
        ),
    ],
)
def test_each_kind_is_masked(text: str, expected: str, kind: str, value: str) -> None:
    result = mask(text, PROMPTS)
    assert result.text == expected
    assert kind in result.kinds
    assert any(f.kind == kind and f.value == value for f in result.found)


@pytest.mark.parametrize(
    "text",
    [
        "We meet every Monday in March to plan the quarter.",
        "The London office and the Sydney office disagree about Scrum.",
        "Tickets sit in Jira for weeks and nobody reads Slack.",
        "I think I need help. I am the new manager.",
        "Grant funding was cut. Frank feedback helps. Mark the tasks done. Hope is not a plan.",
        "Will you help me? May I ask something? Can the team decide?",
        "The Platform team and Team Phoenix keep arguing about the Atlas project.",
        "Sales and Marketing never share their plans with Finance.",
        "In May we moved to Austin, and by June everyone was tired.",
        "Our deadline is 12 June and the review is on May 3.",
        "We're a team of 12 and must hit the Q3 2024 targets, up 20% on last year.",
        "Margins fell 4.5% in 2023; we have 3 shifts and 40 staff across 2 sites.",
        "Don't worry about it. Won't they notice? Haven't we tried that?",
        "Mi equipo no sabe cuáles son los objetivos. Ella no sabe quién es responsable.",
        "Mein Team weiß nicht, was die Ziele sind. Sie sind unsicher.",
        "Sou gerente de um restaurante em Lisboa e o orçamento não está dividido.",
        "| Key | Meaning |\n| Key for the LLM server | unset |",
        "The HR team and the CEO want an OKR process by Friday.",
    ],
)
def test_ordinary_words_and_numbers_are_not_masked(text: str) -> None:
    result = mask(text, PROMPTS)
    assert result.text == text, result.found
    assert result.kinds == []


def test_every_occurrence_of_a_found_name_is_masked() -> None:
    text = (
        "My report Okafor is late again. Okafor says the rota is unfair, and Okafor's peers agree."
    )
    assert masked(text) == (
        "My report [name] is late again. [name] says the rota is unfair, and [name]'s peers agree."
    )


def test_kinds_come_in_a_fixed_order_and_once_each() -> None:
    text = (
        "My director, Priya Nguyen, at p.nguyen@example.net (phone +44 20 7946 0958, "
        "staff number 00-4471-92) and Tom at tom@example.com."
    )
    result = mask(text, PROMPTS)
    assert result.kinds == ["email", "employee number", "phone number", "name"]
    for value in ("Priya", "Nguyen", "p.nguyen@example.net", "7946 0958", "00-4471-92", "Tom"):
        assert value not in result.text


def test_the_masker_is_built_once_and_knows_international_first_names() -> None:
    masker = load_masker(PROMPTS)
    assert load_masker(PROMPTS) is masker
    for name in ("Priya", "Dana", "Marcus", "Fatima", "Karim", "Siobhan", "Wei", "Olga"):
        assert name in masker.first_names
    for word in ("Monday", "Scrum", "Jira"):
        assert word not in masker.first_names
