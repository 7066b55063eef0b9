"""The conversation store on SQLite and on a real PostgreSQL, and the feedback export built on it."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
import yaml
from sqlalchemy import create_engine, text

from app.answer import CoachingAnswer
from app.cli import main as coach_main
from app.feedback_cli import expected_focus, export_feedback
from app.settings import Settings, get_settings
from app.store import DB_NAME, ConversationStore, StoreError, open_store, title_from
from app.store_database import forget_database, open_database, sqlite_url
from tests.pg_server import PostgresServer, free_port

ROOT = Path(__file__).resolve().parent.parent
SITUATION = "Our deadlines slip because nobody knows who owns which task."
ALICE = "https://issuer.example alice"
BOB = "https://issuer.example bob"

# The schema the store kept by hand before Alembic (app/store.py up to issue 13), verbatim.
HAND_KEPT_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    text TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'answered', 'failed')),
    error TEXT,
    answer_json TEXT,
    reply_to INTEGER REFERENCES messages(id) ON DELETE CASCADE,
    source TEXT,
    notices_json TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation_id, id);
CREATE TABLE IF NOT EXISTS feedback (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    rating INTEGER CHECK (rating IN (0, 1)),
    corrected_verdict TEXT,
    corrected_focus_json TEXT,
    comment TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


def answer(verdict: str | None = "management", focus: list[str] | None = None) -> CoachingAnswer:
    return CoachingAnswer(
        verdict=verdict,
        confidence=0.8 if verdict else 0.2,
        focus=focus if focus is not None else (["M1"] if verdict else []),
        coaching="Give every task one owner and a date.",
        citations=["management-vs-leadership#management-2"],
    )


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path) -> Iterator[str]:
    """A new, empty database: a SQLite file, or a database on the test PostgreSQL server."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / DB_NAME)
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database(f"t_{uuid.uuid4().hex[:16]}")
    yield url
    forget_database(url)


@pytest.fixture
def store(location: str) -> ConversationStore:
    return ConversationStore(location)


def answered(
    store: ConversationStore,
    text: str = SITUATION,
    reply: CoachingAnswer | None = None,
    owner: str = "local",
):
    conv = store.create_conversation(text, owner=owner)
    user = store.add_user_message(conv.id, text, owner=owner)
    return conv, user, store.add_answer(user.id, reply or answer(), owner=owner)


def run_python(code: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# ---------------------------------------------------------------- conversations


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("Short one", "Short one"),
        ("  Spaces\n\nand   lines  ", "Spaces and lines"),
        ("", "Untitled conversation"),
        (
            "Our deadlines slip because nobody knows who owns which task, and the team is tired",
            "Our deadlines slip because nobody knows who owns which…",
        ),
    ],
)
def test_title_comes_from_the_first_message(message: str, title: str) -> None:
    assert title_from(message) == title
    assert len(title_from(message)) <= 60


def test_conversations_are_listed_newest_activity_first(store: ConversationStore) -> None:
    first = store.create_conversation("First situation")
    second = store.create_conversation("Second situation")
    assert [c.title for c in store.list_conversations()] == [
        "Second situation",
        "First situation",
    ]
    store.add_user_message(first.id, "A follow-up")
    assert [c.id for c in store.list_conversations()] == [first.id, second.id]


def test_rename_and_delete(store: ConversationStore) -> None:
    conv, _, reply = answered(store)
    store.save_feedback(reply.id, rating=1)
    assert store.rename(conv.id, "  Owners   and dates ").title == "Owners and dates"
    with pytest.raises(StoreError, match="cannot be empty"):
        store.rename(conv.id, "   ")
    assert store.delete(conv.id) is True
    assert store.conversation(conv.id) is None
    assert store.messages(conv.id) == []
    assert store.feedback(reply.id) is None
    assert store.delete(conv.id) is False


def test_everything_survives_a_restart(location: str) -> None:
    first = ConversationStore(location)
    conv, _, reply = answered(first)
    first.save_feedback(reply.id, rating=0, corrected_verdict="both", comment="Half of it is trust")
    forget_database(location)  # what a new process starts from: no engine, no pool

    again = ConversationStore(location)
    (user, stored) = again.messages(conv.id)
    assert (user.text, user.status) == (SITUATION, "answered")
    assert stored.answer == reply.answer
    assert stored.feedback.corrected_verdict == "both"
    assert again.list_conversations()[0].title == title_from(SITUATION)


def test_sqlite_database_uses_wal(tmp_path) -> None:
    ConversationStore(tmp_path / DB_NAME).create_conversation("x")
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_delete_all_removes_only_that_owners_data(store: ConversationStore) -> None:
    answered(store, "Alice one", owner=ALICE)
    answered(store, "Alice two", owner=ALICE)
    _, _, kept = answered(store, "Bob's", owner=BOB)
    store.save_feedback(kept.id, rating=1, owner=BOB)
    assert store.delete_all(owner=ALICE) == 2
    assert store.list_conversations(owner=ALICE) == []
    assert [c.title for c in store.list_conversations(owner=BOB)] == ["Bob's"]
    assert store.feedback(kept.id, owner=BOB).rating == 1


def test_conversations_inactive_since_a_date_are_purged(store: ConversationStore) -> None:
    old = store.create_conversation("Old", owner=ALICE)
    store.create_conversation("New", owner=BOB)
    assert store.delete_inactive(datetime.now(UTC) - timedelta(days=1)) == 0
    cutoff = datetime.now(UTC) + timedelta(seconds=1)
    assert store.delete_inactive(cutoff) == 2
    assert store.conversation(old.id, owner=ALICE) is None


# ---------------------------------------------------------------- messages


def test_user_message_is_stored_before_any_answer(store: ConversationStore) -> None:
    conv = store.create_conversation(SITUATION)
    user = store.add_user_message(conv.id, SITUATION, source="notes.txt", notices=["Cut short."])
    (stored,) = store.messages(conv.id)
    assert (stored.id, stored.status, stored.source, stored.notices) == (
        user.id,
        "pending",
        "notes.txt",
        ["Cut short."],
    )


def test_failure_then_retry_keeps_one_user_message(store: ConversationStore) -> None:
    conv = store.create_conversation(SITUATION)
    user = store.add_user_message(conv.id, SITUATION)
    failed = store.mark_failed(user.id, "The LLM server is down: try again.")
    assert (failed.status, failed.error) == ("failed", "The LLM server is down: try again.")
    assert store.mark_pending(user.id).error is None
    store.add_answer(user.id, answer())
    assert [(m.role, m.status) for m in store.messages(conv.id)] == [
        ("user", "answered"),
        ("assistant", "answered"),
    ]


def test_an_answer_is_read_right_after_its_question(store: ConversationStore) -> None:
    conv = store.create_conversation("First")
    first = store.add_user_message(conv.id, "First")
    store.mark_failed(first.id, "down")
    second = store.add_user_message(conv.id, "Second")
    store.add_answer(second.id, answer())
    store.add_answer(first.id, answer("leadership", ["L3"]))  # the retry came later
    assert [(m.role, m.reply_to or m.id) for m in store.messages(conv.id)] == [
        ("user", first.id),
        ("assistant", first.id),
        ("user", second.id),
        ("assistant", second.id),
    ]


def test_history_holds_only_answered_turns_before_the_message(store: ConversationStore) -> None:
    conv = store.create_conversation("One")
    one = store.add_user_message(conv.id, "One")
    store.add_answer(one.id, answer())
    lost = store.add_user_message(conv.id, "Lost")
    store.mark_failed(lost.id, "down")
    three = store.add_user_message(conv.id, "Three")
    assert [(t.role, t.text) for t in store.history(conv.id, before=three.id)] == [
        ("user", "One"),
        ("assistant", "Give every task one owner and a date."),
    ]


def test_answer_to_a_deleted_message_is_refused(store: ConversationStore) -> None:
    conv = store.create_conversation("x")
    user = store.add_user_message(conv.id, "x")
    store.delete(conv.id)
    with pytest.raises(StoreError, match="no longer exists"):
        store.add_answer(user.id, answer())
    with pytest.raises(StoreError, match="no longer exists.*start a new one"):
        store.add_user_message(conv.id, "a follow-up in a tab still open")


def test_sessions_in_threads_can_write_at_once(store: ConversationStore) -> None:
    conv = store.create_conversation("shared")
    errors: list[Exception] = []

    def write(n: int) -> None:
        try:
            for i in range(10):
                user = store.add_user_message(conv.id, f"thread {n} message {i}")
                store.add_answer(user.id, answer())
        except Exception as exc:  # collected, so the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stored = store.messages(conv.id)
    assert len(stored) == 6 * 10 * 2
    assert {m.text for m in stored if m.role == "user"} == {
        f"thread {n} message {i}" for n in range(6) for i in range(10)
    }


def test_processes_starting_together_migrate_once_and_all_write(location: str) -> None:
    """Six processes open a new database at once: one migrates, every write lands."""
    code = (
        "from app.store import ConversationStore\n"
        f"store = ConversationStore({location!r})\n"
        "conv = store.create_conversation('from a process')\n"
        "store.add_user_message(conv.id, 'hello')\n"
        "print(conv.id)\n"
    )
    processes = [run_python(code) for _ in range(6)]
    outputs = [p.communicate(timeout=180) for p in processes]
    assert [p.returncode for p in processes] == [0] * 6, [err for _, err in outputs]
    ids = {out.strip() for out, _ in outputs}
    store = ConversationStore(location)
    assert {c.id for c in store.list_conversations()} == ids and len(ids) == 6
    assert all(len(store.messages(i)) == 1 for i in ids)
    engine = create_engine(location.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [("0002",)]
    engine.dispose()


# ---------------------------------------------------------------- owners


def owners_data(store: ConversationStore):
    conv, user, reply = answered(store, "Alice's private situation", owner=ALICE)
    store.save_feedback(reply.id, rating=0, corrected_verdict="both", owner=ALICE)
    return conv, user, reply


def test_each_owner_lists_and_opens_only_their_own(store: ConversationStore) -> None:
    alice, _, reply = owners_data(store)
    bob = store.create_conversation("Bob's situation", owner=BOB)
    assert [c.id for c in store.list_conversations(owner=ALICE)] == [alice.id]
    assert [c.id for c in store.list_conversations(owner=BOB)] == [bob.id]
    assert store.list_conversations() == []  # the local user is an owner like any other
    assert store.conversation(alice.id, owner=ALICE).owner == ALICE
    assert store.conversation(alice.id, owner=BOB) is None
    assert store.conversation(alice.id) is None
    assert len(store.messages(alice.id, owner=ALICE)) == 2
    assert store.feedback(reply.id, owner=ALICE).corrected_verdict == "both"
    assert [c.message_id for c in store.corrected_feedback(owner=ALICE)] == [reply.id]


@pytest.mark.parametrize("intruder", [BOB, "local", ALICE.upper(), ALICE + " "])
def test_nobody_else_can_read_alices_data(store: ConversationStore, intruder: str) -> None:
    conv, user, reply = owners_data(store)
    assert store.conversation(conv.id, owner=intruder) is None
    assert store.list_conversations(owner=intruder) == []
    assert store.messages(conv.id, owner=intruder) == []
    assert store.message(user.id, owner=intruder) is None
    assert store.message(reply.id, owner=intruder) is None
    assert store.history(conv.id, before=10**9, owner=intruder) == []
    assert store.feedback(reply.id, owner=intruder) is None
    assert store.corrected_feedback(owner=intruder) == []


@pytest.mark.parametrize("intruder", [BOB, "local"])
def test_nobody_else_can_change_or_delete_alices_data(
    store: ConversationStore, intruder: str
) -> None:
    conv, user, reply = owners_data(store)
    before = store.messages(conv.id, owner=ALICE)

    assert store.rename(conv.id, "Taken over", owner=intruder) is None
    assert store.delete(conv.id, owner=intruder) is False
    assert store.delete_all(owner=intruder) == 0
    for attempt, problem in [
        (lambda: store.add_user_message(conv.id, "injected", owner=intruder), "no longer exists"),
        (lambda: store.add_answer(user.id, answer("both"), owner=intruder), "no longer exists"),
        (lambda: store.mark_failed(user.id, "broken", owner=intruder), "no longer stored"),
        (lambda: store.mark_pending(user.id, owner=intruder), "no longer stored"),
        (lambda: store.save_feedback(reply.id, rating=1, owner=intruder), "stored answer"),
    ]:
        with pytest.raises(StoreError, match=problem):
            attempt()

    assert store.conversation(conv.id, owner=ALICE).title == "Alice's private situation"
    assert store.messages(conv.id, owner=ALICE) == before  # texts, statuses and feedback
    assert store.feedback(reply.id, owner=ALICE).rating == 0


def test_an_owner_is_required(store: ConversationStore) -> None:
    for owner in ("", "   "):
        with pytest.raises(StoreError, match="sign in again"):
            store.create_conversation("x", owner=owner)
        with pytest.raises(StoreError, match="sign in again"):
            store.list_conversations(owner=owner)


def test_the_operators_export_sees_every_owner(store: ConversationStore) -> None:
    _, _, alice_reply = owners_data(store)
    _, _, local_reply = answered(store, "Mine")
    store.save_feedback(local_reply.id, corrected_verdict="leadership")
    assert [c.message_id for c in store.corrected_feedback()] == [local_reply.id]
    everyone = store.corrected_feedback(owner=None)
    assert [c.message_id for c in everyone] == [alice_reply.id, local_reply.id]


# ---------------------------------------------------------------- the hand-kept SQLite schema


def hand_kept_database(path: Path, user_version: int = 1) -> dict[str, int]:
    """A conversations.db as the store before Alembic wrote it, with one of everything."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(HAND_KEPT_SCHEMA)
    conn.execute(f"PRAGMA user_version = {user_version}")
    rows = [
        ("c1", "Deadlines slip", "2026-11-01T09:00:00.000001+00:00", "2026-11-01T09:05:00+00:00"),
        ("c2", "Quiet team", "2026-11-02T09:00:00.000001+00:00", "2026-11-02T09:00:00+00:00"),
    ]
    conn.executemany("INSERT INTO conversations VALUES (?, ?, ?, ?)", rows)
    insert = (
        "INSERT INTO messages (conversation_id, role, text, status, error, answer_json, "
        "reply_to, source, notices_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    ids = {}
    ids["question"] = conn.execute(
        insert,
        ("c1", "user", SITUATION, "answered", None, None, None, "notes.txt", '["Cut short."]',
         "2026-11-01T09:00:01+00:00"),
    ).lastrowid  # fmt: skip
    ids["answer"] = conn.execute(
        insert,
        ("c1", "assistant", "Give every task one owner.", "answered", None,
         answer().model_dump_json(), ids["question"], None, None, "2026-11-01T09:00:02+00:00"),
    ).lastrowid  # fmt: skip
    ids["failed"] = conn.execute(
        insert,
        ("c2", "user", "Nobody speaks up.", "failed", "The LLM server is down.", None, None,
         None, "[]", "2026-11-02T09:00:01+00:00"),
    ).lastrowid  # fmt: skip
    # A deleted message leaves a gap: AUTOINCREMENT must not hand its id out again.
    gone = conn.execute(
        insert, ("c2", "user", "deleted", "pending", None, None, None, None, "[]", "x")
    ).lastrowid
    conn.execute("DELETE FROM messages WHERE id = ?", (gone,))
    ids["gone"] = gone
    conn.execute(
        "INSERT INTO feedback VALUES (?, 0, 'both', '[\"M1\", \"L3\"]', 'trust too', ?, ?)",
        (ids["answer"], "2026-11-01T10:00:00+00:00", "2026-11-01T10:00:00+00:00"),
    )
    conn.commit()
    conn.close()
    return ids


def test_a_hand_kept_database_migrates_without_losing_a_row(tmp_path) -> None:
    path = tmp_path / DB_NAME
    ids = hand_kept_database(path)

    store = ConversationStore(path)
    assert [(c.id, c.title, c.owner) for c in store.list_conversations()] == [
        ("c2", "Quiet team", "local"),
        ("c1", "Deadlines slip", "local"),
    ]
    question, reply = store.messages("c1")
    assert (question.id, question.source, question.notices) == (
        ids["question"],
        "notes.txt",
        ["Cut short."],
    )
    assert reply.answer == answer() and reply.reply_to == ids["question"]
    assert (reply.feedback.rating, reply.feedback.corrected_focus, reply.feedback.comment) == (
        0,
        ["M1", "L3"],
        "trust too",
    )
    (failed,) = store.messages("c2")
    assert (failed.status, failed.error) == ("failed", "The LLM server is down.")
    assert [c.situation for c in store.corrected_feedback()] == [SITUATION]
    assert store.conversation("c1", owner=BOB) is None

    # New rows go on from the old ones; a deleted message's id is not reused.
    follow_up = store.add_user_message("c1", "And now?")
    assert follow_up.id > ids["gone"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002",)]
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone() == (4,)

    forget_database(sqlite_url(path))  # a second start finds nothing to do
    assert len(ConversationStore(path).messages("c1")) == 3


def test_a_database_from_an_unknown_hand_kept_version_is_refused(tmp_path) -> None:
    path = tmp_path / DB_NAME
    hand_kept_database(path, user_version=7)
    with pytest.raises(StoreError, match="unknown version of the coach") as raised:
        ConversationStore(path).list_conversations()
    assert str(tmp_path) not in raised.value.message
    with sqlite3.connect(path) as conn:  # left as it was
        assert conn.execute("SELECT COUNT(*) FROM conversations").fetchone() == (2,)


def test_a_database_from_a_newer_coach_is_refused(location: str) -> None:
    store = ConversationStore(location)
    store.create_conversation("made by this version")
    forget_database(location)
    engine = create_engine(location.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(StoreError, match="newer version of the coach.*update this one"):
        ConversationStore(location).list_conversations()


# ---------------------------------------------------------------- errors


def test_a_damaged_file_gives_a_plain_error_without_its_path(tmp_path, caplog) -> None:
    path = tmp_path / DB_NAME
    path.write_bytes(b"this is not a database, just some bytes" * 100)
    with (
        caplog.at_level(logging.ERROR, logger="app.store_database"),
        pytest.raises(StoreError) as raised,
    ):
        ConversationStore(path).list_conversations()
    message = raised.value.message
    assert "damaged" in message and "Move it out of the data folder" in message
    assert str(tmp_path) not in message
    assert str(path) in caplog.text and "not a database" in caplog.text  # the log has it all

    path.unlink()  # what the message says to do; the same process then starts afresh
    assert ConversationStore(path).list_conversations() == []


def test_a_damaged_file_is_reported_where_the_app_opens_the_store(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("COACH_DATABASE_URL", raising=False)
    (tmp_path / DB_NAME).write_bytes(b"\x00garbage" * 500)
    with pytest.raises(StoreError, match="damaged"):
        open_store(Settings(data_dir=tmp_path))


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("refused", "cannot be reached: check that the server is running"),
        ("password", "refused the user name or password"),
        ("database", "that database does not exist: create it"),
    ],
)
def test_postgres_connection_problems_say_what_to_do(
    postgres: PostgresServer,
    problem: str,
    expected: str,
) -> None:
    secret = "s3cret-Pa55word"
    if problem == "refused":  # a free port: nothing listens there
        url = f"postgresql://coach:{secret}@127.0.0.1:{free_port()}/coach_test"
    elif problem == "password":
        url = postgres.url_for("coach_test", password=secret)
    else:
        url = postgres.url_for("no_such_database")
    try:
        with pytest.raises(StoreError, match=expected) as raised:
            ConversationStore(url).list_conversations()
    finally:
        forget_database(url)
    message = raised.value.message
    assert "The conversation database at postgresql" in message
    assert "127.0.0.1" in message
    assert secret not in message and postgres.password not in message
    assert "coach:" not in message  # no user name either


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://coach:pw@db.example/coach", "not supported: only SQLite and PostgreSQL"),
        ("sqlite://", "needs a file"),
        ("not a url://at all", "not one the coach can use"),
    ],
)
def test_unusable_database_urls_are_refused(url: str, expected: str) -> None:
    with pytest.raises(StoreError, match=expected) as raised:
        open_database(url)
    assert "pw@" not in raised.value.message
    assert "COACH_DATABASE_URL" in raised.value.message


def test_open_store_uses_the_data_folder_or_the_configured_url(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("COACH_DATABASE_URL", raising=False)
    store = open_store(Settings(data_dir=tmp_path / "data"))
    store.create_conversation("kept in the data folder")
    assert (tmp_path / "data" / DB_NAME).is_file()

    elsewhere = tmp_path / "elsewhere.db"
    monkeypatch.setenv("COACH_DATABASE_URL", f"sqlite:///{elsewhere}")
    moved = open_store(Settings(data_dir=tmp_path / "data"))
    assert moved.list_conversations() == []
    moved.create_conversation("kept elsewhere")
    with sqlite3.connect(elsewhere) as conn:
        assert conn.execute("SELECT title FROM conversations").fetchall() == [("kept elsewhere",)]
    assert "elsewhere.db" not in repr(Settings(data_dir=tmp_path))  # a URL is a secret


# ---------------------------------------------------------------- feedback


def test_feedback_updates_only_the_fields_given(store: ConversationStore) -> None:
    _, _, reply = answered(store)
    store.save_feedback(reply.id, rating=1)
    store.save_feedback(reply.id, corrected_verdict="both", corrected_focus=["M1", "L2"])
    saved = store.save_feedback(reply.id, comment="  needs trust too  ")
    assert (saved.rating, saved.corrected_verdict, saved.corrected_focus, saved.comment) == (
        1,
        "both",
        ["M1", "L2"],
        "needs trust too",
    )
    assert store.save_feedback(reply.id, rating=None).rating is None


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"rating": 5}, "thumbs up"),
        ({"corrected_verdict": "neither"}, "must be one of"),
        ({"corrected_focus": ["X9"]}, "Focus codes"),
    ],
)
def test_invalid_feedback_is_refused(store: ConversationStore, fields: dict, problem: str) -> None:
    _, _, reply = answered(store)
    with pytest.raises(StoreError, match=problem):
        store.save_feedback(reply.id, **fields)


def test_feedback_only_on_answers(store: ConversationStore) -> None:
    _, user, _ = answered(store)
    with pytest.raises(StoreError, match="stored answer"):
        store.save_feedback(user.id, rating=1)


def test_corrected_feedback_comes_with_the_situation(store: ConversationStore) -> None:
    _, _, rated = answered(store, "Only rated")
    store.save_feedback(rated.id, rating=1)
    _, _, corrected = answered(store, SITUATION)
    store.save_feedback(corrected.id, rating=0, corrected_verdict="leadership", comment="trust")
    (found,) = store.corrected_feedback()
    assert (found.message_id, found.situation, found.corrected_verdict, found.comment) == (
        corrected.id,
        SITUATION,
        "leadership",
        "trust",
    )
    assert found.answer.verdict == "management"


# ---------------------------------------------------------------- feedback export


@pytest.fixture
def sqlite_store(tmp_path) -> Iterator[ConversationStore]:
    yield ConversationStore(tmp_path / DB_NAME)
    forget_database(sqlite_url(tmp_path / DB_NAME))


@pytest.mark.parametrize(
    ("given", "corrected", "user_focus", "expected"),
    [
        # verdict confirmed: the answer's focus
        (answer("management", ["M1", "M2"]), "management", [], ["M1", "M2"]),
        # the user's own focus choice wins
        (answer("management", ["M1"]), "leadership", ["L3"], ["L3"]),
        # wrong verdict: the answer's codes that fit the corrected one
        (answer("both", ["M2", "L1"]), "leadership", [], ["L1"]),
        (answer("management", ["M2"]), "both", ["M2", "L2"], ["M2", "L2"]),
        # nothing fits: the case cannot be exported
        (answer("management", ["M2"]), "leadership", [], None),
        (answer(None), "both", [], None),
    ],
)
def test_expected_focus(sqlite_store, given, corrected, user_focus, expected) -> None:
    _, _, reply = answered(sqlite_store, reply=given)
    sqlite_store.save_feedback(reply.id, corrected_verdict=corrected, corrected_focus=user_focus)
    (correction,) = sqlite_store.corrected_feedback()
    assert expected_focus(correction) == expected


def test_export_writes_a_valid_suite_and_says_what_it_skipped(sqlite_store, tmp_path) -> None:
    store = sqlite_store
    _, _, kept = answered(store, SITUATION, answer("management", ["M1"]))
    store.save_feedback(kept.id, rating=0, corrected_verdict="both", corrected_focus=["M1", "L3"])
    _, _, confirmed = answered(
        store, "Stock counts are always wrong.", answer("management", ["M3"])
    )
    store.save_feedback(confirmed.id, rating=1, corrected_verdict="management")
    _, _, unfit = answered(store, "Nobody trusts me.", answer("management", ["M2"]))
    store.save_feedback(unfit.id, corrected_verdict="leadership")

    out = tmp_path / "evals" / "feedback.yaml"
    written, skipped = export_feedback(store, out)
    assert written == 2
    assert len(skipped) == 1 and skipped[0].startswith(f"feedback-{unfit.id}:")

    suite = yaml.safe_load(out.read_text())
    schema = json.loads((ROOT / "evals" / "suite.schema.json").read_text())
    jsonschema.validate(suite, schema)
    assert suite["name"] == "feedback"
    assert suite["cases"] == [
        {
            "id": f"feedback-{kept.id}",
            "situation": SITUATION,
            "expected_verdict": "both",
            "expected_focus": ["M1", "L3"],
            "tags": ["feedback", "thumbs-down", "verdict-corrected"],
        },
        {
            "id": f"feedback-{confirmed.id}",
            "situation": "Stock counts are always wrong.",
            "expected_verdict": "management",
            "expected_focus": ["M3"],
            "tags": ["feedback"],
        },
    ]


def test_export_command(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("COACH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("COACH_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        store = ConversationStore(tmp_path / DB_NAME)
        out = tmp_path / "feedback.yaml"
        assert coach_main(["feedback", "export", "--out", str(out)]) == 0
        assert "nothing was written" in capsys.readouterr().out
        assert not out.exists()

        _, _, reply = answered(store)
        store.save_feedback(reply.id, corrected_verdict="management")
        assert coach_main(["feedback", "export", "--out", str(out)]) == 0
        assert f"Wrote 1 corrected answer(s) to {out}." in capsys.readouterr().out
        assert yaml.safe_load(out.read_text())["cases"][0]["situation"] == SITUATION

        missing = tmp_path / "nope.db"
        assert coach_main(["feedback", "export", "--db", str(missing), "--out", str(out)]) == 1
        assert "does not exist" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
