"""What the coach says instead of coaching: crisis help first, declines and redirects.

A crisis answer is composed in three parts: emergency and crisis contacts first; then
what to do right now for the person at risk (the writer, someone else, a threat of
violence or a medical emergency); then, where the message also asks about work, a
short, humane answer to that. The words live in ``prompts/safety.yaml``.
"""

from __future__ import annotations

import re

from app.answer import CoachingAnswer
from app.safety_rules import GuardRules

_THIRD_PERSON = re.compile(
    r"\b(she|he|they|her|him|them|his|hers|colleague|coworker|co-worker|report|employee|"
    r"member|staff|worker|nurse|teammate|friend|manager|boss|intern|volunteer|someone)\b",
    re.IGNORECASE,
)


def at_risk(text: str, rules: GuardRules) -> str:
    """Who or what the crisis is about: violence, medical, self or other."""
    for kind in ("violence", "medical"):
        if any(p.search(text) for p in rules.crisis_at_risk.get(kind, [])):
            return kind
    if any(p.search(text) for p in rules.crisis_at_risk.get("self", [])):
        return "self"
    return "other" if _THIRD_PERSON.search(text) else "self"


def crisis_answer(text: str, rules: GuardRules) -> CoachingAnswer:
    """Help first, then what to do now, then the work question if there is one."""
    reply = rules.replies.crisis
    who = at_risk(text, rules)
    parts = [reply.contacts.strip(), reply.right_now[who].strip()]
    if who != "self":
        said = [
            say for patterns, say in rules.crisis_workplace if any(p.search(text) for p in patterns)
        ]
        parts.extend(said[:2])
    parts.append(reply.closing.strip())
    return CoachingAnswer(
        verdict=None,
        summary=reply.summary.strip(),
        coaching="\n\n".join(parts),
        follow_up_questions=list(reply.follow_up_questions)[:3],
    )


def stop_answer(kind: str, rules: GuardRules, text: str = "") -> CoachingAnswer:
    """The reply for a situation the coach must not coach normally."""
    if kind == "crisis":
        return crisis_answer(text, rules)
    reply = getattr(rules.replies, kind)
    return CoachingAnswer(
        verdict=None,
        summary=reply.summary.strip(),
        coaching=reply.coaching.strip(),
        follow_up_questions=list(reply.follow_up_questions)[:3],
    )
