"""Concurrent users: K people at once, each sending M messages, on SQLite and on PostgreSQL.

Each simulated user is a thread, as each browser session is in one Streamlit server, and
makes the calls the web app makes for a message: a conversation for the first one, the
user message stored before the coach is asked, the earlier turns read back as history,
the offline coach's answer streamed to the end, and the answer stored. The users share
one store and one coach, and each is its own owner. A message's latency runs from
storing it to its answer stored. Afterwards every user's conversation is read back,
under that user's owner, and compared with what the user sent.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from app.coach import Coach
from app.engines.offline import OfflineEngine
from app.store import ConversationStore
from app.store_database import forget_database, sqlite_url
from benchmarks import synthetic
from benchmarks.coach_data import CoachData
from benchmarks.figures import Section, Target

BACKENDS = ("sqlite", "postgres")
WARM_UP = 3

TARGETS: tuple[Target, ...] = tuple(
    target
    for backend, name in (("sqlite", "SQLite"), ("postgres", "PostgreSQL"))
    for target in (
        Target(
            f"Concurrent users, errors ({name})",
            f"concurrency.{backend}_errors",
            "max",
            0,
            "messages",
        ),
        Target(
            f"Concurrent users, messages lost ({name})",
            f"concurrency.{backend}_lost",
            "max",
            0,
            "messages",
        ),
    )
)


@dataclass
class Tally:
    """What the users sent and what the store holds for them afterwards."""

    sent: int = 0
    stored: int = 0
    answered: int = 0
    misplaced: int = 0  # stored under another user's conversation, or in the wrong order
    problems: list[str] = field(default_factory=list)


@dataclass
class Run:
    """One backend's run: per-message latencies (ms), errors, and the read-back tally."""

    latencies_ms: list[float]
    errors: list[str]
    seconds: float
    tally: Tally


def owner_of(user: int) -> str:
    return f"bench https://issuer.example user-{user:02d}"


def send_all(
    coach: Coach, store: ConversationStore, texts: list[list[str]]
) -> tuple[list[float], list[str], float]:
    """Every user (one thread each, started together) sends their texts in turn."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(texts))

    def user(n: int) -> None:
        owner = owner_of(n)
        conversation_id = None
        start.wait()
        for text in texts[n]:
            started = time.perf_counter()
            try:
                if conversation_id is None:
                    conversation_id = store.create_conversation(text, owner=owner).id
                turn = store.add_user_message(conversation_id, text, owner=owner)
                history = store.history(conversation_id, before=turn.id, owner=owner)
                stream = coach.ask(text, history)
                for _ in stream:
                    pass
                store.add_answer(turn.id, stream.result(), owner=owner)
            except Exception as exc:  # counted: the figure is how many there were
                with lock:
                    errors.append(f"user {n}: {type(exc).__name__}: {exc}")
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=user, args=(n,)) for n in range(len(texts))]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - began


def read_back(store: ConversationStore, texts: list[list[str]]) -> Tally:
    """Compare each user's stored conversation, read as that user, with what they sent."""
    tally = Tally(sent=sum(len(t) for t in texts))
    for n, sent in enumerate(texts):
        owner = owner_of(n)
        conversations = store.list_conversations(owner=owner)
        if len(conversations) != 1:
            tally.problems.append(f"user {n}: {len(conversations)} conversations, expected 1")
        stored = [m for c in conversations for m in store.messages(c.id, owner=owner)]
        questions = [m for m in stored if m.role == "user"]
        answers = {m.reply_to for m in stored if m.role == "assistant" and m.answer is not None}
        tally.stored += sum(1 for m in questions if m.text in sent)
        tally.answered += sum(1 for m in questions if m.id in answers and m.status == "answered")
        if [m.text for m in questions] != sent:
            tally.misplaced += sum(1 for m in questions if m.text not in sent)
            tally.problems.append(f"user {n}: stored messages differ from the ones sent")
    return tally


@contextlib.contextmanager
def database(backend: str, postgres_url: str | None = None) -> Iterator[str]:
    """A new, empty database for one run: a SQLite file, or a PostgreSQL database (on the
    server given, else on a throwaway server started as the tests start theirs)."""
    import tempfile
    from pathlib import Path

    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="coach-bench-db-") as folder:
            url = sqlite_url(Path(folder) / "conversations.db")
            try:
                yield url
            finally:
                forget_database(url)
        return
    if postgres_url is not None:
        try:
            yield postgres_url
        finally:
            forget_database(postgres_url)
        return
    from tests.pg_server import PostgresServer

    with PostgresServer() as server:
        url = server.create_database(f"bench_{uuid.uuid4().hex[:8]}")
        try:
            yield url
        finally:
            forget_database(url)  # close the pool before the server stops


def run_backend(coach: Coach, url: str, texts: list[list[str]]) -> Run:
    store = ConversationStore(url)
    store.open()  # the schema is made before the clock starts, as at an app's start
    latencies, errors, seconds = send_all(coach, store, texts)
    return Run(latencies, errors, seconds, read_back(store, texts))


def run(
    data: CoachData,
    users: int,
    messages: int,
    backends: tuple[str, ...] = BACKENDS,
    postgres_url: str | None = None,
) -> Section:
    """``users`` simulated users at once, ``messages`` each, on every backend in turn."""
    section = Section("concurrency")
    coach = Coach(
        OfflineEngine(data.settings),
        settings=data.settings,
        index=data.index,
        classifiers=data.classifiers,
    )
    coach.warm_up()
    for text in synthetic.situations(WARM_UP, seed=31):  # first answers fill lazy caches
        coach.ask(text).result()
    # Each backend gets its own situations: the embedder caches texts it has seen, so a
    # second run on the same texts would be faster for that reason alone.
    situations = synthetic.situations(users * messages * len(backends), seed=29)
    for turn, backend in enumerate(backends):
        mine = situations[turn * users * messages : (turn + 1) * users * messages]
        texts = [mine[n * messages : (n + 1) * messages] for n in range(users)]
        with database(backend, postgres_url) as url:
            result = run_backend(coach, url, texts)
        tally = result.tally
        name = "SQLite" if backend == "sqlite" else "PostgreSQL"
        section.add(
            f"{backend}_message_ms",
            f"{users} users at once on {name}: message stored to answer stored",
            "ms",
            result.latencies_ms,
        )
        section.add(
            f"{backend}_errors",
            f"  {name}: messages that failed (must be 0)",
            "messages",
            [float(len(result.errors))],
        )
        section.add(
            f"{backend}_lost",
            f"  {name}: messages sent but not stored and answered (must be 0)",
            "messages",
            [float(tally.sent - tally.answered)],
        )
        section.details[backend] = {
            "users": users,
            "messages_per_user": messages,
            "sent": tally.sent,
            "stored": tally.stored,
            "answered": tally.answered,
            "misplaced": tally.misplaced,
            "errors": result.errors[:5],
            "problems": tally.problems[:5],
            "wall_s": round(result.seconds, 2),
            "messages_per_s": round(tally.sent / result.seconds, 2) if result.seconds else None,
        }
    section.details["how"] = (
        "threads in one process sharing one offline coach and one store, each user its own "
        "owner; latency from the user message stored to the answer stored; each backend "
        "gets different situations (the embedder caches texts)"
    )
    return section
