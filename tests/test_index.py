"""The Chroma index: build, no-op, rebuild on change, persistence, retrieval and bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import ConfigError, IndexUnavailable, InputError
from app.index import ArticleIndex
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def knowledge(tmp_path):
    folder = tmp_path / "knowledge"
    folder.mkdir()
    shutil.copy(ROOT / "knowledge" / "management-vs-leadership.md", folder)
    return folder


def make_index(tmp_path, knowledge) -> ArticleIndex:
    return ArticleIndex(Settings(data_dir=tmp_path / "data", knowledge_dir=knowledge))


def test_build_then_noop_then_rebuild_after_change(tmp_path, knowledge):
    index = make_index(tmp_path, knowledge)
    first = index.build()
    assert first.built and first.passages == 13
    again = index.build()
    assert not again.built and again.collection == first.collection

    article = knowledge / "management-vs-leadership.md"
    article.write_text(
        article.read_text(encoding="utf-8") + "\n## Extra\n\nA new paragraph.\n", encoding="utf-8"
    )
    changed = index.build()
    assert changed.built and changed.passages == 14
    assert changed.collection != first.collection
    assert index.build().built is False


def test_forced_rebuild_switches_collection(tmp_path, knowledge):
    index = make_index(tmp_path, knowledge)
    first = index.build()
    forced = index.build(rebuild=True)
    assert forced.built and forced.collection != first.collection
    pointer = json.loads((tmp_path / "data" / "index.json").read_text())
    assert pointer["collection"] == forced.collection
    assert index.retrieve("who splits the budget", 1)[0].passage.code == "M2"


def test_new_article_is_indexed(tmp_path, knowledge):
    index = make_index(tmp_path, knowledge)
    index.build()
    (knowledge / "delegation.md").write_text(
        "---\ntitle: Delegation notes\nauthor: Team\n---\n\n## Handing off\n\n"
        "Give a colleague a whole decision to own, with the outcome and the limits.\n",
        encoding="utf-8",
    )
    result = index.build()
    assert result.built and result.passages == 14
    ids = [sp.passage.id for sp in index.retrieve("let a colleague own a whole decision", 3)]
    assert "delegation#handing-off-1" in ids


def test_index_persists_across_processes(tmp_path, knowledge):
    make_index(tmp_path, knowledge).build()
    script = (
        "from app.index import ArticleIndex; from app.settings import Settings; import sys;"
        f"ix = ArticleIndex(Settings(data_dir=r'{tmp_path / 'data'}', knowledge_dir=r'{knowledge}'));"
        "r = ix.build(); hit = ix.retrieve('who decides how the budget is split', 1)[0];"
        "print(r.built, hit.passage.id)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.stdout.split() == ["False", "management-vs-leadership#management-3"]


def test_reopens_in_new_process_without_embedding_arguments(tmp_path, knowledge):
    index = make_index(tmp_path, knowledge)
    name = index.build().collection
    script = (
        "import app.embedder, chromadb;"
        f"c = chromadb.PersistentClient(path=r'{tmp_path / 'data' / 'chroma'}');"
        f"col = c.get_collection('{name}');"
        "print(col.query(query_texts=['building trust with the team'], n_results=1)['ids'][0][0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "management-vs-leadership#leadership-4"


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_is_a_clear_error(tmp_path, knowledge, query):
    index = make_index(tmp_path, knowledge)
    index.build()
    with pytest.raises(InputError, match="empty"):
        index.retrieve(query)


def test_unbuilt_index_says_to_run_coach_index(tmp_path, knowledge):
    with pytest.raises(IndexUnavailable, match="coach index"):
        make_index(tmp_path, knowledge).retrieve("anything at all")


def test_damaged_pointer_says_to_rebuild(tmp_path, knowledge):
    index = make_index(tmp_path, knowledge)
    index.build()
    (tmp_path / "data" / "index.json").write_text("{not json")
    with pytest.raises(IndexUnavailable, match="coach index --rebuild"):
        index.retrieve("budget")
    assert index.build(rebuild=True).built
    assert index.retrieve("budget", 1)


def test_corrupted_store_says_to_rebuild_and_rebuild_repairs(tmp_path, knowledge):
    index = make_index(tmp_path, knowledge)
    index.build()
    sqlite = tmp_path / "data" / "chroma" / "chroma.sqlite3"
    sqlite.write_bytes(b"this is not a database" * 100)
    fresh = make_index(tmp_path, knowledge)
    with pytest.raises(IndexUnavailable, match="coach index --rebuild"):
        fresh.retrieve("budget")
    repaired = make_index(tmp_path, knowledge)
    assert repaired.build(rebuild=True).built
    assert repaired.retrieve("who decides how the budget is split", 1)[0].passage.code == "M2"


def test_missing_data_folder_is_created(tmp_path, knowledge):
    index = make_index(tmp_path, knowledge)
    assert not (tmp_path / "data").exists()
    index.build()
    assert (tmp_path / "data" / "index.json").exists()


def test_data_dir_pointing_at_a_file_is_a_clear_error(tmp_path, knowledge):
    target = tmp_path / "afile"
    target.write_text("x")
    index = ArticleIndex(Settings(data_dir=target, knowledge_dir=knowledge))
    with pytest.raises(ConfigError, match="points at a file"):
        index.build()


def test_unwritable_data_dir_is_a_clear_error(knowledge):
    # /proc refuses new folders even for root, so this holds in CI too.
    index = ArticleIndex(Settings(data_dir=Path("/proc/coach-data"), knowledge_dir=knowledge))
    with pytest.raises(ConfigError, match="cannot be written"):
        index.build()
