"""The conversation store (SQLite) and the feedback export built on it."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import jsonschema
import pytest
import yaml

from app.answer import CoachingAnswer
from app.cli import main as coach_main
from app.feedback_cli import expected_focus, export_feedback
from app.store import DB_NAME, ConversationStore, StoreError, title_from

ROOT = Path(__file__).resolve().parent.parent
SITUATION = "Our deadlines slip because nobody knows who owns which task."


def answer(verdict: str | None = "management", focus: list[str] | None = None) -> CoachingAnswer:
    return CoachingAnswer(
        verdict=verdict,
        confidence=0.8 if verdict else 0.2,
        focus=focus if focus is not None else (["M1"] if verdict else []),
        coaching="Give every task one owner and a date.",
        citations=["management-vs-leadership#management-2"],
    )


@pytest.fixture
def store(tmp_path) -> ConversationStore:
    return ConversationStore(tmp_path / DB_NAME)


def answered(store: ConversationStore, text: str = SITUATION, reply: CoachingAnswer | None = None):
    conv = store.create_conversation(text)
    user = store.add_user_message(conv.id, text)
    return conv, user, store.add_answer(user.id, reply or answer())


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


def test_everything_survives_a_restart(tmp_path) -> None:
    path = tmp_path / DB_NAME
    first = ConversationStore(path)
    conv, _, reply = answered(first)
    first.save_feedback(reply.id, rating=0, corrected_verdict="both", comment="Half of it is trust")

    again = ConversationStore(path)  # a new process would build a new store
    (user, stored) = again.messages(conv.id)
    assert (user.text, user.status) == (SITUATION, "answered")
    assert stored.answer == reply.answer
    assert stored.feedback.corrected_verdict == "both"
    assert again.list_conversations()[0].title == title_from(SITUATION)


def test_database_uses_wal(store: ConversationStore, tmp_path) -> None:
    store.create_conversation("x")
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


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
    assert len(store.messages(conv.id)) == 6 * 10 * 2


def test_unusable_database_gives_a_plain_error(tmp_path) -> None:
    path = tmp_path / DB_NAME
    path.write_bytes(b"this is not a database, just some bytes" * 100)
    with pytest.raises(StoreError, match="could not be opened.*COACH_DATA_DIR"):
        ConversationStore(path).list_conversations()


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
def test_expected_focus(store, given, corrected, user_focus, expected) -> None:
    _, _, reply = answered(store, reply=given)
    store.save_feedback(reply.id, corrected_verdict=corrected, corrected_focus=user_focus)
    (correction,) = store.corrected_feedback()
    assert expected_focus(correction) == expected


def test_export_writes_a_valid_suite_and_says_what_it_skipped(store, tmp_path) -> None:
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
    from app.settings import get_settings

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
