"""The situation reader: who the writer is, whom they lead, what limits them, what they have
already tried and what they ask, read from their own words into a ``Reading``.

It is deterministic and offline: no model, no download, about a millisecond of CPU for a
300-word message once its rules are compiled (``python -m benchmarks.bench_reading``). The
reading keeps the writer's words, so the coach can talk about *their* sprint review, *their*
director and *their* two leads.

Why word lists and patterns, not an NLP library: what is read here is first-person
statements in a small vocabulary ("I'm a team lead", "my director", "I've already talked to
each of them"), which a tagger would not read for us anyway, and the libraries that would
help need what we cannot have: spaCy's English models and NLTK's tagger and Punkt data are
downloads at run time, not PyPI packages (the copies some people re-upload to PyPI are
unofficial); textblob needs the same NLTK data; flair and stanza need torch. For sentences
alone, pysbd (rule-based, pure Python) took about 40 times as long as the splitter in
``app.reading_text`` on the same 300-word messages, more than this whole reader, and syntok
about 8 times; neither reads these short workplace messages better. So the vocabulary is
data in ``knowledge/reading/`` (word lists, patterns, and an entry per action of
``knowledge/moves/actions.yaml`` for what was tried), checked by pydantic models when
loaded (``app.reading_rules``), and the reader's modules only apply it:
``app.reading_text`` (sentences, clauses), ``app.reading_phrases`` (people and things, word
by word) and ``app.reading_tried`` (what was already done).

``python -m app.reading "text"`` prints the reading of a text as JSON.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app import reading_phrases
from app.errors import CoachError
from app.reading_rules import ReadingRules, load_rules
from app.reading_text import Sentence, clause_around, number_value, one_line, sentences, tidy
from app.reading_tried import find_tried

MAX_PEOPLE = 6
MAX_CONSTRAINTS = 6
MAX_QUESTIONS = 6
MAX_NOUNS = 8

ConstraintKind = Literal["budget", "authority", "time", "staff", "policy", "other"]

_POSSESSIVE = re.compile(r"\b(?:my|our)\b", re.IGNORECASE)
_QUESTION_END = re.compile(r"\?[\"')\]]*$")


class Person(BaseModel):
    """Someone the writer mentions by role."""

    model_config = ConfigDict(extra="forbid")
    mention: str = Field(description='As written: "one of my senior developers".')
    noun: str = Field(description='What they are, singular, lower case: "senior developer".')


class Constraint(BaseModel):
    """A limit the writer works under."""

    model_config = ConfigDict(extra="forbid")
    kind: ConstraintKind = Field(description="budget, authority, time, staff, policy or other.")
    text: str = Field(description="The writer's clause: \"I can't fire anyone\".")


class TriedAction(BaseModel):
    """Something the writer says they have already done."""

    model_config = ConfigDict(extra="forbid")
    action: str = Field(description="An action id of knowledge/moves/actions.yaml.")
    text: str = Field(description="The writer's clause: \"I've talked to each of them\".")


class Reading(BaseModel):
    """What the writer says about their own situation, in their words. Every field is empty
    (None or []) when the text does not say it."""

    model_config = ConfigDict(extra="forbid")
    role: str | None = Field(
        None, description='The writer\'s own position: "team lead", "new supervisor".'
    )
    leads: str | None = Field(
        None, description='Whom they lead: "a team of 8 developers", "the night shift nurses".'
    )
    team_size: int | None = Field(
        None, ge=1, description="How many people they lead, when a number is stated."
    )
    boss: str | None = Field(
        None, description='How they name their own manager: "my director", "the VP".'
    )
    people: list[Person] = Field(
        default_factory=list, description=f"People mentioned by role, at most {MAX_PEOPLE}."
    )
    constraints: list[Constraint] = Field(
        default_factory=list, description=f"Limits they work under, at most {MAX_CONSTRAINTS}."
    )
    tried: list[TriedAction] = Field(
        default_factory=list, description="What they say they have already done, once each."
    )
    questions: list[str] = Field(
        default_factory=list, description="Their explicit questions, whole sentences."
    )
    time_pressure: str | None = Field(
        None, description='A deadline or urgency: "by Friday", "before the launch in March".'
    )
    nouns: list[str] = Field(
        default_factory=list,
        description=f'The things of the situation: "the sprint review", at most {MAX_NOUNS}.',
    )

    @property
    def tried_actions(self) -> list[str]:
        """The ids of the actions already tried, in the order they were mentioned."""
        return [t.action for t in self.tried]


def read_situation(text: str, rules: ReadingRules | None = None) -> Reading:
    """The reading of a situation written by the person asking. Never raises on odd text:
    empty, one-word or non-English text gives a (mostly) empty reading."""
    rules = rules or load_rules()
    found = sentences(tidy(text), rules.abbreviations)
    taken: list[tuple[int, int]] = []  # spans read as role, team or boss, not as people
    role = _first(found, rules.role, "role", taken, rules)
    leads = _leads(found, rules, taken)
    boss = _first(found, rules.boss, "boss", taken, rules)
    people = _people(found, rules, taken, boss)
    return Reading(
        role=role,
        leads=leads,
        team_size=_team_size(found, leads, rules),
        boss=boss,
        people=people,
        constraints=_constraints(found, rules),
        tried=[TriedAction(action=f.action, text=f.text) for f in find_tried(found, rules.tried)],
        questions=_questions(found, rules),
        time_pressure=_time_pressure(found, rules),
        nouns=_nouns(found, rules, taken),
    )


def _first(
    found: list[Sentence],
    patterns: tuple[re.Pattern, ...],
    group: str,
    taken: list[tuple[int, int]],
    rules: ReadingRules,
) -> str | None:
    """The first match of the surest pattern, outside the spans already taken."""
    for pattern in patterns:
        for sentence in found:
            for match in pattern.finditer(sentence.lower):
                start, end = match.span(group)
                span = (sentence.start + start, sentence.start + end)
                if not _overlaps(span, taken):
                    taken.append(span)
                    return _as_said(sentence.text[start:end], rules, opens=start == 0)
    return None


def _leads(found: list[Sentence], rules: ReadingRules, taken: list) -> str | None:
    """Whom the writer leads, cut back to its last people or group word, or ending in a
    number ("a team of eight")."""
    words = rules.words
    for pattern in rules.leads:
        for sentence in found:
            for match in pattern.finditer(sentence.lower):
                start, end = match.span("np")
                said = sentence.text[start:end].split()
                ends = [i for i, word in enumerate(said) if word.lower() in words.lead_heads]
                if said and number_value(said[-1], words.numbers) is not None:
                    ends.append(len(said) - 1)  # "a team of eight"; not "10 years"
                if ends:
                    phrase = " ".join(said[: ends[-1] + 1])
                    taken.append((sentence.start + start, sentence.start + start + len(phrase)))
                    return _as_said(phrase, rules)
    return None


def _team_size(found: list[Sentence], leads: str | None, rules: ReadingRules) -> int | None:
    numbers = rules.words.numbers
    if leads:
        for pattern in rules.team_size_in_leads:
            match = pattern.search(leads.lower())
            value = match and number_value(match.group("n"), numbers)
            if value:
                return value
    for sentence in found:
        for match in rules.team_size_anywhere.finditer(sentence.lower):
            said = next(v for k, v in match.groupdict().items() if k[0] == "n" and v)
            value = number_value(said, numbers)
            if value:
                return value
    return None


def _people(
    found: list[Sentence], rules: ReadingRules, taken: list, boss: str | None
) -> list[Person]:
    people: dict[str, Person] = {}
    for sentence in found:
        for phrase in reading_phrases.people(sentence, rules.words):
            span = (phrase.start, phrase.end)
            mention = _as_said(phrase.text, rules)
            head = phrase.noun.split()[-1]
            if (
                phrase.noun in people
                or _overlaps(span, taken)
                or (boss and mention.lower() == boss.lower())
                or (head in rules.words.possessive_only and not _POSSESSIVE.search(mention))
            ):
                continue
            people[phrase.noun] = Person(mention=mention, noun=phrase.noun)
            taken.append(span)
    return list(people.values())[:MAX_PEOPLE]


def _constraints(found: list[Sentence], rules: ReadingRules) -> list[Constraint]:
    """Each clause once, as the most telling kind found in it, in the text's order."""
    rank = {kind: i for i, kind in enumerate(rules.constraint_kinds)}
    seen: dict[str, tuple[int, Constraint]] = {}
    for sentence in found:
        if _QUESTION_END.search(sentence.text):
            continue  # "Is it time to go to the union?" asks; it does not say a limit
        for match in rules.constraints.finditer(sentence.lower):
            kind = next(k for k in rules.constraint_kinds if match.group(k) is not None)
            clause = clause_around(sentence.text, match.start(), match.end())
            key = clause.lower()
            if clause and (key not in seen or rank[kind] < rank[seen[key][1].kind]):
                place = seen[key][0] if key in seen else sentence.start + match.start()
                seen[key] = (place, Constraint(kind=kind, text=clause))
    return [c for _, c in sorted(seen.values(), key=lambda pc: pc[0])][:MAX_CONSTRAINTS]


def _questions(found: list[Sentence], rules: ReadingRules) -> list[str]:
    asked: list[str] = []
    for sentence in found:
        asks = rules.questions.search(sentence.lower) and not (
            rules.not_questions and rules.not_questions.search(sentence.lower)
        )
        if _QUESTION_END.search(sentence.text) or asks:
            question = " ".join(sentence.text.split())
            if question not in asked:
                asked.append(question)
    return asked[:MAX_QUESTIONS]


def _time_pressure(found: list[Sentence], rules: ReadingRules) -> str | None:
    """The surest deadline in the text: a dated one before plain urgency."""
    for pattern in rules.time_dated + rules.time_urgent:
        for sentence in found:
            match = pattern.search(sentence.lower)
            if match:
                start, end = match.span("when" if "when" in pattern.groupindex else 0)
                return _as_said(sentence.text[start:end], rules)
    return None


def _nouns(found: list[Sentence], rules: ReadingRules, taken: list) -> list[str]:
    """Each thing once, in the text's order; "the review" is dropped beside "the sprint
    review", which names the same thing more fully."""
    things: dict[str, tuple[int, str]] = {}
    for sentence in found:
        for phrase in reading_phrases.things(sentence, rules.words):
            if phrase.noun not in things and not _overlaps((phrase.start, phrase.end), taken):
                things[phrase.noun] = (phrase.start, _as_said(phrase.text, rules))
    fuller = [n for n in things if not any(o.endswith(" " + n) for o in things)]
    return [things[n][1] for n in sorted(fuller, key=lambda n: things[n][0])][:MAX_NOUNS]


def _as_said(phrase: str, rules: ReadingRules, *, opens: bool = False) -> str:
    """``phrase`` on one line, its first word in lower case when it is only capitalised for
    starting a sentence: a function word ("My director" -> "my director"), or any word
    written as a title when ``opens`` says the phrase opens its sentence ("Night nurse")."""
    phrase = one_line(phrase)
    first, space, rest = phrase.partition(" ")
    low, words = first.lower(), rules.words
    common = low in words.determiners or low in words.stop or low in words.quantifiers
    if common or low in words.numbers or (opens and first[:1].isupper() and first[1:].islower()):
        return low + space + rest
    return phrase


def _overlaps(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in taken)


def main(argv: list[str] | None = None) -> int:
    """``python -m app.reading "text"`` (or the text on standard input): the reading as JSON."""
    args = sys.argv[1:] if argv is None else argv
    text = " ".join(args) if args else sys.stdin.read()
    try:
        reading = read_situation(text)
    except CoachError as exc:  # a broken data file: the message names it and what to do
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(reading.model_dump(), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
