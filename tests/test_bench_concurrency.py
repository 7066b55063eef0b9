"""The concurrent-users benchmark at a tiny size, on SQLite and PostgreSQL. No timing asserted."""

from __future__ import annotations

import uuid

import pytest

from app.store import ConversationStore
from benchmarks import concurrency
from benchmarks.coach_data import CoachData
from benchmarks.figures import TARGETS
from benchmarks.machine import machine_info
from benchmarks.run import Sizes, build_report
from tests.coach_env import shared_env
from tests.pg_server import PostgresServer

USERS, MESSAGES = 3, 2


@pytest.fixture(scope="module")
def data() -> CoachData:
    settings, _, _ = shared_env()
    return CoachData.prepare(settings.data_dir)


def test_every_message_of_every_user_is_stored_on_both_databases(
    data: CoachData,
    postgres: PostgresServer,
) -> None:
    url = postgres.create_database(f"bench_{uuid.uuid4().hex[:8]}")
    section = concurrency.run(data, USERS, MESSAGES, postgres_url=url)
    figures = {f.key: f.summary() for f in section.figures}
    for backend in ("sqlite", "postgres"):
        assert figures[f"concurrency.{backend}_message_ms"]["n"] == USERS * MESSAGES
        assert figures[f"concurrency.{backend}_errors"]["max"] == 0
        assert figures[f"concurrency.{backend}_lost"]["max"] == 0
        details = section.details[backend]
        assert (details["sent"], details["stored"], details["answered"]) == (6, 6, 6)
        assert details["problems"] == [] and details["misplaced"] == 0
    report = build_report(
        [section],
        {},
        {"concurrency": 1.0},
        command="test",
        sizes=Sizes.quick(),
        quick=True,
        machine=machine_info(),
        targets=TARGETS + concurrency.TARGETS,
    )
    judged = {t["figure"]: t["result"] for t in report["targets"]}
    assert judged["concurrency.sqlite_errors"] == "pass"
    assert judged["concurrency.postgres_lost"] == "pass"


def test_read_back_counts_a_lost_message_and_one_in_the_wrong_conversation(tmp_path) -> None:
    store = ConversationStore(tmp_path / "conversations.db")
    texts = [["a first", "a second"], ["b first", "b second"]]
    for n, sent in enumerate(texts):
        owner = concurrency.owner_of(n)
        conv = store.create_conversation(sent[0], owner=owner)
        for text in sent[:1] if n == 0 else sent:  # user 0's second message never arrived
            turn = store.add_user_message(conv.id, text, owner=owner)
            store.add_answer(turn.id, shared_answer(), owner=owner)
    stray = store.list_conversations(owner=concurrency.owner_of(1))[0]
    store.add_user_message(stray.id, "a second", owner=concurrency.owner_of(1))  # mixed up

    tally = concurrency.read_back(store, texts)
    assert (tally.sent, tally.answered) == (4, 3)
    assert tally.misplaced == 1
    assert any(p.startswith("user 0") for p in tally.problems)


def shared_answer():
    from app.answer import CoachingAnswer

    return CoachingAnswer(
        verdict="management",
        confidence=0.8,
        focus=["M1"],
        coaching="Give every task one owner and a date.",
        citations=["management-vs-leadership#management-2"],
    )
