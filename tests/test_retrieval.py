"""Retrieval quality: everyday words find the right responsibility bullet."""

import pytest

from app.index import ArticleIndex
from app.settings import Settings


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    ix = ArticleIndex(Settings(data_dir=tmp_path_factory.mktemp("data")))
    ix.build()
    return ix


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("nobody on my team knows what we are actually aiming for this quarter", "M1"),
        ("who decides how the budget is split", "M2"),
        ("we only find out a project is late when it's already too late", "M3"),
        ("my people don't see where the company is heading in the next few years", "L1"),
        ("my staff wait for me to approve every little decision", "L2"),
        ("people on the team don't trust each other and keep things to themselves", "L3"),
    ],
)
def test_everyday_words_find_the_right_bullet_in_top_3(index, query, code):
    top = index.retrieve(query, 3)
    assert code in [sp.passage.code for sp in top], [sp.passage.id for sp in top]


def test_scores_are_sorted_and_in_range(index):
    results = index.retrieve("how do I keep projects on schedule", 5)
    scores = [sp.score for sp in results]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= s <= 1.0 for s in scores)


def test_passages_by_code_and_id(index):
    by_code = index.passages(codes=["M2", "L3"])
    assert [p.code for p in by_code] == ["M2", "L3"]
    by_id = index.passages(ids=["management-vs-leadership#management-3"])
    assert by_id[0].text.startswith("Organizing resources")
