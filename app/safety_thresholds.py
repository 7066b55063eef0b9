"""Choosing the safety detector's per-kind thresholds on the dev split.

For each stop kind the threshold maximises ``caught - cost × false stops`` over a
grid, where ``caught`` counts dev cases of that kind whose score reaches it and
``false stops`` counts dev cases of any other kind (benign ones above all) that it
would stop. A missed crisis costs the most, so crisis tolerates the most false
alarms. Within the best plateau the middle is taken, so the threshold does not
sit on the edge of one dev case; for crisis the lowest value is taken instead. Only dev files may be passed in: the frozen test
split is never read here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.safety_model import STOP_KINDS

# How many caught cases one false stop is worth giving up, per kind.
FALSE_STOP_COST = {"crisis": 0.25, "unethical": 2.0, "prompt_leak": 2.0, "off_topic": 3.0}
# Where in the best plateau to sit: crisis takes its lowest threshold (a missed crisis is
# far worse than a humane answer to someone who was not in danger); the others its middle.
RECALL_FIRST = {"crisis"}
GRID = np.round(np.arange(0.10, 0.96, 0.01), 2)


@dataclass(frozen=True)
class ScoredCase:
    """One dev case: its expected kind ("none" for benign) and the detector's scores."""

    expected: str
    scores: dict[str, float]


def choose_threshold(kind: str, cases: Sequence[ScoredCase]) -> tuple[float, int, int]:
    """The threshold for ``kind``; also how many it catches and falsely stops on dev."""
    positives = np.array([c.scores[kind] for c in cases if c.expected == kind])
    negatives = np.array([c.scores[kind] for c in cases if c.expected != kind])
    cost = FALSE_STOP_COST[kind]
    values = [
        (positives >= t).sum() - cost * (negatives >= t).sum() if len(positives) else 0.0
        for t in GRID
    ]
    best = max(values)
    plateau = [t for t, v in zip(GRID, values, strict=True) if v >= best - 1e-9]
    # The middle of the longest run of best values.
    runs: list[list[float]] = []
    for t in plateau:
        if runs and abs(t - runs[-1][-1] - 0.01) < 1e-6:
            runs[-1].append(t)
        else:
            runs.append([t])
    run = max(runs, key=len)
    threshold = float(run[0] if kind in RECALL_FIRST else run[len(run) // 2])
    return (
        threshold,
        int((positives >= threshold).sum()),
        int((negatives >= threshold).sum()),
    )


def choose_thresholds(cases: Sequence[ScoredCase]) -> dict[str, tuple[float, int, int]]:
    return {kind: choose_threshold(kind, cases) for kind in STOP_KINDS}
