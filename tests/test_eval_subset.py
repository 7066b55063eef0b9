"""`coach eval run --tags/--limit`: a dev subset small enough for a slow local model."""

import pytest

from app.cli import build_parser
from app.errors import ConfigError
from app.evals.cli import subset
from app.evals.suites import load_suite

CORE = "evals/suites/core.yaml"


def test_limit_takes_cases_evenly_through_the_file_in_order():
    suite = load_suite(CORE)
    picked = subset(suite, None, 8).cases
    assert len(picked) == 8 and [c.id for c in picked] == sorted(c.id for c in picked)
    verdicts = [c.expected_verdict for c in picked]
    assert {"management", "leadership", "both"} <= set(verdicts), "every class is sampled"
    assert subset(suite, None, 8).cases == picked, "the same subset every time"
    assert subset(suite, None, 10_000).cases == suite.cases


def test_tags_keep_cases_with_any_of_them():
    suite = load_suite(CORE)
    picked = subset(suite, "healthcare, retail", None).cases
    assert picked and all({"healthcare", "retail"} & set(c.tags) for c in picked)
    assert len(subset(suite, "healthcare,retail", 2).cases) == 2


@pytest.mark.parametrize(
    "tags, limit, problem", [("no-such-tag", None, "has the tags"), (None, 0, "--limit")]
)
def test_an_empty_subset_is_an_error(tags, limit, problem):
    with pytest.raises(ConfigError, match=problem):
        subset(load_suite(CORE), tags, limit)


def test_the_options_and_the_local_engine_are_on_the_command_line():
    args = build_parser().parse_args(
        ["eval", "run", CORE, "--engine", "local", "--tags", "retail", "--limit", "3"]
    )
    assert (args.engine, args.tags, args.limit) == ("local", "retail", 3)
