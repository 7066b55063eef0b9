"""Deterministic synthetic workplace text: passages for the 100,000 index, queries and situations.

Everything is built from the word lists below with a seeded ``random.Random``, so
the same seed gives the same text on every machine. Nothing here is stored in git.
"""

from __future__ import annotations

import random

ROLES = (
    "the night-shift supervisor",
    "our new team lead",
    "the head chef",
    "a senior engineer",
    "the store manager",
    "the project sponsor",
    "the ward sister",
    "our finance director",
    "the warehouse foreman",
    "a junior analyst",
    "the school principal",
    "the product owner",
    "the call-centre manager",
    "a site engineer",
    "the marketing lead",
    "the clinic coordinator",
    "the founder",
    "a shift planner",
    "the regional director",
    "the support lead",
)
ACTIONS = (
    "keeps rewriting",
    "quietly ignores",
    "asks nobody about",
    "argues every week over",
    "never finishes",
    "takes credit for",
    "double-books",
    "postpones",
    "micromanages",
    "publishes without review",
    "loses track of",
    "refuses to delegate",
    "over-promises on",
    "cuts corners on",
    "reopens",
    "hoards",
    "second-guesses",
    "rushes through",
)
OBJECTS = (
    "the holiday rota",
    "the quarterly budget",
    "the hiring plan",
    "the release checklist",
    "the weekly stock order",
    "the customer complaints log",
    "the training schedule",
    "the safety audit",
    "the product roadmap",
    "the delivery slots",
    "the overtime sheet",
    "the onboarding guide",
    "the sales targets",
    "the incident reviews",
    "the supplier contracts",
    "the team's priorities",
    "the shift handover notes",
    "the strategy document",
)
CAUSES = (
    "because nobody owns the decision",
    "since the targets changed twice this quarter",
    "while morale keeps dropping",
    "after two people resigned",
    "because trust has broken down",
    "even though the vision is unclear",
    "while the deadline moves closer",
    "because the numbers are never checked",
    "after the merger of two departments",
    "since the team stopped speaking up",
    "because resources are spread too thin",
    "while customers wait for answers",
    "because nobody knows what good looks like",
    "although the budget was approved",
    "since the last reorganisation",
)
FEELINGS = (
    "People feel left out of the big decisions.",
    "The team no longer believes the plan.",
    "Work slips and nobody notices until too late.",
    "Two colleagues have stopped cooperating.",
    "Nobody feels proud of the work any more.",
    "The same mistakes come back every month.",
    "Costs creep up without anyone seeing why.",
    "Good ideas die in meetings.",
    "New starters do not know who to ask.",
    "Everyone waits for permission.",
    "The best people are thinking of leaving.",
    "Meetings end without owners or dates.",
)
ASKS = (
    "How do I fix this?",
    "What should I change first?",
    "Is this a management problem?",
    "How do I get the team behind a direction?",
    "Who should own this?",
    "How can I rebuild trust here?",
    "What would a good leader do?",
    "How do I track this week by week?",
    "How do I hand this over without losing control?",
)
TOPICS = (
    "setting clear objectives",
    "organising people and budget",
    "monitoring performance",
    "a compelling vision",
    "empowering the team",
    "building trust",
    "delegation",
    "accountability",
    "motivation",
    "planning shifts",
    "handling conflict",
    "change",
)


def sentence(rng: random.Random) -> str:
    """One varied sentence about a workplace problem."""
    text = f"{rng.choice(ROLES)} {rng.choice(ACTIONS)} {rng.choice(OBJECTS)} {rng.choice(CAUSES)}."
    text = text[0].upper() + text[1:]
    if rng.random() < 0.5:
        text += " " + rng.choice(FEELINGS)
    return text


def sentences(count: int, seed: int = 7) -> list[str]:
    """``count`` distinct sentences (distinct while the word lists allow)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    attempts = 0
    while len(out) < count:
        text = sentence(rng)
        attempts += 1
        if text in seen and attempts < count * 20:
            continue
        seen.add(text)
        out.append(text)
    return out


def queries(count: int, seed: int = 11) -> list[str]:
    """``count`` varied questions a person might ask the coach."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        shape = i % 4
        if shape == 0:
            out.append(f"{sentence(rng)} {rng.choice(ASKS)}")
        elif shape == 1:
            out.append(
                f"Advice on {rng.choice(TOPICS)} when {rng.choice(ROLES)} "
                f"{rng.choice(ACTIONS)} {rng.choice(OBJECTS)}"
            )
        elif shape == 2:
            role = rng.choice(ROLES).removeprefix("the ")
            out.append(f"How do I get better at {rng.choice(TOPICS)} as {role}?")
        else:
            out.append(f"{rng.choice(FEELINGS)} {rng.choice(FEELINGS)} {rng.choice(ASKS)}")
    return out


def situations(count: int, seed: int = 13) -> list[str]:
    """``count`` multi-sentence situations, like a message typed into the coach."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        parts = [sentence(rng) for _ in range(rng.randint(2, 4))]
        out.append(" ".join(parts) + " " + rng.choice(ASKS))
    return out
