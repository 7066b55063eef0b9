"""The benchmark code at tiny sizes, so it keeps working. No timing is asserted here."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks import bench_scale
from benchmarks.coach_data import CoachData
from benchmarks.figures import TARGETS
from benchmarks.machine import machine_info
from benchmarks.run import NAMES, Sizes, build_report, render_table, run_all
from tests.coach_env import shared_env

ROOT = Path(__file__).resolve().parent.parent
TINY = Sizes(
    index_cold_builds=1,
    index_warm_builds=2,
    article_queries=5,
    scale_passages=50,
    scale_sentences=20,
    scale_queries=5,
    answers=3,
    cold_asks=1,
    llm_rounds=2,
    app_starts=1,
    app_questions=2,
    eval_cold_runs=1,
    eval_cached_runs=1,
)
STAT_KEYS = {"label", "unit", "n", "median", "p95", "min", "max"}


@pytest.fixture(scope="module")
def data() -> CoachData:
    settings, _, _ = shared_env()
    return CoachData.prepare(settings.data_dir)


@pytest.fixture(scope="module")
def tiny_suite(tmp_path_factory) -> Path:
    core = yaml.safe_load((ROOT / "evals" / "suites" / "core.yaml").read_text(encoding="utf-8"))
    suite = {"name": "smoke", "description": "Two core cases.", "cases": core["cases"][:2]}
    path = tmp_path_factory.mktemp("suite") / "smoke.yaml"
    path.write_text(yaml.safe_dump(suite), encoding="utf-8")
    return path


def run_report(
    names: list[str], data: CoachData, suite: Path, data_root: Path
) -> tuple[dict[str, Any], dict[str, str]]:
    sections, errors, seconds = run_all(names, TINY, lambda: data, suite, data_root=data_root)
    report = build_report(
        sections,
        errors,
        seconds,
        command="python -m benchmarks.run --smoke",
        sizes=TINY,
        quick=True,
        machine=machine_info(),
    )
    return json.loads(json.dumps(report)), errors  # what is written must be plain JSON


@pytest.fixture(scope="module")
def report(data: CoachData, tiny_suite: Path, tmp_path_factory) -> dict[str, Any]:
    names = [n for n in NAMES if n not in ("app", "concurrency")]  # concurrency: own test
    result, errors = run_report(names, data, tiny_suite, tmp_path_factory.mktemp("bench-data"))
    assert errors == {}
    return result


def assert_figure(figure: dict[str, Any]) -> None:
    assert figure.keys() >= STAT_KEYS
    assert figure["n"] >= 1
    for stat in ("median", "p95", "min", "max"):
        assert isinstance(figure[stat], float) and math.isfinite(figure[stat])
    assert figure["min"] <= figure["median"] <= figure["max"]


def test_report_has_machine_date_command_and_every_section(report: dict[str, Any]) -> None:
    for key in ("date", "command", "machine", "figures", "targets", "ratios_vs_reference"):
        assert key in report
    machine = report["machine"]
    for key in ("cpu_model", "cores", "ram_gb", "python", "platform", "packages"):
        assert machine[key]
    assert machine["packages"]["chromadb"]
    prefixes = {key.split(".")[0] for key in report["figures"]}
    assert prefixes == {"index", "retrieval", "answer", "llm", "scale", "eval"}


@pytest.mark.parametrize(
    "key",
    [
        "index.build_cold_s",
        "index.build_warm_ms",
        "retrieval.query_ms",
        "scale.build_s",
        "scale.disk_mb",
        "scale.query_ms",
        "answer.offline_ms",
        "answer.ask_cold_s",
        "llm.ours_first_token_ms",
        "llm.ref_first_token_ms",
        "llm.ours_overhead_first_token_ms",
        "llm.ours_overhead_total_ms",
        "llm.ratio_first_token",
        "llm.ratio_overhead_total",
        "eval.cold_s",
        "eval.cached_s",
    ],
)
def test_each_figure_is_numbers(report: dict[str, Any], key: str) -> None:
    assert_figure(report["figures"][key])


def test_sizes_are_the_ones_asked_for(report: dict[str, Any]) -> None:
    assert report["figures"]["retrieval.query_ms"]["n"] == TINY.article_queries
    assert report["figures"]["llm.ours_total_ms"]["n"] == TINY.llm_rounds
    details = report["details"]
    assert details["scale"]["passages"] == TINY.scale_passages
    assert "derived from 20 embedded sentences" in details["scale"]["vectors"]
    assert details["eval"]["cached_hits"] == ["2/2"]


def test_every_target_is_judged_and_app_targets_are_not_measured(report: dict[str, Any]) -> None:
    results = {t["measure"]: t["result"] for t in report["targets"]}
    assert len(results) == len(TARGETS)
    for target in TARGETS:
        expected = {"not measured"} if target.figure.startswith("app.") else {"pass", "miss"}
        assert results[target.measure] in expected
    table = render_table(report)
    assert table.splitlines()[0].split()[:2] == ["measure", "median"]
    assert "not measured" in table


def test_scale_index_is_built_once_then_reused(data: CoachData, tmp_path: Path) -> None:
    args = (tmp_path / "scale", data.index.embedder, 30, 10, 3)
    first = bench_scale.run(*args)
    again = bench_scale.run(*args)
    assert first.details["built_this_run"] is True
    assert again.details["built_this_run"] is False
    assert again.details["first_build"]["build_s"] == first.details["first_build"]["build_s"]


@pytest.mark.browser
def test_app_benchmark_reports_first_answer_and_peak_memory(
    data: CoachData, tiny_suite: Path, tmp_path: Path
) -> None:
    if not os.access("/usr/bin/chromium", os.X_OK):
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "Debian's chromium is not installed (make chromium)"
        )
    result, errors = run_report(["app"], data, tiny_suite, tmp_path)
    assert errors == {}
    for key in ("app.first_answer_s", "app.answer_s", "app.peak_rss_mb"):
        assert_figure(result["figures"][key])
    assert result["details"]["app"]["questions"] == TINY.app_questions
