"""Finds personal data in text and masks it: emails, phone, ID and staff numbers, dates of
birth and people's names.

What counts, and how it is found, lives in ``prompts/personal_data.yaml``. Names are found
by rules over capitalised words, with first names checked against the first-name
dictionary that ships with the ``gender-guesser`` package (about 48,000 names from some
fifty countries, each with how common it is there): a title ("Mr Okafor"), a cue ("my
report Priya", "a nurse called Mbali") or a common first name marks a name, and a
capitalised word after a name is its surname ("Dana Whitfield"). Months, places,
products, team names and ordinary words at the start of a sentence are left alone. It
reads Latin-script names only; a name it has never seen and nothing points at is missed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from app.data_files import load_yaml_model
from app.errors import ConfigError

DATA_FILE = "personal_data.yaml"
NAME_DICTIONARY = ("gender_guesser", "data/nam_dict.txt")
RECENT = 256  # masked texts remembered

_WORD = re.compile(r"[^\W\d_]+(?:['’-](?=[A-Z])[^\W\d_]+)*")
_SENTENCE_END = re.compile(r"(?:^|[.!?…:|]|\n)[\s\"'“‘(\[*•>#-]*(?:\d+[.)]\s*)?$")
_CONTRACTION = re.compile(r"['’](?:t|re|ve|ll|d|m)\b")
_POSSESSIVE = re.compile(r"['’]s\b")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NameRules(_Strict):
    placeholder: str = "name"
    min_frequency: int = Field(3, ge=1, le=13)
    min_length: int = Field(3, ge=1)
    titles: list[str] = Field(default_factory=list)
    cues: list[str] = Field(default_factory=list)
    not_after: list[str] = Field(default_factory=list)
    not_before: list[str] = Field(default_factory=list)
    never: list[str] = Field(default_factory=list)
    common_words: list[str] = Field(default_factory=list)


class PersonalDataFile(_Strict):
    version: int
    fragments: dict[str, str] = Field(default_factory=dict)
    patterns: dict[str, list[str]] = Field(min_length=1)
    names: NameRules


@dataclass(frozen=True)
class Found:
    """One masked value: its kind and the original text."""

    kind: str
    value: str
    match_case: bool = False  # a name is a name only as written: "Will", not "will"


@dataclass
class Masking:
    """Text with personal data replaced by ``[kind]`` placeholders."""

    text: str
    kinds: list[str] = field(default_factory=list)  # in the order of the data file
    found: list[Found] = field(default_factory=list)

    @property
    def values(self) -> list[str]:
        return [f.value for f in self.found]


@dataclass(frozen=True)
class Masker:
    """The compiled rules of ``prompts/personal_data.yaml`` and the first-name dictionary."""

    patterns: tuple[tuple[str, tuple[re.Pattern, ...]], ...]
    names: NameRules
    cues: tuple[re.Pattern, ...]
    titles: frozenset[str]
    not_after: frozenset[str]
    not_before: frozenset[str]
    never: frozenset[str]
    common_words: frozenset[str]
    first_names: frozenset[str]
    # Recent results: each turn of a conversation is masked again on every question.
    _recent: dict[str, Masking] = field(default_factory=dict, compare=False, repr=False)

    def mask(self, text: str) -> Masking:
        """Replace every piece of personal data in ``text`` with its placeholder."""
        done = self._recent.get(text)
        if done is None:
            if len(self._recent) >= RECENT:
                self._recent.clear()
            done = self._recent[text] = _mask(self, text)
        return Masking(done.text, list(done.kinds), list(done.found))


def load_masker(prompts_dir: Path | None = None) -> Masker:
    """The masker for ``prompts_dir`` (default: the COACH_PROMPTS_DIR setting), built once."""
    if prompts_dir is None:
        from app.settings import get_settings

        prompts_dir = get_settings().prompts_dir
    return _load_masker(Path(prompts_dir).resolve())


@lru_cache(maxsize=4)
def _load_masker(prompts_dir: Path) -> Masker:
    path = prompts_dir / DATA_FILE
    data = load_yaml_model(path, PersonalDataFile, "personal-data rules file")
    patterns = tuple(
        (
            kind,
            tuple(_compile(p, data.fragments, f"patterns.{kind}[{i}]") for i, p in enumerate(ps)),
        )
        for kind, ps in data.patterns.items()
    )
    rules = data.names
    return Masker(
        patterns=patterns,
        names=rules,
        cues=tuple(
            _compile(f"(?i)(?:{c})$", {}, f"names.cues[{i}]") for i, c in enumerate(rules.cues)
        ),
        titles=frozenset(t.rstrip(".") for t in rules.titles),
        not_after=frozenset(w.lower() for w in rules.not_after),
        not_before=frozenset(w.lower() for w in rules.not_before),
        never=frozenset(rules.never),
        common_words=frozenset(rules.common_words),
        first_names=first_names(rules.min_frequency),
    )


def mask(text: str, prompts_dir: Path | None = None) -> Masking:
    """Mask ``text`` with the rules in ``prompts_dir`` (default: the configured folder)."""
    return load_masker(prompts_dir).mask(text)


@lru_cache(maxsize=2)
def first_names(min_frequency: int = 3) -> frozenset[str]:
    """First names from gender-guesser's dictionary that are at least ``min_frequency``
    (1 rare .. 13 extremely common) in some country.

    The file is read directly rather than through ``gender_guesser.Detector``: we need the
    names and how common they are, not their genders, and a set of names is a few MB where
    the detector's tables are several times that. Its format is fixed (the file says "DO NOT
    CHANGE: FILE-FORMAT DEFINITION-DATE"): a gender code, the name, then from column 30 one
    hexadecimal frequency per country.
    """
    package, name = NAME_DICTIONARY
    try:
        lines = resources.files(package).joinpath(name).read_text(encoding="utf-8").splitlines()
    except (ModuleNotFoundError, FileNotFoundError):
        raise ConfigError(
            "The first-name dictionary (package gender-guesser) is not installed: "
            "run `make run` or install requirements.lock."
        ) from None
    found: set[str] = set()
    for line in lines:
        if not line or line[0] in "#=" or len(line) < 31 or line[29] == "+":
            continue  # comments, equivalences, and the duplicate "expanded umlaut" lines
        # The highest frequency is the largest character: " " and "$" sort before digits,
        # and digits before "A".."D".
        top = max(line[30:].rstrip("$ \r"), default=" ")
        if top == " " or int(top, 16) < min_frequency:
            continue
        word = line.split()[1]
        if "+" in word:  # "Jun+Wei" stands for "Jun-Wei", "Jun Wei" and "Junwei"
            found.update(word.replace("+", joiner) for joiner in ("-", ""))
        else:
            found.add(word)
    return frozenset(found)


# --------------------------------------------------------------------------- masking


def _compile(pattern: str, fragments: dict[str, str], where: str) -> re.Pattern:
    for key, value in fragments.items():
        pattern = pattern.replace("{{" + key + "}}", value)
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{DATA_FILE}: {where} is not a valid pattern: {exc}.") from None


def _mask(masker: Masker, text: str) -> Masking:
    result = Masking(text=text)
    for kind, patterns in masker.patterns:
        for pattern in patterns:
            result.text = pattern.sub(lambda m, k=kind: _replace(m, k, result), result.text)
    spans = _name_spans(masker, result.text)
    if spans:
        placeholder = f"[{masker.names.placeholder}]"
        out, last = [], 0
        for start, end in spans:
            out += [result.text[last:start], placeholder]
            result.found.append(Found(masker.names.placeholder, result.text[start:end], True))
            last = end
        result.text = "".join(out) + result.text[last:]
    found_kinds = {f.kind for f in result.found}
    order = [kind for kind, _ in masker.patterns] + [masker.names.placeholder]
    result.kinds = [kind for kind in order if kind in found_kinds]
    return result


def _replace(match: re.Match, kind: str, result: Masking) -> str:
    placeholder = f"[{kind}]"
    if "value" in match.re.groupindex and match.group("value") is not None:
        start, end = match.span("value")
        value = match.group("value")
        result.found.append(Found(kind, value))
        whole = match.group(0)
        offset = match.start()
        return whole[: start - offset] + placeholder + whole[end - offset :]
    result.found.append(Found(kind, match.group(0)))
    return placeholder


@dataclass
class _Token:
    word: str
    start: int
    end: int
    capital: bool
    sentence_start: bool


def _tokens(text: str) -> list[_Token]:
    tokens = []
    for m in _WORD.finditer(text):
        word = m.group(0)
        capital = word[0].isupper() and not word.isupper()
        start = capital and bool(_SENTENCE_END.search(text, max(0, m.start() - 12), m.start()))
        tokens.append(_Token(word, m.start(), m.end(), capital, start))
    return tokens


def _name_spans(masker: Masker, text: str) -> list[tuple[int, int]]:
    """Character spans of people's names in ``text``, merged into full names."""
    tokens = _tokens(text)
    is_name = [False] * len(tokens)
    for i, tok in enumerate(tokens):
        if not tok.capital or _CONTRACTION.match(text, tok.end):
            continue
        prev = tokens[i - 1] if i else None
        after_title = (
            prev is not None
            and prev.word in masker.titles
            and _adjacent(text, prev, tok, allow=". ")
        )
        if tok.word in masker.titles:
            continue
        if after_title or _after_cue(masker, text, tok):
            is_name[i] = tok.word not in masker.never or after_title
            continue
        if not _dictionary_name(masker, text, tokens, i):
            continue
        is_name[i] = True
    # A capitalised word right after a name is its surname ("Dana Whitfield", "Priya Nguyen").
    for i in range(1, len(tokens)):
        tok, prev = tokens[i], tokens[i - 1]
        if (
            is_name[i - 1]
            and not is_name[i]
            and tok.capital
            and _adjacent(text, prev, tok, allow=" ")
            and tok.word not in masker.never
            and tok.word not in masker.common_words
            and tok.word.lower() not in masker.not_before
            and not _CONTRACTION.match(text, tok.end)
        ):
            is_name[i] = True
    # Every other occurrence of a word found to be a name is masked too.
    known = {tokens[i].word for i, flag in enumerate(is_name) if flag}
    for i, tok in enumerate(tokens):
        if not is_name[i] and tok.word in known and not _CONTRACTION.match(text, tok.end):
            is_name[i] = True
    spans: list[tuple[int, int]] = []
    for i, tok in enumerate(tokens):
        if not is_name[i]:
            continue
        if spans and i and is_name[i - 1] and _adjacent(text, tokens[i - 1], tok, allow=" "):
            spans[-1] = (spans[-1][0], tok.end)
        else:
            spans.append((tok.start, tok.end))
    return spans


def _adjacent(text: str, a: _Token, b: _Token, allow: str = " ") -> bool:
    gap = text[a.end : b.start]
    return 0 < len(gap) <= 2 and all(c in allow for c in gap)


def _after_cue(masker: Masker, text: str, tok: _Token) -> bool:
    before = text[max(0, tok.start - 40) : tok.start]
    return any(cue.search(before) for cue in masker.cues)


def _dictionary_name(masker: Masker, text: str, tokens: list[_Token], i: int) -> bool:
    """A first name from the dictionary that is not a place, month, product or ordinary
    word in this position."""
    tok = tokens[i]
    word = tok.word
    if len(word) < masker.names.min_length or word not in masker.first_names:
        return False
    if word in masker.never or (tok.sentence_start and word in masker.common_words):
        return False
    # Next to a number it is a date or a model, not a person: "May 12", "12 June", "Alexa 2".
    if re.search(r"\d", text[max(0, tok.start - 4) : tok.start] + text[tok.end : tok.end + 4]):
        return False
    if _POSSESSIVE.match(text, tok.end):
        return True  # "in Priya's team" is a person, where "in Florence" is a place
    prev = tokens[i - 1] if i else None
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    place_before = prev is not None and prev.word.lower() in masker.not_after
    place_after = nxt is not None and nxt.word.lower() in masker.not_before
    return not (
        (place_before and _adjacent(text, prev, tok)) or (place_after and _adjacent(text, tok, nxt))
    )
