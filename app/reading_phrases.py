"""The people and things a situation names, found word by word with the reader's word lists:
a known noun, up to a few modifiers before it, and a determiner ("one of my senior
developers", "a new hire", "the Q3 roadmap"). A walk over the words of a sentence costs a
few set look-ups per word, where a pattern with the same word lists costs many times more.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from app.reading_rules import Words
from app.reading_text import Sentence

MAX_PEOPLE_MODIFIERS = 2
MAX_THING_MODIFIERS = 3

_TOKEN = re.compile(r"\w+(?:[&+/:'-]\w+)*")
_VERB_LIKE = re.compile(r"(?:[^s']s|ed)$")


class Phrase(NamedTuple):
    """A noun phrase: where it is in the whole text, as written, and its noun in lower case
    (modifiers and the singular head: "senior developer")."""

    start: int
    end: int
    text: str
    noun: str


def people(sentence: Sentence, words: Words) -> list[Phrase]:
    """People named by role: "my two leads", "one of my senior developers", "the client"."""
    tokens = list(_TOKEN.finditer(sentence.lower))
    found = []
    for i, token in enumerate(tokens):
        if token.group() not in words.people_ends:
            continue
        head = _head(tokens, i, words.people, sentence.lower)
        if head is None or _head(tokens, i + 1, words.people, sentence.lower, after=i) is not None:
            continue  # not a person, or the noun goes on: "senior" in "senior developers"
        first = _modifiers(tokens, head, MAX_PEOPLE_MODIFIERS, words, sentence.lower)
        start = first - 1
        counted = (
            start >= 0
            and _is_number(tokens[start].group(), words)
            and _joined(tokens, start, sentence.lower)
        )
        if counted:
            start -= 1
        if (
            start >= 0
            and tokens[start].group() in words.determiners
            and _joined(tokens, start, sentence.lower)
        ):
            pass
        elif counted:
            start += 1  # "8 developers": the number is the determiner
        else:
            continue
        if (
            start >= 2
            and tokens[start - 1].group() == "of"
            and (tokens[start - 2].group() in words.quantifiers)
            and _joined(tokens, start - 2, sentence.lower)
            and _joined(tokens, start - 1, sentence.lower)
        ):
            start -= 2  # "one of my developers"
        modifiers = [t.group() for t in tokens[first:head]]
        head_words = sentence.lower[tokens[head].start() : tokens[i].end()]
        noun = " ".join([*modifiers, words.people[head_words]])
        found.append(_phrase(sentence, tokens[start].start(), tokens[i].end(), noun))
    return found


def things(sentence: Sentence, words: Words) -> list[Phrase]:
    """The things of the situation: "the sprint review", "our Q3 roadmap", "the migration"."""
    tokens = list(_TOKEN.finditer(sentence.lower))
    found = []
    for i, token in enumerate(tokens):
        if token.group() not in words.artefact_ends:
            continue
        head = _head(tokens, i, words.artefacts, sentence.lower)
        if (
            head is None
            or _head(tokens, i + 1, words.artefacts, sentence.lower, after=i) is not None
        ):
            continue  # not a thing, or the noun goes on: "sprint" in "sprint review"
        if _next_word(tokens, i, sentence.lower) in words.lead_heads:
            continue  # it names a group or a person: "the product team"
        first = _modifiers(tokens, head, MAX_THING_MODIFIERS, words, sentence.lower)
        start = first - 1
        if start < 0 or tokens[start].group() not in words.determiners:
            continue
        if not _joined(tokens, start, sentence.lower):
            continue
        noun = sentence.lower[tokens[first].start() : tokens[i].end()]
        found.append(_phrase(sentence, tokens[start].start(), tokens[i].end(), noun))
    return found


def _phrase(sentence: Sentence, start: int, end: int, noun: str) -> Phrase:
    return Phrase(sentence.start + start, sentence.start + end, sentence.text[start:end], noun)


def _head(tokens: list, i: int, table, lower: str, *, after: int | None = None) -> int | None:
    """The index of the first word of a noun of ``table`` that ends at word ``i`` (nouns of
    two words first), or None. With ``after``, word ``i`` must follow word ``after`` with a
    single space between."""
    if i >= len(tokens) or (after is not None and not _joined(tokens, after, lower)):
        return None
    if i >= 1 and _joined(tokens, i - 1, lower):
        pair = lower[tokens[i - 1].start() : tokens[i].end()]
        if pair in table:
            return i - 1
    return i if tokens[i].group() in table else None


def _modifiers(tokens: list, head: int, most: int, words: Words, lower: str) -> int:
    """The index of the first modifier before word ``head`` (``head`` when there is none).

    A modifier after the first that looks like a verb ("expects", "missed") ends the walk
    where it stands, so "my matron expects weekly audits" is no phrase: the determiner is
    then not next to the modifiers, and the caller finds none."""
    first = head
    while first - 1 >= 0 and head - first < most and _joined(tokens, first - 1, lower):
        word = tokens[first - 1].group()
        if word in words.stop or word in words.determiners or _is_number(word, words):
            break
        first -= 1
    for i in range(first + 1, head):
        if _VERB_LIKE.search(tokens[i].group()):
            return i  # the word before it is then no determiner
    return first


def _next_word(tokens: list, i: int, lower: str) -> str:
    """Word ``i + 1`` when a single space joins it to word ``i``, else ""."""
    return tokens[i + 1].group() if _joined(tokens, i, lower) else ""


def _joined(tokens: list, i: int, lower: str) -> bool:
    """Whether word ``i`` and the next are separated by exactly one space."""
    return i + 1 < len(tokens) and lower[tokens[i].end() : tokens[i + 1].start()] == " "


def _is_number(word: str, words: Words) -> bool:
    return word.isdigit() or word in words.numbers
