"""The safety guard that runs before and after every engine.

Before: it masks personal data, strips instructions injected into the
situation, spots the language, and asks the trained safety detector
(``app.safety_model``) whether the message is one the coach must not coach
normally (a crisis, an unethical request, a prompt-extraction attempt, an
off-topic request); text too short to judge gets questions. After: it makes sure
the system prompt's canary never reaches the user. Patterns and replies live in
``prompts/safety.yaml``; this module only applies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from app.answer import CoachingAnswer
from app.canary import has_canary, without_canary
from app.safety_model import without
from app.safety_rules import GuardRules, load_rules
from app.stop_replies import stop_answer

MIN_WORDS = 5
MIN_SITUATION_WORDS = 15  # what must remain of a message to coach it once a part is declined
ENGLISH_ONLY = ("prompt_leak", "off_topic")

__all__ = ["GuardRules", "Screening", "enforce_canary", "load_rules", "screen", "stop_answer"]


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
    reading: object = None  # the detector's SafetyReading, when it ran
    caught: str | None = None  # a kind declined in part while the rest is coached


def detect_language(text: str, rules: GuardRules) -> str:
    """The language ``text`` is written in; English when short or unsure (``app.language``)."""
    from app.language import detect_language as detect

    return detect(text)


def mask_personal_data(text: str, rules: GuardRules) -> tuple[str, list[str]]:
    """Replace personal data with placeholders; return the kinds masked (``app.personal_data``,
    rules in ``prompts/personal_data.yaml``)."""
    from app.personal_data import mask

    masked = mask(text)
    return masked.text, masked.kinds


def strip_injections(text: str, rules: GuardRules) -> tuple[str, bool]:
    """Remove instructions addressed to the coach; True when there were any."""
    found = False
    for pattern in rules.injection:
        text, count = pattern.subn(" ", text)
        found |= bool(count)
    return re.sub(r"[ \t]+", " ", text).strip(), found


def screen(text: str, rules: GuardRules, *, remote: bool, detector=None) -> Screening:
    """Inspect a situation; ``remote`` says whether it will be sent to a remote LLM.

    ``detector`` is the trained ``SafetyDetector``; it decides the stop kind. Without
    one (unit tests of masking alone) no stop kind is read.
    """
    masked_text, masked = mask_personal_data(text, rules)
    result = Screening(text=masked_text, masked=masked)
    if masked:
        key = "masked" if remote else "masked_offline"
        result.notices.append(rules.notices[key].format(kinds=", ".join(masked)))
    result.language = detect_language(text, rules)

    cleaned, result.injection = strip_injections(masked_text, rules)
    result.text = cleaned
    words = re.findall(r"\w+", cleaned)
    reading = detector.read(cleaned or masked_text) if detector is not None else None
    if reading is not None and reading.kind in ENGLISH_ONLY and result.language != "English":
        reading = None  # the detector learnt these two kinds from English text only
    result.reading = reading
    if reading is not None and reading.kind == "prompt_leak":
        # A real situation with a request for the instructions in it: coach the situation,
        # decline the request. A request with nothing else is declined as a whole.
        rest = without(detector, cleaned, "prompt_leak")
        result.caught = "prompt_leak"
        result.prompt_leak = True
        if len(rest.split()) >= MIN_SITUATION_WORDS and detector.read(rest).kind is None:
            result.text = rest
            result.notices.append(rules.notices["prompt_leak"])
        else:
            result.stop = "prompt_leak"
    elif reading is not None and reading.kind:
        result.stop = reading.kind
    elif any(p.search(text) for p in (*rules.crisis_explicit, *rules.crisis_other_languages)):
        result.stop = "crisis"
    elif len(words) < MIN_WORDS:
        result.stop = "clarify"
    elif result.injection:
        result.notices.append(rules.notices["injection"])
    return result


def enforce_canary(answer: CoachingAnswer, canary: str | None, rules: GuardRules) -> bool:
    """Remove the canary, in any spelling or encoding (``app.canary``), and the lines holding
    it from every field; True if it was there."""
    if not canary:
        return False
    found = False
    for name in ("summary", "coaching"):
        value, leaked = without_canary(getattr(answer, name), canary)
        if leaked:
            found = True
            setattr(answer, name, value)
    questions = [q for q in answer.follow_up_questions if not has_canary(q, canary)]
    if len(questions) != len(answer.follow_up_questions):
        found = True
        answer.follow_up_questions = questions
    if found:
        answer.notices.append(rules.notices["canary"])
    return found
