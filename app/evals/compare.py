"""Run-against-baseline comparison: metric deltas, verdict flips and red-team changes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import CoachError

# Metrics where a lower number is the better one.
LOWER_IS_BETTER = {
    "errors",
    "latency_p50_ms",
    "latency_p95_ms",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "false_stop_rate",
    "verdict_ece",
    "step_diversity_max_share",
}
# Counts that describe the run rather than grade it.
NEUTRAL = {
    "cases",
    "cached",
    "redteam_cases",
    "safety_cases",
    "quote_support_cases",
    "step_diversity_answers",
}
# Tables and case lists in a run's metrics, not metrics to compare one by one.
DETAIL = {"per_class", "confusion", "reliability", "safety"}
CONFIG_KEYS = ("engine", "model", "prompt", "prompt_sha256", "k", "code_version", "judge")


def load_run(path: Path | str) -> dict[str, Any]:
    """A run record written by ``coach eval run``; a plain error for anything else."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CoachError(f"The run file {path} does not exist.") from None
    except (OSError, ValueError) as exc:
        raise CoachError(f"The run file {path} is not readable JSON ({exc}).") from None
    if not isinstance(record, dict) or not {"config", "metrics", "cases"} <= record.keys():
        raise CoachError(
            f"{path} is not an eval run record (it needs config, metrics and cases); "
            "pass files written by `coach eval run`."
        )
    record.setdefault("path", str(path))
    return record


@dataclass(frozen=True)
class MetricRow:
    """One metric in both runs; ``better`` is True, False, or None when neutral or unchanged."""

    name: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        if self.a is None or self.b is None:
            return None
        if isinstance(self.a, int) and isinstance(self.b, int):
            return self.b - self.a
        return round(self.b - self.a, 6)

    @property
    def better(self) -> bool | None:
        leaf = self.name.rsplit(".", 1)[-1]
        if not self.delta or leaf in NEUTRAL:
            return None
        return (self.delta < 0) if leaf in LOWER_IS_BETTER else (self.delta > 0)


@dataclass(frozen=True)
class Flip:
    """A case whose outcome changed between the runs, with both answers."""

    id: str
    suite: str
    expected: str | None
    a_verdict: str | None
    b_verdict: str | None
    a_summary: str
    b_summary: str
    detail: str = ""


@dataclass
class Comparison:
    """Everything ``coach eval compare`` reports."""

    a_name: str
    b_name: str
    a_config: dict[str, Any]
    b_config: dict[str, Any]
    metrics: list[MetricRow] = field(default_factory=list)
    config_changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    right_to_wrong: list[Flip] = field(default_factory=list)
    wrong_to_right: list[Flip] = field(default_factory=list)
    redteam_regressions: list[Flip] = field(default_factory=list)
    redteam_fixes: list[Flip] = field(default_factory=list)
    new_errors: list[Flip] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    common_ids: list[str] = field(default_factory=list)

    @property
    def common(self) -> int:
        return len(self.common_ids)

    @property
    def regressions(self) -> list[Flip]:
        return self.right_to_wrong + self.redteam_regressions + self.new_errors


def _flat(metrics: dict[str, Any], prefix: str = "") -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, value in metrics.items():
        if name in DETAIL:
            continue
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            out.update(_flat(value, key + "."))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float) or value is None:
            out[key] = value
    return out


def _verdict(case: dict[str, Any]) -> str | None:
    return (case.get("answer") or {}).get("verdict")


def _summary(case: dict[str, Any]) -> str:
    if case.get("error") and not case.get("answer"):
        return f"(error: {case['error']})"
    return (case.get("answer") or {}).get("summary", "")


def _graded(case: dict[str, Any]) -> bool:
    return "verdict" in case["expected"]


def _right(case: dict[str, Any]) -> bool:
    return bool(case.get("answer")) and _verdict(case) == case["expected"]["verdict"]


def _checks(case: dict[str, Any]) -> list[str]:
    """The red-team behaviours a case expects, and ``safety_kind`` when it expects one."""
    expected = case["expected"]
    return list(expected.get("expect") or []) + (["safety_kind"] if expected.get("safety") else [])


def _redteam_ok(case: dict[str, Any]) -> bool:
    scores = case.get("scores") or {}
    return not case.get("error") and all(
        ((scores.get(b) or {}).get("value") or 0) >= 1 for b in _checks(case)
    )


def _expected(case: dict[str, Any]) -> str | None:
    expected = case["expected"]
    return expected["verdict"] if _graded(case) else f"safety {expected.get('safety')}"


def _flip(a: dict[str, Any], b: dict[str, Any], detail: str = "") -> Flip:
    return Flip(
        id=b["id"],
        suite=b.get("suite", ""),
        expected=_expected(b),
        a_verdict=_verdict(a),
        b_verdict=_verdict(b),
        a_summary=_summary(a),
        b_summary=_summary(b),
        detail=detail,
    )


def _failed_behaviours(case: dict[str, Any]) -> str:
    scores = case.get("scores") or {}
    failed = [
        f"{b}: {(scores.get(b) or {}).get('reason', 'not scored')}"
        for b in _checks(case)
        if ((scores.get(b) or {}).get("value") or 0) < 1
    ]
    return "; ".join(failed) or (case.get("error") or "")


def compare_runs(a: dict[str, Any], b: dict[str, Any]) -> Comparison:
    """Compare run ``b`` against the baseline run ``a``."""
    comparison = Comparison(
        a_name=_name(a), b_name=_name(b), a_config=a["config"], b_config=b["config"]
    )
    fa, fb = _flat(a["metrics"]), _flat(b["metrics"])
    names = list(dict.fromkeys([*fa, *fb]))
    names.sort(key=lambda n: n.count("."))  # overall metrics first, then per suite and behaviour
    comparison.metrics = [MetricRow(n, fa.get(n), fb.get(n)) for n in names]
    for key in CONFIG_KEYS:
        va, vb = a["config"].get(key), b["config"].get(key)
        if va != vb:
            comparison.config_changes.append((key, va, vb))
    suites_a = {s["name"]: s.get("sha256") for s in a["config"].get("suites", [])}
    suites_b = {s["name"]: s.get("sha256") for s in b["config"].get("suites", [])}
    if suites_a != suites_b:
        comparison.config_changes.append(("suites", suites_a, suites_b))

    cases_a = {c["id"]: c for c in a["cases"]}
    cases_b = {c["id"]: c for c in b["cases"]}
    comparison.only_a = [i for i in cases_a if i not in cases_b]
    comparison.only_b = [i for i in cases_b if i not in cases_a]
    for case_id, cb in cases_b.items():
        ca = cases_a.get(case_id)
        if ca is None:
            continue
        comparison.common_ids.append(case_id)
        if cb.get("error") and not ca.get("error"):
            comparison.new_errors.append(_flip(ca, cb, cb["error"]))
        if _graded(cb) and _graded(ca):
            right_a, right_b = _right(ca), _right(cb)
            if right_a and not right_b:
                comparison.right_to_wrong.append(_flip(ca, cb))
            elif right_b and not right_a:
                comparison.wrong_to_right.append(_flip(ca, cb))
        if _checks(cb):
            ok_a, ok_b = _redteam_ok(ca), _redteam_ok(cb)
            if ok_a and not ok_b:
                comparison.redteam_regressions.append(_flip(ca, cb, _failed_behaviours(cb)))
            elif ok_b and not ok_a:
                comparison.redteam_fixes.append(_flip(ca, cb, _failed_behaviours(ca)))
    return comparison


def _name(record: dict[str, Any]) -> str:
    path = record.get("path")
    if path:
        return Path(path).name
    config = record["config"]
    return f"{config.get('engine')} {config.get('prompt')}"
