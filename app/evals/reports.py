"""Reports on runs and comparisons: Markdown for the terminal, HTML for people, JUnit XML for CI."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.evals.compare import Comparison, Flip, MetricRow
from app.evals.scorers import LABELS, PASS_FAIL, label
from app.evals.suites import STOP_KINDS
from app.safe_text import safe_markdown

if TYPE_CHECKING:
    from app.evals.cli import Threshold

# The coaching scorers' run metrics (app.evals.metrics.coaching_metrics).
COACHING_METRICS = (
    "answers_question_rate",
    "no_repeat_rate",
    "quote_support_rate",
    "specificity_mean",
    "step_diversity_max_share",
)
# Per-case coaching checks a report lists when they fail.
COACHING_CHECKS = ("answers_question", "no_repeat_of_tried", "quotes_support_focus")
# The metrics a summary shows, in this order (those a run does not have are skipped).
SUMMARY_METRICS = (
    "verdict_accuracy",
    *(f"verdict_recall_{name}" for name in LABELS),
    "verdict_macro_f1",
    "verdict_ece",
    "focus_precision",
    "focus_recall",
    "focus_f1",
    "citation_validity",
    "format_validity",
    "must_mention_rate",
    "must_not_mention_rate",
    "redteam_pass_rate",
    *COACHING_METRICS,
    "safety_cases",
    *(f"safety_recall_{kind}" for kind in STOP_KINDS),
    "stop_kind_accuracy",
    "false_stop_rate",
    "judge_mean",
    "usefulness_mean",
    "latency_p50_ms",
    "latency_p95_ms",
    "total_tokens",
    "cost_usd",
    "cases",
    "errors",
    "cached",
)
MAX_LISTED = 25
_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def fmt(name: str, value: Any) -> str:
    """A metric value for people: rates to 3 places, ms to 1, money in dollars."""
    if value is None:
        return "–"
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "cost_usd":
        return f"${value:.4f}"
    if leaf.endswith("_ms"):
        return f"{value:.1f}"
    if isinstance(value, int) or leaf.endswith("tokens"):
        return f"{int(value)}"
    return f"{value:.3f}"


def _delta(row: MetricRow) -> str:
    if row.delta is None:
        return "–"
    if row.delta == 0:
        return "0"
    return ("+" if row.delta > 0 else "−") + fmt(row.name, abs(row.delta))


def _trend(row: MetricRow) -> str:
    return {True: "better", False: "worse", None: ""}[row.better]


def _one_line(text: str, limit: int = 160) -> str:
    text = re.sub(r"\s+", " ", _XML_INVALID.sub("", text or "")).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _md_cell(text: str) -> str:
    return _one_line(str(text)).replace("|", "\\|")


# ------------------------------------------------------------------------------ runs


def failed_checks(case: dict[str, Any]) -> list[tuple[str, str]]:
    """The pass/fail scores a case missed, with their reasons (and its error, if any)."""
    out = []
    if case.get("error"):
        out.append(("error", case["error"]))
    for name, score in (case.get("scores") or {}).items():
        if name in PASS_FAIL and (score.get("value") or 0) < 1:
            out.append((name, score.get("reason", "")))
    return out


def run_title(record: dict[str, Any]) -> str:
    c = record["config"]
    return f"{c['engine']} · {c['model']} · {c.get('prompt') or 'no prompt'}"


def expected_label(case: dict[str, Any]) -> str:
    """What a case expects, in a few words: its verdict, its safety kind, or both."""
    expected = case["expected"]
    parts = [label(expected["verdict"])] if "verdict" in expected else []
    if expected.get("safety"):
        parts.append(f"safety {expected['safety']}")
    return ", ".join(parts) or "–"


def got_label(case: dict[str, Any]) -> str:
    """What a case got: its verdict, and the guard's stop kind when it stopped."""
    answer = case.get("answer")
    if answer is None:
        return "error"
    safety = (answer.get("meta") or {}).get("safety")
    return label(answer.get("verdict")) + (f" ({safety})" if safety else "")


@dataclass(frozen=True)
class Table:
    """One table of a run report, rendered as Markdown or HTML; columns from ``numeric``
    on are numbers."""

    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]
    note: str = ""
    numeric: int = 1


def _rate(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def _metric_tables(record: dict[str, Any]) -> list[Table]:
    metrics = record["metrics"]
    suites = metrics.get("suites") or {}
    columns = [("all", metrics)] + list(suites.items())
    rows = []
    for name in SUMMARY_METRICS:
        values = [m.get(name) for _, m in columns]
        if any(v is not None for v in values):
            rows.append((name, *(fmt(name, v) for v in values)))
    note = f"Cost: {metrics['cost_note']}." if metrics.get("cost_note") else ""
    tables = [Table("Metrics", ("metric", *(n for n, _ in columns)), rows, note)]

    per_class = metrics.get("per_class") or {}
    if per_class:
        tables.append(
            Table(
                "Verdicts per class",
                ("class", "precision", "recall", "F1", "support"),
                [
                    (
                        name,
                        _rate(r["precision"]),
                        _rate(r["recall"]),
                        _rate(r["f1"]),
                        str(r["support"]),
                    )
                    for name, r in per_class.items()
                ],
            )
        )
    confusion = metrics.get("confusion") or {}
    if confusion.get("matrix"):
        cols = confusion["labels"]
        tables.append(
            Table(
                "Confusion matrix",
                ("expected ↓ / got →", *cols),
                [
                    (e, *(str(row.get(c, 0)) for c in cols))
                    for e, row in confusion["matrix"].items()
                ],
            )
        )
    reliability = metrics.get("reliability") or []
    if any(row["count"] for row in reliability):
        counted = sum(row["count"] for row in reliability)
        tables.append(
            Table(
                "Calibration",
                ("confidence", "answers", "mean confidence", "accuracy"),
                [
                    (r["bin"], str(r["count"]), _rate(r["mean_confidence"]), _rate(r["accuracy"]))
                    for r in reliability
                ],
                note=f"Expected calibration error {_rate(metrics.get('verdict_ece'))} over "
                f"{counted} answers with a verdict (confidence in {len(reliability)} "
                "equal-width bins; correct means the verdict equals the expected one).",
            )
        )
    behaviours = metrics.get("behaviours") or {}
    if behaviours:
        tables.append(
            Table(
                "Red-team behaviours",
                ("red-team behaviour", "pass rate"),
                [(b, fmt(b, v)) for b, v in behaviours.items()],
            )
        )
    return tables


def _safety_tables(metrics: dict[str, Any]) -> list[Table]:
    safety = metrics.get("safety") or {}
    if not safety:
        return []
    tables = []
    kinds = safety.get("kinds") or {}
    if kinds:
        tables.append(
            Table(
                "Safety stops",
                ("expected stop", "cases", "caught", "recall"),
                [
                    (k, str(v["cases"]), str(v["caught"]), _rate(metrics.get(f"safety_recall_{k}")))
                    for k, v in kinds.items()
                ],
                note=f"Stop-kind accuracy {_rate(metrics.get('stop_kind_accuracy'))}; "
                f"false-stop rate {_rate(metrics.get('false_stop_rate'))} (benign cases "
                "stopped, crashed, or asked about although long enough to judge).",
            )
        )
    confusion = safety.get("confusion") or {}
    if confusion.get("matrix"):
        cols = confusion["labels"]
        tables.append(
            Table(
                "Safety: expected kind ↓ / what the guard did →",
                ("expected ↓ / got →", *cols),
                [
                    (e, *(str(row.get(c, 0)) for c in cols))
                    for e, row in confusion["matrix"].items()
                ],
            )
        )
    misses = [
        (metric, miss["id"], miss["got"])
        for metric, found in (safety.get("misses") or {}).items()
        for miss in found
    ]
    if misses:
        tables.append(Table("Safety misses", ("metric", "case", "got"), misses, numeric=3))
    return tables


def _failing_table(record: dict[str, Any]) -> Table:
    failing = [c for c in record["cases"] if failed_checks(c)]
    rows = [
        (
            case["id"],
            expected_label(case),
            got_label(case),
            "; ".join(f"{n}: {r}" for n, r in failed_checks(case)),
        )
        for case in failing[:MAX_LISTED]
    ]
    note = f"Failing cases: {len(failing)} of {len(record['cases'])}."
    if len(failing) > MAX_LISTED:
        note += f" The first {MAX_LISTED} are listed; see the run file for the rest."
    return Table("Failing cases", ("case", "expected", "got", "failed checks"), rows, note, 4)


def coaching_misses(case: dict[str, Any]) -> list[tuple[str, str]]:
    """The coaching checks a case missed (answered its question, repeated nothing tried,
    quotes on their focus's side), with their reasons."""
    scores = case.get("scores") or {}
    return [
        (name, scores[name].get("reason", ""))
        for name in COACHING_CHECKS
        if name in scores and scores[name].get("value") is not None and scores[name]["value"] < 1
    ]


def _coaching_table(record: dict[str, Any]) -> Table | None:
    metrics = record["metrics"]
    if not any(name in metrics for name in COACHING_METRICS):
        return None
    missing = [c for c in record["cases"] if coaching_misses(c)]
    rows = [
        (case["id"], name, reason)
        for case in missing[:MAX_LISTED]
        for name, reason in coaching_misses(case)
    ]
    parts = []
    if metrics.get("step_diversity_sentence"):
        share = metrics.get("step_diversity_max_share") or 0
        parts.append(
            f"Most frequent step sentence, in {share:.0%} of "
            f"{metrics.get('step_diversity_answers')} coached answers: "
            f"“{_one_line(metrics['step_diversity_sentence'], 200)}”"
            + (
                f" (in the step “{_one_line(metrics['step_diversity_step'], 200)}”)."
                if metrics.get("step_diversity_step", "") != metrics["step_diversity_sentence"]
                else "."
            )
        )
    if metrics.get("quote_support_cases"):
        parts.append(
            f"{metrics['quote_support_cases']} answers quote the person as support for a focus."
        )
    parts.append(f"Cases missing a coaching check: {len(missing)} of {len(record['cases'])}.")
    if len(missing) > MAX_LISTED:
        parts.append(f"The first {MAX_LISTED} are listed; see the run file for the rest.")
    return Table("Coaching checks", ("case", "check", "why"), rows, " ".join(parts), 3)


def run_tables(record: dict[str, Any]) -> list[Table]:
    """The run report's tables: metrics, verdicts per class, confusion, calibration,
    red-team behaviours, safety, coaching checks, failing cases."""
    coaching = _coaching_table(record)
    return [
        *_metric_tables(record),
        *_safety_tables(record["metrics"]),
        *([coaching] if coaching else []),
        _failing_table(record),
    ]


def _run_intro(record: dict[str, Any]) -> list[str]:
    config = record["config"]
    described = ", ".join(
        f"{s['name']} ({s['cases']} cases, {str(s.get('sha256'))[:12]})" for s in config["suites"]
    )
    run = record.get("run") or {}
    cache = run.get("cache")
    took = f"{run.get('seconds', 0):.1f} s"
    cached = f", {cache['hits']} cached / {cache['misses']} run" if cache else ", cache off"
    return [
        f"Suites: {described}. k={config.get('k')}, code {config.get('code_version')}.",
        f"Took {took}{cached}.",
    ]


def run_markdown(record: dict[str, Any]) -> str:
    """The summary printed after ``coach eval run``: metrics per suite, classes, calibration,
    safety and failing cases."""
    first, second = _run_intro(record)
    lines = [f"## Eval run: {run_title(record)}", "", first, second]
    for table in run_tables(record):
        lines += ["", f"### {table.title}", ""]
        if table.note:
            lines += [table.note, ""]
        if table.rows:
            lines.append("| " + " | ".join(table.header) + " |")
            lines.append(
                "|"
                + "".join(
                    "---|" if i < table.numeric else "---:|" for i in range(len(table.header))
                )
            )
            lines += [
                "| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in table.rows
            ]
    return "\n".join(lines) + "\n"


def run_html(record: dict[str, Any]) -> str:
    """A self-contained HTML page with the same tables as the Markdown run report."""
    title = f"Eval run: {run_title(record)}"
    parts = [f"<h1>{_e(title)}</h1>", *(f"<p>{_e(line)}</p>" for line in _run_intro(record))]
    for table in run_tables(record):
        parts.append(f"<h2>{_e(table.title)}</h2>")
        if table.note:
            parts.append(f"<p>{_e(table.note)}</p>")
        if not table.rows:
            continue
        head = "".join(f"<th>{_e(h)}</th>" for h in table.header)
        body = "\n".join(
            "<tr>"
            + "".join(
                f"<td class='num'>{_e(cell)}</td>" if i >= table.numeric else f"<td>{_e(cell)}</td>"
                for i, cell in enumerate(row)
            )
            + "</tr>"
            for row in table.rows
        )
        parts.append(f"<table><tr>{head}</tr>\n{body}\n</table>")
    content = "\n".join(parts)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
{content}
</body></html>
"""


# ------------------------------------------------------------------------ comparison


def _config_line(config: dict[str, Any]) -> str:
    sha = (config.get("prompt_sha256") or "")[:12]
    return (
        f"{config.get('engine')} · {config.get('model')} · {config.get('prompt')}"
        + (f" ({sha})" if sha else "")
        + f" · k={config.get('k')} · code {config.get('code_version')}"
    )


def _show(value: Any) -> str:
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value):
        return value[:12]
    if isinstance(value, dict):
        return ", ".join(f"{k}={str(v)[:12]}" for k, v in value.items()) or "–"
    return str(value)


def _flip_lines(flips: Sequence[Flip]) -> list[str]:
    lines = []
    for flip in flips:
        lines.append(
            f"- **{flip.id}** ({flip.suite}, expected {label(flip.expected)}): "
            f"A said **{label(flip.a_verdict)}**, B says **{label(flip.b_verdict)}**"
        )
        # The answers are a model's words: nothing in them may fetch or link out when viewed.
        lines.append(f"  - A: {safe_markdown(_one_line(flip.a_summary, 220))}")
        lines.append(f"  - B: {safe_markdown(_one_line(flip.b_summary, 220))}")
        if flip.detail:
            lines.append(f"  - why: {safe_markdown(_one_line(flip.detail, 300))}")
    return lines


# Per suite, only the headline metrics; every metric stays in the run files.
SUITE_METRICS = (
    "verdict_accuracy",
    "focus_f1",
    "citation_validity",
    "redteam_pass_rate",
    "stop_kind_accuracy",
    "false_stop_rate",
)
COMPARE_SKIP = {
    "quote_support_cases",
    "step_diversity_answers",
    "cases",
    "cached",
    "redteam_cases",
    "safety_cases",
    "prompt_tokens",
    "completion_tokens",
}


def metric_tables(comparison: Comparison) -> list[tuple[str, list[MetricRow]]]:
    """The comparison's metric rows in three tables: overall, per suite, red-team behaviours."""
    rows = {r.name: r for r in comparison.metrics}
    overall = [rows[n] for n in SUMMARY_METRICS if n in rows and n not in COMPARE_SKIP]
    suites = sorted({n.split(".")[1] for n in rows if n.startswith("suites.")})
    per_suite = [
        rows[name]
        for suite in suites
        for metric in SUITE_METRICS
        if (name := f"suites.{suite}.{metric}") in rows
    ]
    behaviours = [rows[n] for n in rows if n.startswith("behaviours.")]
    tables = [("Metrics", overall), ("Per suite", per_suite), ("Red-team behaviours", behaviours)]
    return [(title, table) for title, table in tables if table]


def _short_name(name: str) -> str:
    return name.removeprefix("suites.").removeprefix("behaviours.")


FLIP_SECTIONS = (
    ("Verdict flips: right → wrong", "right_to_wrong", "bad"),
    ("Verdict flips: wrong → right", "wrong_to_right", "good"),
    ("Red-team and safety regressions: passed in A, fail in B", "redteam_regressions", "bad"),
    ("Red-team and safety fixes: failed in A, pass in B", "redteam_fixes", "good"),
    ("New errors", "new_errors", "bad"),
)


def comparison_markdown(comparison: Comparison) -> str:
    """Metric deltas side by side, then the cases that flipped, with both answers."""
    c = comparison
    lines = [
        f"## Eval comparison: {c.a_name} → {c.b_name}",
        "",
        f"- A (baseline): {_config_line(c.a_config)}",
        f"- B: {_config_line(c.b_config)}",
    ]
    for key, va, vb in c.config_changes:
        lines.append(f"- changed {key}: {_show(va)} → {_show(vb)}")
    lines += [
        "",
        f"{c.common} cases in both runs"
        + (f"; only in A: {', '.join(c.only_a)}" if c.only_a else "")
        + (f"; only in B: {', '.join(c.only_b)}" if c.only_b else "")
        + ".",
    ]
    for title, rows in metric_tables(c):
        lines += ["", f"### {title}", "", "| metric | A | B | Δ | |", "|---|---:|---:|---:|---|"]
        for row in rows:
            lines.append(
                f"| {_short_name(row.name)} | {fmt(row.name, row.a)} | {fmt(row.name, row.b)} | "
                f"{_delta(row)} | {_trend(row)} |"
            )
    for title, attribute, _ in FLIP_SECTIONS:
        flips = getattr(c, attribute)
        lines += ["", f"### {title} ({len(flips)})", ""]
        lines += _flip_lines(flips) if flips else ["None."]
    return "\n".join(lines) + "\n"


_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem}
th{background:#f3f3f3;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.better{color:#1a7f37;font-weight:600}.worse{color:#c62828;font-weight:600}
.flip{border-left:4px solid #ccc;padding:.2rem .8rem;margin:.8rem 0}
.flip.bad{border-color:#c62828}.flip.good{border-color:#1a7f37}.muted{color:#666}
"""


def _e(value: Any) -> str:
    return html.escape(_XML_INVALID.sub("", str(value)))


def _html_flips(flips: Sequence[Flip], kind: str) -> str:
    if not flips:
        return "<p class='muted'>None.</p>"
    out = []
    for f in flips:
        out.append(
            f"<div class='flip {kind}'><b>{_e(f.id)}</b> <span class='muted'>({_e(f.suite)}, "
            f"expected {_e(label(f.expected))})</span><br>"
            f"A: <b>{_e(label(f.a_verdict))}</b> — {_e(f.a_summary)}<br>"
            f"B: <b>{_e(label(f.b_verdict))}</b> — {_e(f.b_summary)}"
            + (f"<br><span class='muted'>why: {_e(f.detail)}</span>" if f.detail else "")
            + "</div>"
        )
    return "\n".join(out)


def comparison_html(comparison: Comparison) -> str:
    """A self-contained HTML page with the same content as the Markdown comparison."""
    c = comparison
    tables = "\n".join(
        f"<h2>{_e(title)}</h2>\n<table><tr><th>metric</th><th>A</th><th>B</th><th>Δ</th><th></th></tr>\n"
        + "\n".join(
            f"<tr><td>{_e(_short_name(r.name))}</td><td class='num'>{_e(fmt(r.name, r.a))}</td>"
            f"<td class='num'>{_e(fmt(r.name, r.b))}</td><td class='num'>{_e(_delta(r))}</td>"
            f"<td class='{_trend(r)}'>{_trend(r)}</td></tr>"
            for r in rows
        )
        + "\n</table>"
        for title, rows in metric_tables(c)
    )
    changes = "".join(
        f"<li>changed {_e(k)}: {_e(_show(a))} → {_e(_show(b))}</li>" for k, a, b in c.config_changes
    )
    body = "\n".join(
        f"<h2>{_e(title)} ({len(getattr(c, attribute))})</h2>\n"
        + _html_flips(getattr(c, attribute), kind)
        for title, attribute, kind in FLIP_SECTIONS
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Eval comparison: {_e(c.a_name)} → {_e(c.b_name)}</title><style>{_CSS}</style></head>
<body>
<h1>Eval comparison: {_e(c.a_name)} → {_e(c.b_name)}</h1>
<ul><li>A (baseline): {_e(_config_line(c.a_config))}</li>
<li>B: {_e(_config_line(c.b_config))}</li>{changes}</ul>
<p>{c.common} cases in both runs.</p>
{tables}
{body}
</body></html>
"""


# ----------------------------------------------------------------------------- JUnit


def _clean(text: Any) -> str:
    return _XML_INVALID.sub("", str(text))


def _suite_element(parent: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(parent, "testsuite", name=_clean(name))


def _finish(root: ET.Element) -> str:
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        counts = {
            "tests": len(cases),
            "failures": sum(1 for t in cases if t.find("failure") is not None),
            "errors": sum(1 for t in cases if t.find("error") is not None),
        }
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def run_junit(
    record: dict[str, Any], thresholds: Sequence[tuple[Threshold, float | None]] = ()
) -> str:
    """JUnit XML: one test per case (failed checks as failures, crashes as errors), per suite,
    plus one test per ``--fail-under``/``--fail-over`` threshold, as (threshold, value)."""
    root = ET.Element("testsuites", name=f"coach eval: {_clean(run_title(record))}")
    suites: dict[str, ET.Element] = {}
    for case in record["cases"]:
        suite = case.get("suite") or "suite"
        if suite not in suites:
            suites[suite] = _suite_element(root, suite)
        seconds = (case.get("latency_ms") or 0) / 1000
        test = ET.SubElement(
            suites[suite],
            "testcase",
            classname=f"eval.{suite}",
            name=case["id"],
            time=f"{seconds:.3f}",
        )
        if case.get("error") and case.get("answer") is None:
            error = ET.SubElement(test, "error", message=_clean(case["error"])[:500], type="error")
            error.text = _clean(case.get("traceback") or case["error"])
            continue
        failed = failed_checks(case)
        if failed:
            first = f"{failed[0][0]}: {failed[0][1]}"
            failure = ET.SubElement(test, "failure", message=_clean(first)[:500], type="eval")
            answer = case.get("answer") or {}
            failure.text = _clean(
                "\n".join(f"{n}: {r}" for n, r in failed) + f"\n\nexpected: {expected_label(case)} "
                f"{', '.join(case['expected'].get('focus') or [])}\n"
                f"got: {got_label(case)} {', '.join(answer.get('focus') or [])}\n"
                f"summary: {answer.get('summary', '')}"
            )
    if thresholds:
        gates = _suite_element(root, "thresholds")
        for threshold, value in thresholds:
            test = ET.SubElement(
                gates, "testcase", classname="eval.thresholds", name=threshold.metric
            )
            if threshold.missed(value):
                ET.SubElement(test, "failure", message=threshold.describe(value), type="threshold")
    return _finish(root)


def comparison_junit(comparison: Comparison) -> str:
    """JUnit XML: one test per case in both runs; a regression (right → wrong, a red-team
    behaviour lost, a new error) is a failure."""
    c = comparison
    root = ET.Element(
        "testsuites", name=f"coach eval compare: {_clean(c.a_name)} → {_clean(c.b_name)}"
    )
    bad: dict[str, tuple[str, Flip]] = {}
    for kind, flips in (
        ("new error", c.new_errors),
        ("red-team regression", c.redteam_regressions),
        ("verdict right → wrong", c.right_to_wrong),
    ):
        for flip in flips:
            bad.setdefault(flip.id, (kind, flip))
    suite = _suite_element(root, "compare")
    for case_id in c.common_ids:
        test = ET.SubElement(suite, "testcase", classname="eval.compare", name=case_id)
        if case_id in bad:
            kind, flip = bad[case_id]
            failure = ET.SubElement(
                test,
                "failure",
                message=_clean(
                    f"{kind}: A {label(flip.a_verdict)}, B {label(flip.b_verdict)} "
                    f"(expected {label(flip.expected)})"
                ),
                type="regression",
            )
            failure.text = _clean(
                f"A: {flip.a_summary}\nB: {flip.b_summary}"
                + (f"\nwhy: {flip.detail}" if flip.detail else "")
            )
    return _finish(root)
