"""The knowledge loader: passages, metadata and front matter errors."""

from pathlib import Path

import pytest

from app.errors import KnowledgeError
from app.knowledge import knowledge_hash, load_article, load_knowledge

ROOT = Path(__file__).resolve().parent.parent
ARTICLE = ROOT / "knowledge" / "management-vs-leadership.md"


@pytest.fixture(scope="module")
def passages():
    return load_article(ARTICLE)


def test_article_passage_count_and_kinds(passages):
    assert len(passages) == 13
    assert sum(p.kind == "responsibility" for p in passages) == 6
    assert sum(p.kind == "paragraph" for p in passages) == 7


@pytest.mark.parametrize(
    ("code", "passage_id", "starts"),
    [
        ("M1", "management-vs-leadership#management-2", "Setting clear objectives:"),
        ("M2", "management-vs-leadership#management-3", "Organizing resources:"),
        ("M3", "management-vs-leadership#management-4", "Monitoring performance:"),
        ("L1", "management-vs-leadership#leadership-2", "Setting a compelling vision:"),
        ("L2", "management-vs-leadership#leadership-3", "Empowering others:"),
        ("L3", "management-vs-leadership#leadership-4", "Building trust:"),
    ],
)
def test_each_bullet_is_a_responsibility_with_its_code(passages, code, passage_id, starts):
    by_code = {p.code: p for p in passages if p.code}
    passage = by_code[code]
    assert passage.id == passage_id
    assert passage.text.startswith(starts)
    assert passage.side == ("management" if code.startswith("M") else "leadership")


def test_metadata_and_exact_offsets(passages):
    raw = ARTICLE.read_text(encoding="utf-8")
    for p in passages:
        assert raw[p.start : p.end] == p.text
        assert p.title == "Management vs Leadership: Key Differences You Need to Know"
        assert p.author == "Siddhraj Thaker"
        assert p.publisher == "LearningTech Edu"
    sections = {p.section for p in passages}
    assert "Why Both Management and Leadership Matter" in sections
    assert {p.side for p in passages} == {"none", "management", "leadership", "both"}


def test_author_bio_is_not_retrievable(passages):
    assert not any("budding content writer" in p.text for p in passages)
    assert all(p.section != "About the author" for p in passages)


def test_ids_are_unique_and_stable(passages):
    ids = [p.id for p in passages]
    assert len(ids) == len(set(ids))
    assert ids == [p.id for p in load_article(ARTICLE)]


def test_extra_articles_are_loaded(tmp_path):
    (tmp_path / "a.md").write_text(ARTICLE.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "b.md").write_text(
        "---\ntitle: Notes\nauthor: Me\n---\n\n## Delegation\n\nHand off decisions.\n",
        encoding="utf-8",
    )
    passages = load_knowledge(tmp_path)
    assert len(passages) == 14
    extra = [p for p in passages if p.doc_id == "b"]
    assert extra[0].id == "b#delegation-1" and extra[0].side == "none"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("no front matter here\n", "a.md, line 1: front matter is missing"),
        ("---\ntitle: x\n\nbody\n", "a.md, line 1: front matter is not closed"),
        ("---\ntitle: x\nauthor: [unclosed\n---\n\nbody\n", "a.md, line 3"),
        ("---\nauthor: Me\n---\n\nbody\n", "needs a 'title'"),
        ("---\ntitle: x\nresponsibilities: {A: Z9}\n---\n\n- A: b\n", "unknown responsibility"),
    ],
)
def test_broken_front_matter_names_file_and_line(tmp_path, content, expected):
    path = tmp_path / "a.md"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(KnowledgeError) as err:
        load_article(path)
    assert expected in err.value.message


def test_hash_changes_with_content(tmp_path):
    (tmp_path / "a.md").write_text("---\ntitle: x\n---\n\nOne.\n", encoding="utf-8")
    before = knowledge_hash(tmp_path)
    (tmp_path / "a.md").write_text("---\ntitle: x\n---\n\nTwo.\n", encoding="utf-8")
    assert knowledge_hash(tmp_path) != before
