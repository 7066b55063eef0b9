"""The core eval suite with the offline engine: a cold run (``--no-cache``), then cached re-runs."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from benchmarks.coach_data import copy_data
from benchmarks.figures import Section
from benchmarks.processes import PROJECT_ROOT, child_env, coach_command, timed_run

CORE_SUITE = PROJECT_ROOT / "evals" / "suites" / "core.yaml"


def eval_command(suite: Path, out: Path, cold: bool) -> list[str]:
    command = [*coach_command(), "eval", "run", str(suite), "--engine", "offline"]
    command += ["--out", str(out), "--quiet"]
    return command + (["--no-cache"] if cold else [])


def _cached_cases(out: Path) -> tuple[int, int]:
    record = json.loads(out.read_text())
    cases = record.get("cases") or []
    return sum(1 for c in cases if c.get("cached")), len(cases)


def run(base_data: Path, suite: Path, cached_runs: int, cold_runs: int = 1) -> Section:
    """Time ``coach eval run`` on ``suite``: ``cold_runs`` cold, then ``cached_runs`` cached."""
    section = Section("eval")
    folder = copy_data(base_data)  # its own eval cache, empty at the start
    work = Path(tempfile.mkdtemp(prefix="coach-bench-eval-"))
    env = child_env(folder)
    cold, cached = [], []
    hits: list[str] = []
    try:
        for i in range(cold_runs):
            out = work / f"cold-{i}.json"
            seconds, _ = timed_run(eval_command(suite, out, cold=True), env, timeout=600)
            cold.append(seconds)
        for i in range(cached_runs):
            out = work / f"cached-{i}.json"
            seconds, _ = timed_run(eval_command(suite, out, cold=False), env, timeout=600)
            cached.append(seconds)
            found, total = _cached_cases(out)
            hits.append(f"{found}/{total}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
    section.add("cold_s", f"Eval run, {suite.stem} suite, cold (--no-cache)", "s", cold)
    section.add("cached_s", f"Eval re-run, {suite.stem} suite, cached", "s", cached)
    shown = suite.relative_to(PROJECT_ROOT) if suite.is_relative_to(PROJECT_ROOT) else suite
    section.details.update(
        {
            "suite": str(shown),
            "cached_hits": hits,
            "command": f"coach eval run {shown} --engine offline --out OUT --quiet [--no-cache]",
        }
    )
    if any(h.split("/")[0] != h.split("/")[1] for h in hits):
        section.details["warning"] = (
            "some cached re-runs missed the cache (the app/ source changed during the run?)"
        )
    return section
