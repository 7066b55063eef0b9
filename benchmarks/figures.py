"""Measured figures: samples summarised as median, p95, min and max, plus the targets they meet."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Figure:
    """One measure: its samples (one per repeat, query or question) in ``unit``."""

    key: str
    label: str
    unit: str
    samples: list[float]
    note: str = ""

    def summary(self) -> dict[str, Any]:
        values = np.asarray(self.samples, dtype=float)
        if values.size == 0:
            stats: dict[str, float | None] = dict.fromkeys(("median", "p95", "min", "max"))
        else:
            stats = {
                "median": _round(float(np.median(values))),
                "p95": _round(float(np.percentile(values, 95))),
                "min": _round(float(values.min())),
                "max": _round(float(values.max())),
            }
        out: dict[str, Any] = {"label": self.label, "unit": self.unit, "n": int(values.size)}
        out.update(stats)
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Section:
    """What one benchmark module measured: its figures and any facts worth keeping."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, label: str, unit: str, samples: list[float], note: str = "") -> Figure:
        figure = Figure(f"{self.name}.{key}", label, unit, list(samples), note)
        self.figures.append(figure)
        return figure


@dataclass(frozen=True)
class Target:
    """A limit one statistic of one figure must not exceed."""

    measure: str
    figure: str
    stat: str
    limit: float
    unit: str

    def check(self, figures: dict[str, dict[str, Any]]) -> dict[str, Any]:
        value = (figures.get(self.figure) or {}).get(self.stat)
        verdict = "not measured" if value is None else "pass" if value <= self.limit else "miss"
        return {
            "measure": self.measure,
            "figure": self.figure,
            "stat": self.stat,
            "limit": self.limit,
            "unit": self.unit,
            "value": value,
            "result": verdict,
        }


# The targets. A missing figure is reported as "not measured", never as a pass.
TARGETS: tuple[Target, ...] = (
    Target("Retrieval p95, article index", "retrieval.query_ms", "p95", 15.0, "ms"),
    Target("Retrieval p95, 100,000 passages", "scale.query_ms", "p95", 50.0, "ms"),
    Target("Offline answer p95", "answer.offline_ms", "p95", 100.0, "ms"),
    Target(
        "Pipeline overhead before the first LLM token",
        "llm.ours_overhead_first_token_ms",
        "p95",
        50.0,
        "ms",
    ),
    Target(
        "Overhead before first token vs reference (ours/ref)",
        "llm.ratio_overhead_first_token",
        "median",
        1.0,
        "x",
    ),
    Target("Page's first answer after start", "app.first_answer_s", "p95", 5.0, "s"),
    Target("App server peak RSS", "app.peak_rss_mb", "max", 600.0, "MB"),
    Target("Cached eval re-run", "eval.cached_s", "p95", 2.0, "s"),
)


def _round(value: float) -> float:
    return float(f"{value:.4g}") if abs(value) < 1000 else round(value, 1)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``fn`` took, and what it returned."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """``with stopwatch() as elapsed:`` then ``elapsed()`` is the seconds since entering."""
    started = time.perf_counter()
    yield lambda: time.perf_counter() - started
