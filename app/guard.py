"""The safety guard that runs before and after every engine.

Before: it masks personal data, strips instructions injected into the
situation, spots the language, and recognises requests the coach must not
coach normally (a crisis, an unethical request, a prompt-extraction attempt,
an off-topic request, text too short to judge). After: it makes sure the
system prompt's canary never reaches the user. Patterns and replies live in
``prompts/safety.yaml``; this module only applies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from app.answer import CoachingAnswer

MIN_WORDS = 5
SAFETY_FILE = "safety.yaml"


@dataclass(frozen=True)
class GuardRules:
    patterns: dict[str, list[re.Pattern]]
    personal_data: dict[str, re.Pattern]
    replies: dict[str, dict]
    notices: dict[str, str]
    languages: dict[str, frozenset[str]]


@lru_cache(maxsize=4)
def load_rules(prompts_dir: Path) -> GuardRules:
    data = yaml.safe_load((prompts_dir / SAFETY_FILE).read_text(encoding="utf-8"))
    flags = re.IGNORECASE
    return GuardRules(
        patterns={k: [re.compile(p, flags) for p in v] for k, v in data["patterns"].items()},
        personal_data={k: re.compile(p) for k, p in data["personal_data"].items()},
        replies=data["replies"],
        notices=data["notices"],
        languages={k: frozenset(v) for k, v in data["languages"].items()},
    )


@dataclass
class Screening:
    """What the guard found in a situation before any engine sees it."""

    text: str  # the text the engine should coach: injections removed, personal data masked
    stop: str | None = None  # crisis, unethical, prompt_leak, off_topic or clarify
    injection: bool = False
    prompt_leak: bool = False
    masked: list[str] = field(default_factory=list)
    language: str = "English"
    notices: list[str] = field(default_factory=list)


def _any(patterns: list[re.Pattern], text: str) -> bool:
    return any(p.search(text) for p in patterns)


def detect_language(text: str, rules: GuardRules) -> str:
    """The language whose common words appear most; English when unsure."""
    if re.search(r"[\u0400-\u04ff]", text):
        return "Russian"
    if re.search(r"[\u4e00-\u9fff]", text):
        return "Chinese"
    if re.search(r"[\u3040-\u30ff]", text):
        return "Japanese"
    if re.search(r"[\u0600-\u06ff]", text):
        return "Arabic"
    words = re.findall(r"[^\W\d_]+", text.lower())
    if len(words) < 4:
        return "English"
    hits = {lang: sum(w in vocab for w in words) for lang, vocab in rules.languages.items()}
    best = max(hits, key=hits.get)
    if best != "English" and hits[best] > hits["English"] * 1.5 and hits[best] >= 3:
        return best
    return "English"


def mask_personal_data(text: str, rules: GuardRules) -> tuple[str, list[str]]:
    """Replace emails, phone and ID numbers with placeholders; return the kinds masked."""
    kinds = []
    for kind, pattern in rules.personal_data.items():
        text, count = pattern.subn(f"[{kind}]", text)
        if count:
            kinds.append(kind)
    return text, kinds


def screen(text: str, rules: GuardRules, *, remote: bool) -> Screening:
    """Inspect a situation; ``remote`` says whether it will be sent to a remote LLM."""
    masked_text, masked = mask_personal_data(text, rules)
    result = Screening(text=masked_text, masked=masked)
    if masked:
        key = "masked" if remote else "masked_offline"
        result.notices.append(rules.notices[key].format(kinds=", ".join(masked)))
    result.language = detect_language(text, rules)

    cleaned = masked_text
    for pattern in rules.patterns["injection"]:
        cleaned, count = pattern.subn(" ", cleaned)
        result.injection |= bool(count)
    result.prompt_leak = _any(rules.patterns["prompt_leak"], cleaned)
    if result.prompt_leak:
        for pattern in rules.patterns["prompt_leak"]:
            cleaned = _drop_sentences(cleaned, pattern)
    cleaned = re.sub(r"[ \t]+", " ", cleaned).strip()
    result.text = cleaned
    words = re.findall(r"\w+", cleaned)

    if _any(rules.patterns["crisis"], text):
        result.stop = "crisis"
    elif _any(rules.patterns["unethical"], text):
        result.stop = "unethical"
    elif result.prompt_leak and not _any(rules.patterns["workplace"], cleaned):
        result.stop = "prompt_leak"
    elif _any(rules.patterns["off_topic"], cleaned) and not _any(
        rules.patterns["workplace"], cleaned
    ):
        result.stop = "off_topic"
    elif len(words) < MIN_WORDS:
        result.stop = "clarify"
    else:
        if result.injection:
            result.notices.append(rules.notices["injection"])
        if result.prompt_leak:
            result.notices.append(rules.notices["prompt_leak"])
    return result


def _drop_sentences(text: str, pattern: re.Pattern) -> str:
    parts = re.split(r"(?<=[.!?])\s+|\n+", text)
    return " ".join(p for p in parts if not pattern.search(p))


def stop_answer(kind: str, rules: GuardRules) -> CoachingAnswer:
    """The fixed reply for a situation the coach must not coach normally."""
    reply = rules.replies[kind]
    return CoachingAnswer(
        verdict=None,
        summary=reply["summary"].strip(),
        coaching=reply["coaching"].strip(),
        follow_up_questions=list(reply.get("follow_up_questions") or [])[:3],
    )


def enforce_canary(answer: CoachingAnswer, canary: str | None, rules: GuardRules) -> bool:
    """Remove the canary (and the text around it) from every field; True if it was there."""
    if not canary:
        return False
    found = False
    for name in ("summary", "coaching"):
        value = getattr(answer, name)
        if canary in value:
            found = True
            kept = [p for p in value.split("\n") if canary not in p]
            setattr(answer, name, "\n".join(kept))
    questions = [q for q in answer.follow_up_questions if canary not in q]
    if len(questions) != len(answer.follow_up_questions):
        found = True
        answer.follow_up_questions = questions
    if found:
        answer.notices.append(rules.notices["canary"])
    return found
