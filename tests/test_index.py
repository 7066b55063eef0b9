"""The Chroma index, in a folder and on a real Chroma server: build, no-op, rebuild on change,
persistence, retrieval, sharing between processes and bad input."""

import base64
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from app.errors import ConfigError, IndexUnavailable, InputError
from app.index import ArticleIndex
from app.settings import Settings
from tests.chroma_server import ChromaServer, free_port

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


# -- on a Chroma server (COACH_CHROMA_URL) ---------------------------------------------------


def server_index(tmp_path, knowledge, url: str, collection: str, data: str = "data"):
    settings = Settings(
        data_dir=tmp_path / data, knowledge_dir=knowledge, chroma_url=url, collection=collection
    )
    return ArticleIndex(settings)


def fresh_name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def test_server_build_noop_and_retrieve_leave_the_data_folder_without_an_index(
    tmp_path, knowledge, chroma_server
):
    name = fresh_name()
    index = server_index(tmp_path, knowledge, chroma_server.url, name)
    first = index.build()
    assert first.built and first.passages == 13
    again = index.build()
    assert not again.built and again.collection == first.collection
    assert index.retrieve("who decides how the budget is split", 1)[0].passage.code == "M2"
    assert [p.code for p in index.passages(codes=["L1"])] == ["L1"]
    # The index lives on the server only: no folder and no pointer file in the data folder.
    assert not (tmp_path / "data" / "chroma").exists()
    assert not (tmp_path / "data" / "index.json").exists()
    live = index.client().get_collection(f"{name}.live", embedding_function=None)
    assert live.metadata["collection"] == first.collection


def test_server_content_change_switches_atomically_for_another_coach(
    tmp_path, knowledge, chroma_server
):
    name = fresh_name()
    builder = server_index(tmp_path, knowledge, chroma_server.url, name)
    first = builder.build()
    # A second coach with its own client and data folder, as on another machine.
    reader = server_index(tmp_path, knowledge, chroma_server.url, name, data="other")
    new_query = "the capybara rota for the office aquarium"
    assert reader.retrieve(new_query, 1)[0].passage.section != "Aquarium"

    article = knowledge / "management-vs-leadership.md"
    article.write_text(
        article.read_text(encoding="utf-8")
        + "\n## Aquarium\n\nThe capybara rota says who feeds the office aquarium each week.\n",
        encoding="utf-8",
    )
    seen_mid_build = []

    def progress(done: int, total: int) -> None:
        # Passages are in the new collection but the pointer has not moved: readers still
        # get the complete old index.
        hits = reader.retrieve(new_query, 14)
        seen_mid_build.append((done, len(hits), {sp.passage.section for sp in hits}))

    changed = builder.build(progress=progress)
    assert changed.built and changed.passages == 14 and changed.collection != first.collection
    assert seen_mid_build == [(14, 13, seen_mid_build[0][2])]
    assert "Aquarium" not in seen_mid_build[0][2]
    assert reader.retrieve(new_query, 1)[0].passage.section == "Aquarium"
    # The previous build stays for readers that still hold it.
    old = builder.client().get_collection(first.collection, embedding_function=None)
    assert old.count() == 13
    assert (
        server_index(tmp_path, knowledge, chroma_server.url, name, "third").build().built is False
    )


def test_two_processes_share_the_server_index(tmp_path, knowledge, chroma_server):
    name = fresh_name()
    built = server_index(tmp_path, knowledge, chroma_server.url, name).build()
    env = {
        **os.environ,
        "COACH_CHROMA_URL": chroma_server.url,
        "COACH_COLLECTION": name,
        "COACH_KNOWLEDGE_DIR": str(knowledge),
        "COACH_DATA_DIR": str(tmp_path / "machine-2"),
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "search",
            "who decides how the budget is split",
            "-k",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "management-vs-leadership#management-3 [M2]" in out.stdout
    client = server_index(tmp_path, knowledge, chroma_server.url, name).client()
    builds = [c.name for c in client.list_collections() if c.name.startswith(name + "-")]
    assert builds == [built.collection]  # the second process reused it, built nothing
    assert not (tmp_path / "machine-2" / "chroma").exists()


def test_server_that_stops_gives_a_plain_error(tmp_path, knowledge):
    with ChromaServer(tmp_path / "short-lived") as server:
        index = server_index(tmp_path, knowledge, server.url, "coach")
        index.build()
        assert index.retrieve("budget", 1)
    with pytest.raises(IndexUnavailable) as caught:
        index.retrieve("budget", 1)
    assert str(caught.value) == (
        f"The Chroma server at {server.url} is not reachable: start it (`chroma run --path "
        "<folder> --host 127.0.0.1 --port 8000`) or fix COACH_CHROMA_URL, then try again."
    )


def test_cli_with_no_server_prints_one_sentence_without_the_password(tmp_path, knowledge):
    port = free_port()
    env = {
        **os.environ,
        "COACH_CHROMA_URL": f"http://coach:s3cret-pw@127.0.0.1:{port}",
        "COACH_KNOWLEDGE_DIR": str(knowledge),
        "COACH_DATA_DIR": str(tmp_path / "data"),
    }
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "index"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert out.returncode == 1
    assert out.stderr == (
        f"coach: The Chroma server at http://127.0.0.1:{port} is not reachable: start it "
        "(`chroma run --path <folder> --host 127.0.0.1 --port 8000`) or fix COACH_CHROMA_URL, "
        "then try again.\n"
    )


class NotChroma(http.server.BaseHTTPRequestHandler):
    """Answers as the server's ``answers`` table says; records the Authorization header."""

    answers: dict[str, tuple[int, str]] = {}
    seen_auth: list[str | None] = []

    def do_GET(self) -> None:
        self.seen_auth.append(self.headers.get("Authorization"))
        status, body = self.answers.get(self.path, (404, '{"error": "NotFound"}'))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


BEAT = (200, '{"nanosecond heartbeat": 1}')


@pytest.mark.parametrize(
    "answers, expected",
    [
        ({}, "does not answer like a Chroma server (HTTP 404 on /api/v2/heartbeat)"),
        ({"/api/v2/heartbeat": (200, "<html>Welcome to nginx</html>")}, "does not answer like"),
        ({"/api/v1/heartbeat": BEAT}, "runs an older Chroma (API v1)"),
        ({"/api/v2/heartbeat": BEAT, "/api/v2/version": (200, '"2.0.0"')}, "API version '2.0.0'"),
        ({"/api/v2/heartbeat": (401, '{"error": "Unauthorized"}')}, "refused the credentials"),
    ],
    ids=["404", "html", "chroma-0.x", "api-2", "401"],
)
def test_a_server_that_is_not_a_usable_chroma_says_what_to_do(
    tmp_path, knowledge, answers, expected
):
    handler = type("Handler", (NotChroma,), {"answers": answers, "seen_auth": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://zed-user:pa%3Ass@127.0.0.1:{server.server_port}/"
        with pytest.raises(IndexUnavailable) as caught:
            server_index(tmp_path, knowledge, url, "coach").build()
    finally:
        server.shutdown()
        server.server_close()
    message = str(caught.value)
    assert expected in message
    assert "pa:ss" not in message and "pa%3Ass" not in message and "zed-user" not in message
    assert f"127.0.0.1:{server.server_port}" in message
    assert handler.seen_auth[0] == "Basic " + base64.b64encode(b"zed-user:pa:ss").decode()


@pytest.mark.parametrize("url", ["localhost:8000", "ftp://127.0.0.1:8000", "http://:8000"])
def test_a_chroma_url_that_is_not_an_address_is_a_config_error(tmp_path, knowledge, url):
    with pytest.raises(ConfigError, match="COACH_CHROMA_URL .* is not an address like"):
        server_index(tmp_path, knowledge, url, "coach")
