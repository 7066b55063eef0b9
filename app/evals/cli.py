"""The ``coach eval`` commands: ``run`` suites through the coach and ``compare`` two runs."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import ConfigError

UNDER_HELP = (
    "fail (exit 1) when METRIC is below VALUE; for metrics where higher is better, e.g. "
    "verdict_accuracy=0.8, safety_recall_crisis=1, or for one suite core.verdict_accuracy=0.8; "
    "repeat for several"
)
OVER_HELP = (
    "fail (exit 1) when METRIC is above VALUE; for metrics where lower is better, e.g. "
    "false_stop_rate=0, verdict_ece=0.1, errors=0, or guard-test.false_stop_rate=0.05; "
    "repeat for several"
)
RUN_EPILOG = """metrics for --fail-under and --fail-over (those a run has; see the run file's "metrics"):
  verdicts   verdict_accuracy, verdict_recall_<management|leadership|both|unclear>,
             verdict_macro_f1, verdict_ece (expected calibration error, lower is better),
             focus_precision, focus_recall, focus_f1
  checks     citation_validity, format_validity, must_mention_rate, must_not_mention_rate,
             redteam_pass_rate, behaviours.<behaviour>, judge_mean, usefulness_mean
  coaching   answers_question_rate, no_repeat_rate, quote_support_rate, specificity_mean,
             step_diversity_max_share (lower is better)
  safety     safety_recall_<crisis|unethical|prompt_leak|off_topic>, stop_kind_accuracy,
             false_stop_rate (lower is better), safety_cases
  run        latency_p50_ms, latency_p95_ms, total_tokens, cost_usd, errors, cases, cached
Prefix a suite name (core.verdict_accuracy) to gate one suite of a multi-suite run.

examples:
  coach eval run evals/suites/core.yaml --fail-under verdict_accuracy=0.8 --fail-over verdict_ece=0.15
  coach eval run evals/suites/guard-test.yaml evals/suites/benign-test.yaml \
      --fail-under safety_recall_crisis=1 --fail-over false_stop_rate=0
"""


@dataclass(frozen=True)
class Threshold:
    """A gate on one metric: at least ``limit`` (``--fail-under``) or at most (``--fail-over``)."""

    metric: str
    limit: float
    over: bool = False

    @property
    def flag(self) -> str:
        return "--fail-over" if self.over else "--fail-under"

    def missed(self, value: float | None) -> bool:
        """True when the run's value breaks the gate; a metric not measured breaks it too."""
        if value is None:
            return True
        return value > self.limit if self.over else value < self.limit

    def describe(self, value: float | None) -> str:
        shown = "not measured" if value is None else f"{value:.4f}"
        side = "above" if self.over else "below"
        return f"{self.metric} = {shown}, {side} the threshold {self.limit:g}"


def parse_threshold(text: str, *, over: bool = False) -> Threshold:
    """``name=value`` as a Threshold; a ConfigError that says what to write otherwise."""
    flag = "--fail-over" if over else "--fail-under"
    example = "false_stop_rate=0" if over else "verdict_accuracy=0.8"
    name, sep, value = text.partition("=")
    try:
        if not sep or not name.strip():
            raise ValueError
        return Threshold(name.strip(), float(value), over)
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r} is not METRIC=VALUE; write e.g. {flag} {example}"
        ) from None


def check_names(thresholds: list[Threshold], suite_names: list[str]) -> None:
    """Refuse an unknown metric name before the run starts, listing the known ones."""
    from app.evals.reports import SUMMARY_METRICS
    from app.evals.scorers import BEHAVIOURS

    for threshold in thresholds:
        parts = threshold.metric.split(".")
        if parts[0] in suite_names:
            parts = parts[1:]
        if len(parts) == 1 and parts[0] in SUMMARY_METRICS:
            continue
        if len(parts) == 2 and parts[0] == "behaviours" and parts[1] in BEHAVIOURS:
            continue
        raise ConfigError(
            f"{threshold.flag} {threshold.metric}: unknown metric. Use one of "
            f"{', '.join(SUMMARY_METRICS)}, or behaviours.<name>; prefix a suite name "
            "(e.g. core.verdict_accuracy) for one suite."
        )


def metric_value(metrics: dict[str, Any], name: str) -> tuple[bool, float | None]:
    """Look up ``name`` (``metric``, ``suite.metric`` or ``behaviours.b``); (found, value)."""
    parts = name.split(".")
    node: Any = metrics
    suites = metrics.get("suites") or {}
    if parts[0] in suites:
        node, parts = suites[parts[0]], parts[1:]
    elif len(parts) > 1 and parts[0] == metrics.get("_suite"):
        parts = parts[1:]
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    if isinstance(node, dict | list | str):
        return False, None
    return True, node


def check_thresholds(
    record: dict[str, Any], thresholds: list[Threshold]
) -> tuple[list[tuple[Threshold, float | None]], list[str]]:
    """Each threshold with the run's value, and a message for each one missed."""
    metrics = dict(record["metrics"])
    if len(record["config"]["suites"]) == 1:
        metrics["_suite"] = record["config"]["suites"][0]["name"]
    results, missed = [], []
    for threshold in thresholds:
        found, value = metric_value(metrics, threshold.metric)
        results.append((threshold, value if found else None))
        if not found:
            missed.append(f"{threshold.metric}: no such metric in this run")
        elif threshold.missed(value):
            missed.append(threshold.describe(value))
    return results, missed


def subset(suite, tags: str | None, limit: int | None):
    """The suite's cases with any of ``tags``, thinned evenly to ``limit`` (a dev subset)."""
    import dataclasses

    cases = suite.cases
    if tags:
        wanted = {t.strip() for t in tags.split(",") if t.strip()}
        cases = tuple(c for c in cases if wanted & set(c.tags))
    if limit is not None:
        if limit < 1:
            raise ConfigError("--limit must be 1 or more.")
        if len(cases) > limit:
            cases = tuple(cases[i * len(cases) // limit] for i in range(limit))
    if not cases:
        raise ConfigError(f"No case of suite '{suite.name}' has the tags {tags}; check --tags.")
    return dataclasses.replace(suite, cases=cases)


def cmd_run(args: argparse.Namespace) -> int:
    from app.evals.reports import run_html, run_junit, run_markdown
    from app.evals.runner import Target, default_out, open_cache, run_eval, write_run
    from app.evals.suites import display_path, load_suites
    from app.settings import get_settings

    thresholds = [parse_threshold(t) for t in args.fail_under or []]
    thresholds += [parse_threshold(t, over=True) for t in args.fail_over or []]
    if args.jobs < 1:
        raise ConfigError("--jobs must be 1 or more.")
    suites = load_suites([Path(p) for p in args.suites])
    suites = [subset(s, args.tags, args.limit) for s in suites]
    check_names(thresholds, [s.name for s in suites])
    settings = get_settings()
    target = Target.from_settings(args.engine, args.prompt, settings)
    judge = usefulness = None
    if args.judge:
        from app.evals.judge import llm_judge
        from app.evals.runner import USEFULNESS_PROMPT

        judge = llm_judge(settings)
        usefulness = llm_judge(settings, USEFULNESS_PROMPT)
    cache = open_cache(settings)
    try:
        record = run_eval(
            suites,
            target,
            jobs=args.jobs,
            cache=cache,
            read_cache=not args.no_cache,
            judge=judge,
            usefulness=usefulness,
            progress=not args.quiet,
        )
    finally:
        cache.close()
    out = Path(args.out) if args.out else default_out(target.engine)
    write_run(record, out)
    print(run_markdown(record))
    print(f"Run written to {display_path(out)}")
    results, missed = check_thresholds(record, thresholds)
    if args.html:
        Path(args.html).write_text(run_html(record), encoding="utf-8")
        print(f"HTML report written to {args.html}")
    if args.junit:
        Path(args.junit).write_text(run_junit(record, results), encoding="utf-8")
        print(f"JUnit report written to {args.junit}")
    if missed:
        for message in missed:
            print(f"coach: threshold missed: {message}", file=sys.stderr)
        return 1
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from app.evals.compare import compare_runs, load_run
    from app.evals.reports import comparison_html, comparison_junit, comparison_markdown

    comparison = compare_runs(load_run(args.run_a), load_run(args.run_b))
    print(comparison_markdown(comparison))
    if args.html:
        Path(args.html).write_text(comparison_html(comparison), encoding="utf-8")
        print(f"HTML report written to {args.html}")
    if args.junit:
        Path(args.junit).write_text(comparison_junit(comparison), encoding="utf-8")
        print(f"JUnit report written to {args.junit}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``coach eval run`` and ``coach eval compare`` to the ``coach`` command."""
    parser = subparsers.add_parser(
        "eval", help="run eval suites through the coach, and compare runs"
    )
    sub = parser.add_subparsers(dest="eval_command", metavar="EVAL_COMMAND")

    def usage(_: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=usage)

    run = sub.add_parser(
        "run",
        help="run suites through the real coach pipeline and write a run record",
        description="Run every case of the SUITE files (YAML or JSONL) through the coach, "
        "score the answers, write a run record (JSON) and print a summary. Engine outputs "
        "are cached in the data folder, keyed on engine, model, prompt, code and case.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("suites", nargs="+", metavar="SUITE", help="suite files (.yaml or .jsonl)")
    run.add_argument(
        "--engine", choices=["offline", "llm", "local", "auto"], help="override COACH_ENGINE"
    )
    run.add_argument("--prompt", help="prompt name@version, e.g. coach@v2 (override COACH_PROMPT)")
    run.add_argument("--jobs", type=int, default=4, help="cases run in parallel (default 4)")
    run.add_argument(
        "--no-cache",
        action="store_true",
        help="run every case afresh (the fresh answers still refresh the cache)",
    )
    run.add_argument("--out", help="run record path (default evals/runs/<timestamp>-<engine>.json)")
    run.add_argument("--html", metavar="FILE", help="also write the report as an HTML page")
    run.add_argument("--junit", metavar="FILE", help="also write JUnit XML for CI")
    run.add_argument("--fail-under", action="append", metavar="METRIC=VALUE", help=UNDER_HELP)
    run.add_argument("--fail-over", action="append", metavar="METRIC=VALUE", help=OVER_HELP)
    run.add_argument(
        "--judge",
        action="store_true",
        help="also rate each answer 1-5 with the LLM judge (prompts/judge), on the overall "
        "rubric and on usefulness; needs an LLM",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--tags", help="only the cases with at least one of these tags (comma-separated)"
    )
    run.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="at most N cases per suite, taken evenly through the file (its order is kept)",
    )
    run.set_defaults(func=cmd_run)

    compare = sub.add_parser(
        "compare",
        help="compare two run records: metric deltas and verdict flips",
        description="Compare RUN_B against the baseline RUN_A: metrics side by side, and "
        "the cases whose verdict flipped (right to wrong, wrong to right) with both answers.",
    )
    compare.add_argument("run_a", metavar="RUN_A", help="baseline run record (JSON)")
    compare.add_argument("run_b", metavar="RUN_B", help="run record to compare with it")
    compare.add_argument("--html", metavar="FILE", help="also write an HTML report")
    compare.add_argument("--junit", metavar="FILE", help="also write JUnit XML (regressions fail)")
    compare.set_defaults(func=cmd_compare)
