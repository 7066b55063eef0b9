"""Reports on runs and comparisons: Markdown for the terminal, HTML for people, JUnit XML for CI."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from app.evals.compare import Comparison, Flip, MetricRow
from app.evals.scorers import PASS_FAIL, label

# The metrics a summary shows, in this order (those a run does not have are skipped).
SUMMARY_METRICS = (
    "verdict_accuracy",
    "verdict_macro_f1",
    "focus_precision",
    "focus_recall",
    "focus_f1",
    "citation_validity",
    "format_validity",
    "must_mention_rate",
    "must_not_mention_rate",
    "redteam_pass_rate",
    "judge_mean",
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


def run_markdown(record: dict[str, Any]) -> str:
    """The summary printed after ``coach eval run``: metrics per suite, classes, failing cases."""
    config, metrics = record["config"], record["metrics"]
    suites = metrics.get("suites") or {}
    columns = [("all", metrics)] + list(suites.items())
    lines = [f"## Eval run: {run_title(record)}", ""]
    described = ", ".join(
        f"{s['name']} ({s['cases']} cases, {str(s.get('sha256'))[:12]})" for s in config["suites"]
    )
    lines.append(f"Suites: {described}. k={config.get('k')}, code {config.get('code_version')}.")
    run = record.get("run") or {}
    cache = run.get("cache")
    took = f"{run.get('seconds', 0):.1f} s"
    cached = f", {cache['hits']} cached / {cache['misses']} run" if cache else ", cache off"
    lines += [f"Took {took}{cached}.", ""]
    header = "| metric | " + " | ".join(name for name, _ in columns) + " |"
    lines += [header, "|---|" + "---:|" * len(columns)]
    for name in SUMMARY_METRICS:
        values = [m.get(name) for _, m in columns]
        if all(v is None for v in values):
            continue
        lines.append(f"| {name} | " + " | ".join(fmt(name, v) for v in values) + " |")
    if metrics.get("cost_note"):
        lines += ["", f"Cost: {metrics['cost_note']}."]

    per_class = metrics.get("per_class") or {}
    if per_class:
        lines += ["", "| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
        for name, row in per_class.items():
            lines.append(
                f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | "
                f"{row['f1']:.3f} | {row['support']} |"
            )
    confusion = metrics.get("confusion") or {}
    if confusion.get("matrix"):
        cols = confusion["labels"]
        lines += ["", "| expected ↓ / got → | " + " | ".join(cols) + " |"]
        lines.append("|---|" + "---:|" * len(cols))
        for expected, row in confusion["matrix"].items():
            lines.append(f"| {expected} | " + " | ".join(str(row.get(c, 0)) for c in cols) + " |")
    behaviours = metrics.get("behaviours") or {}
    if behaviours:
        lines += ["", "| red-team behaviour | pass rate |", "|---|---:|"]
        lines += [f"| {b} | {fmt(b, v)} |" for b, v in behaviours.items()]

    failing = [c for c in record["cases"] if failed_checks(c)]
    lines += ["", f"Failing cases: {len(failing)} of {len(record['cases'])}."]
    if failing:
        lines += ["", "| case | expected | got | failed checks |", "|---|---|---|---|"]
        for case in failing[:MAX_LISTED]:
            got = "error" if case.get("answer") is None else label(case["answer"].get("verdict"))
            checks = "; ".join(f"{n}: {r}" for n, r in failed_checks(case))
            lines.append(
                f"| {case['id']} | {label(case['expected']['verdict'])} | {got} | "
                f"{_md_cell(checks)} |"
            )
        if len(failing) > MAX_LISTED:
            lines.append(f"\n… and {len(failing) - MAX_LISTED} more; see the run file.")
    return "\n".join(lines) + "\n"


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
        lines.append(f"  - A: {_one_line(flip.a_summary, 220)}")
        lines.append(f"  - B: {_one_line(flip.b_summary, 220)}")
        if flip.detail:
            lines.append(f"  - why: {_one_line(flip.detail, 300)}")
    return lines


# Per suite, only the headline metrics; every metric stays in the run files.
SUITE_METRICS = ("verdict_accuracy", "focus_f1", "citation_validity", "redteam_pass_rate")
COMPARE_SKIP = {"cases", "cached", "redteam_cases", "prompt_tokens", "completion_tokens"}


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
    ("Red-team regressions: passed in A, fail in B", "redteam_regressions", "bad"),
    ("Red-team fixes: failed in A, pass in B", "redteam_fixes", "good"),
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
    record: dict[str, Any], thresholds: Sequence[tuple[str, float, float | None]] = ()
) -> str:
    """JUnit XML: one test per case (failed checks as failures, crashes as errors), per suite,
    plus one test per ``--fail-under`` threshold as (metric, limit, value)."""
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
                "\n".join(f"{n}: {r}" for n, r in failed)
                + f"\n\nexpected: {label(case['expected']['verdict'])} "
                f"{', '.join(case['expected']['focus'])}\n"
                f"got: {label(answer.get('verdict'))} {', '.join(answer.get('focus') or [])}\n"
                f"summary: {answer.get('summary', '')}"
            )
    if thresholds:
        gates = _suite_element(root, "thresholds")
        for name, limit, value in thresholds:
            test = ET.SubElement(gates, "testcase", classname="eval.thresholds", name=name)
            if value is None or value < limit:
                shown = "missing" if value is None else f"{value:.4f}"
                ET.SubElement(
                    test, "failure", message=f"{name} = {shown}, below {limit}", type="threshold"
                )
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
