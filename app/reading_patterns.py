"""The reader's pattern language: ``{{FRAGMENT}}`` names, ``{talk|speak}`` verbs standing
for every form of each verb, and word lists turned into fast regular expressions."""

from __future__ import annotations

import re

from app.errors import ConfigError

VERB = re.compile(r"\{([a-z][^{}0-9]*)\}")
_FRAGMENT = re.compile(r"\{\{([A-Z_]+)\}\}")
_UPPER_OUTSIDE_ESCAPES = re.compile(r"\\[A-Za-z]|\(\?P[<=][a-z_]+>?|\{\{[A-Z_]+\}\}")
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_UNITS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def either(patterns: list[str]) -> str:
    """One pattern matching any of ``patterns``."""
    return "|".join(f"(?:{p})" for p in patterns)


def alternation(words: list[str]) -> str:
    """A regex for any of ``words``, built as a trie ("te(?:am(?: lead)?|ch lead)"): Python
    compiles and runs a shared-prefix pattern many times faster than a flat list of several
    hundred alternatives."""
    trie: dict = {}
    for word in {w.lower() for w in words}:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return _trie_pattern(trie)


def _trie_pattern(node: dict) -> str:
    branches = [re.escape(c).replace("\\ ", " ") + _trie_pattern(n) for c, n in node.items() if c]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if "" in node else body


def number_pattern(numbers: dict[str, int]) -> str:
    """Numbers in digits, in the words of ``numbers``, and as "twenty-five"."""
    compound = f"(?:{'|'.join(_TENS)})[- ](?:{'|'.join(_UNITS)})"
    return f"(?:\\d{{1,3}}|{compound}|{alternation(list(numbers))})"


def plural(word: str, irregular: dict[str, str]) -> str:
    """The plural of a noun of one or more words ("team lead" -> "team leads")."""
    if word in irregular:
        return irregular[word]
    head, _, last = word.rpartition(" ")
    if last in irregular:
        form = irregular[last]
    elif re.search(r"[^aeiou]y$", last):
        form = last[:-1] + "ies"
    elif re.search(r"(?:s|sh|ch|x|z)$", last):
        form = last + "es"
    else:
        form = last + "s"
    return f"{head} {form}" if head else form


class VerbForms:
    """Every form of a verb: the regular ones by rule, plus the irregular of ``words.yaml``."""

    def __init__(self, irregular: dict[str, list[str]]) -> None:
        self.irregular = irregular
        self._past = {
            f
            for forms in irregular.values()
            for f in forms
            if not f.endswith(("s", "ing")) and f not in ("am", "are")
        }

    def forms(self, verb: str) -> list[str]:
        """``verb`` ("talk", "sit down") in every form ("talked", "sat down"), longest first."""
        first, space, rest = verb.partition(" ")
        if first.endswith("e") and not first.endswith("ee"):
            made, past = [first, first + "s", first[:-1] + "ing"], [first + "d"]
        elif re.search(r"[^aeiou]y$", first):
            made, past = [first, first[:-1] + "ies", first + "ing"], [first[:-1] + "ied"]
        elif re.search(r"(?:s|sh|ch|x|z)$", first):
            made, past = [first, first + "es", first + "ing"], [first + "ed"]
        else:
            made, past = [first, first + "s", first + "ing"], [first + "ed"]
            if re.search(r"(?:^|[^aeiou])[aeiou][^aeiouwxy]$", first):  # plan -> planned
                made.append(first + first[-1] + "ing")
                past.append(first + first[-1] + "ed")
        self._past.update(past)
        unique = sorted(set(made + past + self.irregular.get(first, [])), key=lambda f: -len(f))
        return [f + space + rest for f in unique]

    def past_forms(self) -> frozenset[str]:
        """Every past form made so far, and the irregular ones."""
        return frozenset(self._past)

    def expand(self, pattern: str) -> str:
        """``pattern`` with each ``{talk|speak}`` replaced by every form of those verbs."""

        def forms(match: re.Match) -> str:
            options = [f for verb in match.group(1).split("|") for f in self.forms(verb.strip())]
            return "(?:" + "|".join(options) + ")"

        return VERB.sub(forms, pattern)


class PatternCompiler:
    """Fills in fragments and verbs, and compiles, naming the file and entry on errors."""

    def __init__(self, fragments: dict[str, str], verbs: VerbForms) -> None:
        self.fragments = fragments
        self.verbs = verbs

    def compile(
        self, pattern: str, local: dict[str, str], where: str, *, whole: bool = False
    ) -> re.Pattern:
        """``pattern`` with fragments and verbs filled in; ``whole`` matches whole words."""
        if any(c.isupper() for c in _UPPER_OUTSIDE_ESCAPES.sub("", pattern)):
            raise ConfigError(
                f"{where}: write the pattern in lower case; the reader matches it against "
                "lower-cased text."
            )
        fragments = {**self.fragments, **local}
        for _ in range(6):  # fragments may name fragments; six levels is more than any needs
            if "{{" not in pattern:
                break
            try:
                pattern = _FRAGMENT.sub(lambda m: fragments[m.group(1)], pattern)
            except KeyError as exc:
                raise ConfigError(
                    f"{where} names the fragment {{{{{exc.args[0]}}}}}, which is not defined: "
                    f"define it under `fragments` or use one of {', '.join(sorted(fragments))}."
                ) from None
        pattern = self.verbs.expand(pattern)
        try:
            return re.compile(rf"\b(?:{pattern})\b" if whole else pattern)
        except re.error as exc:
            raise ConfigError(f"{where} is not a valid pattern: {exc}. Fix the pattern.") from None
