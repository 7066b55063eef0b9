"""Scorers that catch boilerplate coaching: the question answered, nothing tried repeated,
quotes that back their focus, the person's own situation, and steps that vary across answers.

Each is a small pure function of the case's data and the answer's text; none reads what the
coach says about itself (its evidence, its reading of the situation). Words are compared as
light stems (``stem``) after phrases with one meaning are folded together (``one-on-one``,
``1:1`` and ``one-to-one`` are one word, and so are ``check-in`` and ``stand-up``).
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from app.evals.scorers import Score, find_quotes, in_situation
from app.passages import FOCUS_NAMES, focus_side

if TYPE_CHECKING:
    import numpy as np

    from app.answer import CoachingAnswer
    from app.passages import Passage

# answers_question: the opening is the first OPENING_PARAGRAPHS paragraphs of the coaching
# (headings left out), cut at OPENING_WORDS words. It must hold at least half the question's
# key terms (at most KEY_TERMS_NEEDED of them) outside any copy of the question: a run of
# ECHO_RUN or more of the question's words in a row, or a quote of the question.
OPENING_PARAGRAPHS = 2
OPENING_WORDS = 120
KEY_TERMS_NEEDED = 3
ECHO_RUN = 5
# no_repeat_of_tried: a step repeats a tried item when it shares at least half of the item's
# content terms, and at least two of them (one when the item has only one), and one of the
# shared terms is more than an everyday word (EVERYDAY: "record" and "show" alone are no
# repeat of "the booking system records no-shows").
REPEAT_SHARE = 0.5
REPEAT_MIN_SHARED = 2
# quotes_support_focus: a quote contradicts its focus when it reads closer to the other side
# by QUOTE_MARGIN or more (cosine, see FocusReader). Chosen on the dev suites' one-sided cases
# (core and real-dev): at 0.10, 3% of the sentences of management cases read as clearly
# leadership and 7% of those of leadership cases as clearly management, and most of those are
# the cases' deliberate other-side sentences ("my team trusts each other completely" in a
# rota problem); below 0.08 neutral sentences ("I lead IT support for a university") start
# to be flagged.
QUOTE_MARGIN = 0.10
# A quote that joins two clauses ("everyone finds them inspiring, but nobody can say whether
# we're on track") is support when one clause of CLAUSE_MIN_WORDS or more reads as its focus's
# side by half the margin.
CLAUSE_MIN_WORDS = 4
# step_diversity: step sentences shorter than this are too short to count as a template.
STEP_MIN_WORDS = 4


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Function words, and words every question or answer about a team uses: they say nothing
# about what this person asked, tried or lives through.
STOPWORDS = _word_set(
    """
    a about above after again against all almost also am an and any are aren't as at be
    because been before being below between both but by can can't cannot could couldn't did
    didn't do does doesn't doing don't down during each either else even ever every few for
    from further had hadn't has hasn't have haven't having he he'd he'll he's her here hers
    herself him himself his how i i'd i'll i'm i've if in into is isn't it it's its itself
    just let's may me might more most much must mustn't my myself neither no nor not now of
    off on once only or other ought our ours ourselves out over own per quite rather same
    shall shan't she she'd she'll she's should shouldn't so some such than that that's the
    their theirs them themselves then there there's these they they'd they'll they're
    they've this those though through to too under until up upon us very was wasn't we we'd
    we'll we're we've were weren't what what's when when's where where's whether which while
    who who's whom whose why why's will with without won't would wouldn't yet you you'd
    you'll you're you've your yours yourself yourselves
    one two three four five six seven eight nine ten first second third
    many several lot lots bit kind sort way ways thing things something anything everything
    nothing someone anyone everyone somebody anybody everybody really actually just also
    still already even again maybe perhaps probably certain certainly sure well like
    etc e g eg ie i e ok okay yes since another always sometimes everytime whole around
    less ish
    """
)
GENERIC = _word_set(
    """
    how what best good better bad great right real proper properly appropriately
    situation problem problems issue issues question questions help advice tip tips
    approach deal handle handling manage managing manager managers management lead leads
    leading leader leaders leadership team teams people person persons employee employees
    staff member members colleague colleagues coworker coworkers worker workers work works
    working job jobs company companies organisation organization organisations organizations
    developer developers dev devs engineer engineers programmer programmers
    get gets got getting make makes made making do go goes going went take takes took taken
    taking have keep keeps kept put puts let come comes came see sees saw seen use uses using
    used try tries trying start starts started starting want wants wanted need needs needed
    know knows knew think thinks thought feel feels felt seem seems seemed say says said
    suggest suggests recommend recommends advise would could should can
    week weeks month months day days year years today tomorrow time times now currently
    current new old
    improve improving improvement
    tried done did give gives gave given giving set sets setting consider considering look
    looks looking
    """
)
# Everyday words that never by themselves point at a situation's own people, events or
# numbers ("tell them", "next week", "a different idea"): not counted by specificity, while a
# question may still turn on them ("how do I tell my boss").
EVERYDAY = _word_set(
    """
    nobody somebody anybody everybody tell ask asked asking answer answers say talk listen
    listening listened hear heard speak agree agreed agreement disagree decide decided
    decision decisions choose chose chosen choice pick picked show showed shown write wrote
    written read name named list lists note notes point points part parts piece pieces side
    sides example examples idea ideas reason reasons result results step steps rule rules
    number numbers rate rates date dates hour hours minute minutes day days week weeks month
    months year years next last late later early earlier soon often always never sometimes
    first final main different same other whole small big large high low long short open
    closed wrong right true false clear clearly simple hard easy fair worth sure able
    matter matters wait waited miss missed missing turn turned turns back front end course
    money cost costs blame blamed respect believe believed trust hide hid mistake mistakes
    safe share shared involve involved local report reported commit committed measure
    measured measures change changed changes act acted action happen happened keep kept
    give gave given bring brought move moved stay stayed stop stopped leave left find found
    notice noticed expect expected mean means meant care cared lose lost win won send sent
    hold held call called run ran spend spent cover covered
    """
)
# Phrases folded into one word before words are split: one meaning, one term.
_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), word)
    for pattern, word in (
        (r"\b(?:one|1)[\s-]*(?:on|to|2)[\s-]*(?:one|1)s?\b|\b1:1s?\b", " onetoone "),
        (r"\bcheck[\s-]?ins?\b|\bstand[\s-]?ups?\b|\bhuddles?\b", " checkin "),
        (r"\b(?:sat|sit|sitting|sits) down with\b", " talk with "),
        (r"\bline managers?\b", " boss "),
        (r"\bstory[\s-]?points?\b", " storypoint "),
        (r"\bno[\s-]shows?\b", " noshow "),
        (
            r"\b(?:with )?each (?:of them|of the team|person|one|member)\b|\bindividual(?:ly)?\b"
            r"|\bone by one\b",
            " individually ",
        ),
        (r"\bhand(?:ed|ing|s)? (?:it |them |this |that )?(?:over|off)\b", " delegate "),
    )
)
# Words with one meaning for these scorers, by their canonical term.
_SYNONYMS: dict[str, str] = {
    word: canonical
    for canonical, words in {
        "talk": "talk talked talking talks speak speaks spoke spoken speaking meet meets met "
        "meeting meetings chat chats chatted chatting conversation conversations discuss "
        "discussed discusses discussing discussion discussions",
        "tell": "tell tells told telling inform informs informed informing",
        "boss": "boss bosses supervisor supervisors",
        "delegate": "delegate delegates delegated delegating delegation",
        "goal": "goal goals target targets objective objectives",
        "retro": "retro retros retrospective retrospectives",
        "onetoone": "onetoone",  # the folded phrases stay as they are
        "checkin": "checkin",
        "individually": "individually",
        "storypoint": "storypoint",
        "noshow": "noshow",
    }.items()
    for word in words.split()
}
# Terms that carry another: a one-to-one or a check-in is a talk.
_IMPLIES: dict[str, tuple[str, ...]] = {
    "onetoone": ("talk", "individually"),
    "checkin": ("talk",),
}
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_NUMBER = re.compile(r"\d")
# A step that builds on what was tried says so in the same step.
_ACKNOWLEDGES = re.compile(
    r"\balready\b|\b(?:you've|you have|since you|as you|after you|now that you)\b"
    r"\W+(?:\w+\W+){0,3}?(?:tried|done|had|held|met|spoken|talked|told|asked|given|been|"
    r"put|set|sat|run|\w+ed)\b",
    re.IGNORECASE,
)
_HEADING_LINE = re.compile(r"^\s*(?:#{1,6}\s+.+|\*\*[^*\n]+\*\*:?|__[^_\n]+__:?)\s*$")
_NUMBERED = re.compile(r"^\s*\d{1,2}[.)]\s+(?P<text>.+)$")
_BULLETED = re.compile(r"^\s*[-*•]\s+(?P<text>.+)$")
_STEPS_HEADING = re.compile(
    r"\b(?:what to do|steps?|next|try|actions?|this week|plan|moves?|to do|do now|start)\b",
    re.IGNORECASE,
)
_NOT_STEPS = re.compile(r"\b(?:watch|avoid|pitfalls?|why|risks?|signs?|questions?)\b", re.I)
_SENTENCE = re.compile(r"(?<=[.!?…])[\"'”’)]*\s+(?=[\"'“‘(]*[A-Z0-9])")
_MARKUP = re.compile(r"\*\*|__|`|(?<!\w)[*_](?=\w)|(?<=\w)[*_](?!\w)")
_CLAUSE = re.compile(
    r"[;:—–]|,\s*(?=(?:but|and|while|because|so|though|although|yet|whereas)\b)|\bbut\b",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"“[^”\n]+”|\"[^\"\n]+\"")


# ------------------------------------------------------------------------------ words


def stem(word: str) -> str:
    """A light stem: plural, -ing, -ed, -ly, -ation and a final e dropped, so "planning",
    "planned" and "plans" are "plan", and "migration" and "migrating" are "migrat"."""
    w = word.lower().replace("’", "'")
    w = re.sub(r"'s$|s'$", "", w)
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix, keep in (("ations", 3), ("ation", 3), ("ingly", 3), ("ing", 3), ("edly", 3)):
        if w.endswith(suffix) and len(w) - len(suffix) >= keep:
            w = w[: -len(suffix)] + ("at" if suffix.startswith("ation") else "")
            break
    else:
        for suffix, shortest in (("ed", 5), ("ly", 6), ("er", 7)):
            if w.endswith(suffix) and len(w) >= shortest and not w.endswith("eed"):
                w = w[: -len(suffix)]
                break
    if len(w) >= 4 and w[-1] == w[-2] and w[-1] not in "lsz":
        w = w[:-1]  # planning -> plann -> plan
    if w.endswith("e") and len(w) >= 4:
        w = w[:-1]
    return w


def _fold(text: str) -> str:
    text = text.lower().replace("’", "'").replace("‘", "'")
    for pattern, word in _PHRASES:
        text = pattern.sub(word, text)
    return text


def words(text: str) -> list[str]:
    """The text's words, lower case, with phrases of one meaning folded into one word."""
    return _WORD.findall(_fold(text))


@lru_cache(maxsize=1)
def _generic_stems() -> frozenset[str]:
    return frozenset(stem(w) for w in GENERIC | STOPWORDS)


def term(word: str) -> str | None:
    """The word's term (synonym folded, stemmed), or None for a stop or generic word."""
    if word in STOPWORDS or word in GENERIC:
        return None
    if _NUMBER.search(word):
        return word
    if len(word) < 3:
        return None
    canonical = _SYNONYMS.get(word)
    if canonical:
        return canonical
    stemmed = stem(word)
    if stemmed in _generic_stems():
        return None
    return stemmed


def terms(text: str, *, implied: bool = True) -> set[str]:
    """The content terms of ``text`` (see ``term``), with the terms they imply."""
    out = {t for w in words(text) if (t := term(w))}
    if implied:
        for t in list(out):
            out.update(_IMPLIES.get(t, ()))
    return out


def article_terms(passages: Iterable[str]) -> frozenset[str]:
    """Every term the article uses: not evidence that an answer talks about the situation."""
    return frozenset(t for text in passages for t in terms(text, implied=False))


@lru_cache(maxsize=1)
def _everyday_terms() -> frozenset[str]:
    return frozenset(t for w in EVERYDAY for t in (term(w), stem(w)) if t)


def situation_terms(situation: str, article: Iterable[str] = ()) -> set[str]:
    """The situation's own terms: its content words and numbers that the article lacks,
    other than everyday words (EVERYDAY)."""
    known = set(article) | _everyday_terms()
    return {t for t in terms(situation, implied=False) if t not in known}


def _plain(text: str) -> str:
    return _MARKUP.sub("", text)


def sentences(text: str) -> list[str]:
    """The text's sentences: each line split at sentence ends; headings and blanks dropped."""
    out = []
    for line in text.splitlines():
        if not line.strip() or _HEADING_LINE.match(line):
            continue
        body = _NUMBERED.sub(r"\g<text>", line)
        body = _BULLETED.sub(r"\g<text>", body)
        out += [s.strip() for s in _SENTENCE.split(_plain(body).strip()) if s.strip()]
    return out


def _coaching(answer: CoachingAnswer | str) -> str:
    return answer if isinstance(answer, str) else answer.coaching


# --------------------------------------------------------------------- answers_question


def paragraphs(text: str) -> list[str]:
    """Blocks of text between blank lines, with heading lines left out."""
    blocks = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line for line in block.splitlines() if line.strip()]
        body = [line for line in lines if not _HEADING_LINE.match(line)]
        if body:
            blocks.append("\n".join(body))
    return blocks


def opening(answer: CoachingAnswer | str) -> str:
    """The start of the coaching: its first two paragraphs (not headings), at most 120 words."""
    text = "\n\n".join(paragraphs(_coaching(answer))[:OPENING_PARAGRAPHS])
    spans = list(re.finditer(r"\S+", text))
    return text[: spans[OPENING_WORDS - 1].end()] if len(spans) > OPENING_WORDS else text


def question_terms(question: str) -> set[str]:
    """The question's key terms: its content words beyond stop and generic words."""
    return terms(question, implied=False)


def without_quotes(text: str, source: str) -> str:
    """``text`` without its quotes of ``source`` (the person's words)."""
    return _QUOTED.sub(
        lambda m: " " if in_situation(m.group(0)[1:-1], source) else m.group(0), text
    )


def without_echo(text: str, question: str, situation: str = "") -> str:
    """``text`` with every copy of the person's words removed: quotes of the question (or of
    the situation, when given), and runs of ECHO_RUN or more of the question's words in a row."""
    text = without_quotes(text, f"{question}\n{situation}")
    found = list(_WORD.finditer(_fold(text)))
    asked = words(question)
    grams = {tuple(asked[i : i + ECHO_RUN]) for i in range(len(asked) - ECHO_RUN + 1)}
    tokens = [m.group(0) for m in found]
    echoed = [False] * len(tokens)
    for i in range(len(tokens) - ECHO_RUN + 1):
        if tuple(tokens[i : i + ECHO_RUN]) in grams:
            for j in range(i, i + ECHO_RUN):
                echoed[j] = True
    return " ".join(t for t, gone in zip(tokens, echoed, strict=True) if not gone)


def answers_question(
    question: str,
    answer: CoachingAnswer | str,
    *,
    situation: str = "",
    article: Iterable[str] = (),
) -> Score:
    """The opening of the coaching addresses the person's explicit question.

    The opening (``opening``) must contain at least half of the question's key terms
    (``question_terms``), and at most KEY_TERMS_NEEDED are required (a long question needs
    three). Terms count only in the coach's own words: not in a copy of the question (a
    run of ECHO_RUN of its words) nor in a quote of the person (``situation``), since
    repeating the question does not answer it. When some key terms are not the article's
    (``article``: its terms), at least one of those must be found: the article's own
    vocabulary ("planning", "goals") fits any answer.
    """
    key = question_terms(question)
    if not key:
        return Score(
            None,
            "the question has no key terms beyond generic words; give it with the sentence it "
            "refers to in the suite",
        )
    need = min(KEY_TERMS_NEEDED, math.ceil(len(key) / 2))
    own = key - set(article)
    said = terms(without_echo(opening(answer), question, situation), implied=False)
    found = sorted(key & said)
    missing = sorted(key - said)
    shown = ", ".join(found) or "none"
    if len(found) < need:
        return Score(
            0.0,
            f"the opening does not address the question: {len(found)} of the {need} key terms "
            f"needed (found: {shown}; missing: {', '.join(missing)})",
        )
    if own and not own & said:
        return Score(
            0.0,
            f"the opening uses only the article's words of the question ({shown}), none of its "
            f"own: {', '.join(sorted(own))}",
        )
    return Score(1.0, f"the opening addresses the question ({shown})")


# ------------------------------------------------------------------ no_repeat_of_tried


@dataclass(frozen=True)
class Step:
    """One recommended step: a numbered line, or a bullet under a steps heading."""

    text: str
    numbered: bool


def steps(answer: CoachingAnswer | str) -> list[Step]:
    """The recommended steps of the coaching: every numbered line, and bulleted lines under
    a heading that announces steps ("What to do this week", "Next steps"; not "What to watch
    for"). A line indented under a step continues it."""
    found: list[Step] = []
    in_steps = False
    continuing = False
    for line in _coaching(answer).splitlines():
        if not line.strip():
            continuing = False
            continue
        numbered = _NUMBERED.match(line)
        bulleted = _BULLETED.match(line)
        if _HEADING_LINE.match(line) or (
            not numbered and not bulleted and line.rstrip().endswith(":") and len(line) < 80
        ):
            in_steps = bool(_STEPS_HEADING.search(line)) and not _NOT_STEPS.search(line)
            continuing = False
            continue
        if numbered:
            found.append(Step(numbered["text"].strip(), True))
            continuing = True
        elif bulleted and in_steps:
            found.append(Step(bulleted["text"].strip(), False))
            continuing = True
        elif bulleted:
            continuing = False
        elif continuing and line[:1].isspace() and found:
            last = found[-1]
            found[-1] = Step(f"{last.text} {line.strip()}", last.numbered)
    return found


def acknowledges(step: str) -> bool:
    """The step says it builds on something already done ("you've already talked to…")."""
    return bool(_ACKNOWLEDGES.search(step))


def repeats(tried: str, step: str) -> set[str]:
    """The tried item's terms that the step recommends again; empty when it does not.

    The item's own terms are matched against the step's terms and what they imply (a
    one-to-one is a talk); an item's term that implies others matches a step that has them
    all ("talk to each of them" matches "we hold one-to-ones")."""
    item = terms(tried, implied=False)
    said = terms(step)
    shared = {
        t for t in item if t in said or (_IMPLIES.get(t) and all(i in said for i in _IMPLIES[t]))
    }
    if not item or not shared - _everyday_terms():
        return set()
    enough = len(shared) >= min(REPEAT_MIN_SHARED, len(item))
    return shared if enough and len(shared) / len(item) >= REPEAT_SHARE else set()


def no_repeat_of_tried(tried: Sequence[str], answer: CoachingAnswer | str) -> Score:
    """No recommended step recommends again what the person says they already tried.

    A step repeats a tried item when it shares at least REPEAT_SHARE of the item's terms
    and at least REPEAT_MIN_SHARED of them (synonyms folded: talk/speak/meet, one-to-one,
    check-in/stand-up). A step that acknowledges it ("you've already…", "since you…")
    builds on it and passes.
    """
    found = steps(answer)
    problems = []
    for step in found:
        if acknowledges(step.text):
            continue
        for item in tried:
            shared = repeats(item, step.text)
            if shared:
                problems.append(
                    f"the step “{_short(step.text)}” repeats what was tried: “{item}” "
                    f"({', '.join(sorted(shared))})"
                )
    if problems:
        return Score(0.0, "; ".join(problems))
    return Score(
        1.0, f"none of {len(found)} step(s) repeats any of the {len(tried)} thing(s) tried"
    )


def _short(text: str, limit: int = 90) -> str:
    text = re.sub(r"\s+", " ", _plain(text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- quotes_support_focus


Embed = Callable[[list[str]], "np.ndarray"]


@dataclass
class FocusReader:
    """Reads which side of the article a sentence is on, with sentence embeddings only.

    A side's reading of a sentence is the mean of its cosine similarity to the article's
    whole section on that side and its mean similarity to that side's three responsibility
    bullets, all in the article's own words (no retrieval hints, no classifier).
    """

    embed: Embed
    sections: dict[str, str]  # side -> the article's section text
    bullets: dict[str, str]  # focus code -> the article's bullet text
    margin: float = QUOTE_MARGIN
    _anchors: dict[str, Any] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _vectors(self) -> dict[str, Any]:
        with self._lock:
            if self._anchors is None:
                names = [*self.sections, *self.bullets]
                texts = [*self.sections.values(), *self.bullets.values()]
                self._anchors = dict(zip(names, self.embed(texts), strict=True))
            return self._anchors

    def sides(self, text: str) -> dict[str, float]:
        """The sentence's reading on each side: management and leadership."""
        anchors = self._vectors()
        vector = self.embed([text])[0]
        out = {}
        for side in ("management", "leadership"):
            codes = [c for c in self.bullets if focus_side(c) == side]
            bullet = sum(float(vector @ anchors[c]) for c in codes) / len(codes)
            out[side] = (float(vector @ anchors[side]) + bullet) / 2
        return out


def focus_reader(passages: Sequence[Passage], embed: Embed) -> FocusReader:
    """A FocusReader on the article's passages: its management and leadership sections and
    its six responsibility bullets."""
    ordered = sorted(passages, key=lambda p: (p.doc_id, p.start))
    sections = {
        side: "\n".join(p.text for p in ordered if p.side == side)
        for side in ("management", "leadership")
    }
    bullets = {p.code: p.text for p in ordered if p.kind == "responsibility" and p.code}
    missing = [c for c in FOCUS_NAMES if c not in bullets] + [
        s for s, t in sections.items() if not t
    ]
    if missing:
        raise ValueError(
            f"the article lacks {', '.join(missing)}: the quote check needs its management and "
            "leadership sections and all six responsibility bullets"
        )
    return FocusReader(embed=embed, sections=sections, bullets=bullets)


def _names_in(text: str) -> list[tuple[int, str]]:
    """(position, focus code) of each responsibility named in ``text``."""
    lowered = text.lower()
    found = []
    for code, name in FOCUS_NAMES.items():
        found += [(m.start(), code) for m in re.finditer(re.escape(name.lower()), lowered)]
    return sorted(found)


def quote_focus(block: str, quote: str) -> str | None:
    """The responsibility a quote is given as support for: the one its paragraph names (the
    last named before the quote when there are several), or None."""
    named = _names_in(block)
    if not named:
        return None
    at = block.find(quote)
    before = [code for pos, code in named if at < 0 or pos <= at]
    return before[-1] if before else named[0][1]


def _gap(reader: FocusReader, text: str, side: str) -> tuple[float, dict[str, float]]:
    """How much closer ``text`` reads to the side other than ``side`` (negative: to ``side``)."""
    text = " ".join(p.strip() for p in re.split(r"…|\.\.\.", text) if p.strip())
    reading = reader.sides(text)
    other = "leadership" if side == "management" else "management"
    return reading[other] - reading[side], reading


def _clause_supports(reader: FocusReader, quote: str, side: str) -> bool:
    """One clause of the quote reads as ``side`` by at least half the margin."""
    clauses = [c.strip(" ,.") for c in _CLAUSE.split(quote)]
    clauses = [c for c in clauses if len(c.split()) >= CLAUSE_MIN_WORDS]
    if len(clauses) < 2:
        return False
    return any(_gap(reader, c, side)[0] <= -reader.margin / 2 for c in clauses)


def _quote_blocks(text: str) -> list[str]:
    return [b for b in re.split(r"\n\s*\n", text) if b.strip()]


def quotes_support_focus(
    answer: CoachingAnswer | str, situation: str, reader: FocusReader
) -> Score:
    """Each quote of the person's words given as support for a responsibility reads as that
    responsibility's side (management or leadership).

    A quote is support when its paragraph names one of the six responsibilities; quotes of
    the article are not the person's words (``in_situation``) and are left out. It
    contradicts its focus when ``reader`` finds it closer to the other side by the margin,
    unless one of its clauses reads as its focus's side (a sentence that says both). Value
    None when the answer quotes no such sentence.
    """
    checked = 0
    problems = []
    for block in _quote_blocks(_coaching(answer)):
        for quote in find_quotes(block):
            if not in_situation(quote.text, situation):
                continue
            line = next((x for x in block.splitlines() if quote.text in x), "")
            code = quote_focus(line, quote.text) or quote_focus(block, quote.text)
            if code is None:
                continue
            checked += 1
            side = focus_side(code)
            gap, reading = _gap(reader, quote.text, side)
            if gap >= reader.margin and not _clause_supports(reader, quote.text, side):
                other = "leadership" if side == "management" else "management"
                problems.append(
                    f"“{_short(quote.text, 70)}” is quoted for {FOCUS_NAMES[code]} but reads as "
                    f"{other} ({reading[other]:.2f} vs {reading[side]:.2f})"
                )
    if not checked:
        return Score(None, "no quote of the person's words is given as support for a focus")
    if problems:
        return Score(
            0.0,
            f"{len(problems)} of {checked} quote(s) contradict their focus: " + "; ".join(problems),
        )
    return Score(1.0, f"{checked} quote(s) of the person's words, each on its focus's side")


# ------------------------------------------------------------------------ specificity


def specificity(answer: CoachingAnswer | str, situation: str, article: Iterable[str] = ()) -> Score:
    """The share of the coaching's sentences that refer to the situation's own people,
    events and numbers, in the coach's own words.

    A sentence refers to the situation when, outside its quotes of the person, it uses a
    term of the situation (``situation_terms``: a content word or number the situation has
    and ``article``, the article's terms, lacks; generic words like team or manage never
    count). Quoting the person does not count: using their nouns does.
    """
    own = situation_terms(situation, article)
    said = sentences(without_quotes(_coaching(answer), situation))
    if not said:
        return Score(None, "the coaching is empty")
    used: Counter[str] = Counter()
    specific = 0
    for sentence in said:
        hits = terms(sentence, implied=False) & own
        if hits:
            specific += 1
            used.update(hits)
    value = specific / len(said)
    shown = ", ".join(t for t, _ in used.most_common(8)) or "none"
    return Score(
        value, f"{specific} of {len(said)} sentence(s) refer to this situation (terms: {shown})"
    )


# --------------------------------------------------------------------- step_diversity


@dataclass(frozen=True)
class StepDiversity:
    """How often the most frequent step sentence appears across a suite's answers."""

    max_share: float | None
    sentence: str
    answers_with_it: int
    answers: int
    step: str = ""

    def to_dict(self) -> dict[str, Any]:
        share = None if self.max_share is None else round(self.max_share, 4)
        return {
            "max_share": share,
            "sentence": self.sentence,
            "answers_with_it": self.answers_with_it,
            "answers": self.answers,
            "step": self.step,
        }


def step_key(sentence: str, own: set[str]) -> str:
    """A step sentence normalised: lower case, no punctuation, digits as #, and the
    situation's own terms as ~ (a template filled with "your nurses" or "your developers"
    is still one sentence)."""
    out = []
    for word in words(_plain(sentence)):
        if _NUMBER.search(word):
            out.append("#")
        elif term(word) in own:
            out.append("~")
        else:
            out.append(word)
    return " ".join(out)


def step_diversity(
    answers: Sequence[CoachingAnswer | str],
    situations: Sequence[str] | None = None,
    article: Iterable[str] = (),
) -> StepDiversity:
    """The share of ``answers`` in which the most frequent step sentence appears (lower is
    better), and that sentence. Pass each answer's situation to fold the situation's own
    words out of the comparison. Sentences under STEP_MIN_WORDS words are not counted."""
    known = frozenset(article)
    counts: Counter[str] = Counter()
    example: dict[str, tuple[str, str]] = {}
    for index, answer in enumerate(answers):
        situation = situations[index] if situations else ""
        own = situation_terms(situation, known) if situation else set()
        seen = set()
        for step in steps(answer):
            for sentence in sentences(step.text):
                key = step_key(sentence, own)
                if len(key.split()) < STEP_MIN_WORDS or key in seen:
                    continue
                seen.add(key)
                example.setdefault(key, (sentence, step.text))
        counts.update(seen)
    if not answers:
        return StepDiversity(None, "", 0, 0)
    if not counts:
        return StepDiversity(0.0, "", 0, len(answers))
    key, count = counts.most_common(1)[0]
    sentence, step = example[key]
    return StepDiversity(count / len(answers), sentence, count, len(answers), _plain(step))


# ------------------------------------------------------------------------- per case


@dataclass
class CoachingContext:
    """What these scorers need besides the case and the answer, fixed for a run: the
    article's terms and a way to make the focus reader (built on first use)."""

    article: frozenset[str] = frozenset()
    make_reader: Callable[[], FocusReader] | None = None
    _reader: FocusReader | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reader(self) -> FocusReader:
        with self._lock:
            if self._reader is None:
                if self.make_reader is None:
                    raise ValueError("no focus reader configured for quotes_support_focus")
                self._reader = self.make_reader()
            return self._reader


STOPPED = ("crisis", "unethical", "prompt_leak", "off_topic")


def _coached(answer: CoachingAnswer) -> bool:
    return answer.meta.safety not in STOPPED and bool(answer.coaching.strip())


def case_scorers(
    case: Any, context: CoachingContext
) -> dict[str, Callable[[CoachingAnswer], Score]]:
    """These scorers for one case (a ``suites.Case``), each a function of the answer:
    ``answers_question`` when the case gives a question, ``no_repeat_of_tried`` when it
    says what was tried, and ``quotes_support_focus`` and ``specificity`` always (no value
    for an answer the guard stopped)."""
    out: dict[str, Callable[[CoachingAnswer], Score]] = {}
    if case.question:
        out["answers_question"] = lambda a: answers_question(
            case.question, a, situation=case.situation, article=context.article
        )
    if case.tried:
        out["no_repeat_of_tried"] = lambda a: no_repeat_of_tried(case.tried, a)

    def quotes(a: CoachingAnswer) -> Score:
        if not _coached(a):
            return Score(None, "the guard stopped it: nothing coached to check")
        if not any(in_situation(q.text, case.situation) for q in find_quotes(a.coaching)):
            return Score(None, "no quote of the person's words is given as support for a focus")
        return quotes_support_focus(a, case.situation, context.reader())

    def specific(a: CoachingAnswer) -> Score:
        if not _coached(a):
            return Score(None, "the guard stopped it: nothing coached to check")
        return specificity(a, case.situation, context.article)

    out["quotes_support_focus"] = quotes
    out["specificity"] = specific
    return out


COACHING_SCORES = ("answers_question", "no_repeat_of_tried", "quotes_support_focus", "specificity")
