"""Run the benchmarks, print a table and write the JSON results: ``python -m benchmarks.run``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.coach_data import DATA_ROOT, CoachData, default_base
from benchmarks.figures import TARGETS, Section, Target
from benchmarks.machine import load_average, machine_info
from benchmarks.processes import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "latest.json"
NAMES = ("index", "retrieval", "answer", "llm", "scale", "eval", "app", "concurrency")


@dataclass(frozen=True)
class Sizes:
    """How much each benchmark does; ``full`` is what ``make bench`` runs."""

    index_cold_builds: int
    index_warm_builds: int
    article_queries: int
    scale_passages: int
    scale_sentences: int
    scale_queries: int
    answers: int
    cold_asks: int
    llm_rounds: int
    app_starts: int
    app_questions: int
    eval_cold_runs: int
    eval_cached_runs: int
    concurrent_users: int = 20
    concurrent_messages: int = 5

    @classmethod
    def full(cls) -> Sizes:
        return cls(3, 20, 200, 100_000, 2000, 200, 100, 3, 40, 3, 20, 1, 3, 20, 5)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(1, 5, 50, 10_000, 500, 50, 20, 1, 10, 1, 5, 1, 1, 5, 2)


def run_section(
    name: str, sizes: Sizes, base: Callable[[], CoachData], suite: Path, data_root: Path
) -> Section:
    """One benchmark by name; imports are local so ``--only`` loads only what it needs."""
    if name == "index":
        from benchmarks import bench_index

        return bench_index.run(sizes.index_cold_builds, sizes.index_warm_builds)
    if name == "retrieval":
        from benchmarks import bench_retrieval

        return bench_retrieval.run(base().index, sizes.article_queries)
    if name == "answer":
        from benchmarks import bench_answer

        return bench_answer.run(base(), sizes.answers, sizes.cold_asks)
    if name == "llm":
        from benchmarks import bench_llm

        return bench_llm.run(base(), sizes.llm_rounds)
    if name == "scale":
        from benchmarks import bench_scale

        folder = data_root / f"scale-{sizes.scale_passages}"
        return bench_scale.run(
            folder,
            base().index.embedder,
            sizes.scale_passages,
            sizes.scale_sentences,
            sizes.scale_queries,
        )
    if name == "eval":
        from benchmarks import bench_eval

        return bench_eval.run(
            base().data_dir, suite, sizes.eval_cached_runs, cold_runs=sizes.eval_cold_runs
        )
    if name == "app":
        from benchmarks import bench_app

        return bench_app.run(base().data_dir, sizes.app_starts, sizes.app_questions)
    if name == "concurrency":
        from benchmarks import concurrency

        return concurrency.run(base(), sizes.concurrent_users, sizes.concurrent_messages)
    raise ValueError(f"unknown benchmark {name!r}")


def run_all(
    names: list[str],
    sizes: Sizes,
    base: Callable[[], CoachData],
    suite: Path,
    data_root: Path = DATA_ROOT,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[list[Section], dict[str, str], dict[str, float]]:
    """Each named benchmark in turn; one that crashes is recorded and the others still run."""
    sections, errors, seconds = [], {}, {}
    for name in names:
        log(f"- {name} …")
        started = time.perf_counter()
        try:
            sections.append(run_section(name, sizes, base, suite, data_root))
        except Exception as exc:  # a failed benchmark is reported, the run goes on
            errors[name] = f"{type(exc).__name__}: {exc}"
            log("".join(traceback.format_exception(exc)[-3:]))
        seconds[name] = round(time.perf_counter() - started, 1)
        log(f"  {name} took {seconds[name]:.1f} s")
    return sections, errors, seconds


def build_report(
    sections: list[Section],
    errors: dict[str, str],
    seconds: dict[str, float],
    *,
    command: str,
    sizes: Sizes,
    quick: bool,
    machine: dict[str, Any],
    targets: tuple[Target, ...] = TARGETS,
) -> dict[str, Any]:
    """The JSON record: machine, figures, targets with pass/miss, ratios, date and command."""
    figures = {f.key: f.summary() for s in sections for f in s.figures}
    checked = [t.check(figures) for t in targets]
    ratios = {
        key.split(".", 1)[1]: value["median"]
        for key, value in figures.items()
        if key.startswith("llm.ratio_")
    }
    return {
        "format": 1,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "quick": quick,
        "sizes": asdict(sizes),
        "machine": {**machine, "load_average_at_end": load_average()},
        "figures": figures,
        "targets": checked,
        "summary": {
            "pass": sum(t["result"] == "pass" for t in checked),
            "miss": [t["measure"] for t in checked if t["result"] == "miss"],
            "not_measured": [t["measure"] for t in checked if t["result"] == "not measured"],
        },
        "ratios_vs_reference": ratios,
        "details": {s.name: s.details for s in sections},
        "errors": errors,
        "seconds": {**seconds, "total": round(sum(seconds.values()), 1)},
    }


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def render_table(report: dict[str, Any]) -> str:
    """The figures as a text table: measure, median, p95, min, max, target, pass/miss."""
    by_figure = {t["figure"]: t for t in report["targets"]}
    rows = [("measure", "median", "p95", "min", "max", "target", "result")]
    for key, fig in report["figures"].items():
        target = by_figure.get(key)
        rows.append(
            (
                f"{fig['label']} ({fig['unit']})",
                _number(fig["median"]),
                _number(fig["p95"]),
                _number(fig["min"]),
                _number(fig["max"]),
                f"{target['stat']} ≤ {target['limit']:g} {target['unit']}" if target else "",
                target["result"] if target else "",
            )
        )
    for target in report["targets"]:
        if target["figure"] not in report["figures"]:
            rows.append((target["measure"], "-", "-", "-", "-", "", "not measured"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:6], widths[1:6], strict=True)
        ]
        lines.append("  ".join([*cells, row[6]]).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Measure the coach's speed and memory against the targets of issue 6, print "
        "a table and write a JSON record. Benchmarks: " + ", ".join(NAMES) + ".",
        epilog="A full run writes benchmarks/results/latest.json (committed). --quick and --only "
        "runs write benchmarks/.data/partial.json unless --out is given, so they never replace "
        "the committed results. The 100,000-passage index is built once into "
        "benchmarks/.data/ (git-ignored) and reused.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer repeats and a 10,000-passage synthetic index, for a fast check",
    )
    parser.add_argument("--out", type=Path, help="where to write the JSON results")
    parser.add_argument(
        "--only", help="comma-separated benchmarks to run, e.g. --only retrieval,scale"
    )
    parser.add_argument(
        "--suite",
        type=Path,
        default=PROJECT_ROOT / "evals" / "suites" / "core.yaml",
        help="eval suite for the eval benchmark (default: the core suite)",
    )
    parser.add_argument(
        "--fail-on-miss", action="store_true", help="exit 1 when a figure misses its target"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in (args.only or "").split(",") if n.strip()] or list(NAMES)
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(NAMES)}")
    args.names = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes.full()
    partial = args.quick or args.names != list(NAMES)
    out: Path = args.out or (DATA_ROOT / "partial.json" if partial else RESULTS)
    command = shlex.join(sys.orig_argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log("Benchmarks: " + ", ".join(args.names) + (" (quick)" if args.quick else ""))
    machine = machine_info()
    cached: list[CoachData] = []

    def base() -> CoachData:
        if not cached:
            log("  preparing the benchmark data folder (index and classifier) …")
            cached.append(default_base())
        return cached[0]

    sections, errors, seconds = run_all(args.names, sizes, base, args.suite.resolve(), log=log)
    from benchmarks.concurrency import TARGETS as CONCURRENCY_TARGETS

    report = build_report(
        sections,
        errors,
        seconds,
        command=command,
        sizes=sizes,
        quick=args.quick,
        machine=machine,
        targets=TARGETS + CONCURRENCY_TARGETS,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    print(render_table(report))
    print()
    ratios = report["ratios_vs_reference"]
    if ratios:
        print(
            "Ours / reference LangChain pipeline: "
            + ", ".join(
                f"{name.removeprefix('ratio_')} {value:.2f}x" for name, value in ratios.items()
            )
        )
    summary = report["summary"]
    print(
        f"Targets: {summary['pass']} pass, {len(summary['miss'])} miss"
        + (f" ({'; '.join(summary['miss'])})" if summary["miss"] else "")
        + (f", {len(summary['not_measured'])} not measured" if summary["not_measured"] else "")
    )
    start_load = (machine["load_average_at_start"] or [0.0])[0]
    end_load = (report["machine"]["load_average_at_end"] or [0.0])[0]
    cores = machine["usable_cores"] or 1
    print(f"Load average {start_load:.1f} at the start, {end_load:.1f} at the end, {cores} cores.")
    if start_load >= cores / 2:
        print("Note: other processes were busy when the run started; latencies include them.")
    for name, message in errors.items():
        print(f"ERROR in {name}: {message}")
    print(f"Total {report['seconds']['total']:.0f} s. Results written to {out}")
    if errors or (args.fail_on_miss and summary["miss"]):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
