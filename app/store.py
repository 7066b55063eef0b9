"""Conversations, messages and feedback, each conversation private to its owner.

The one module the app stores conversations through. SQL goes through SQLAlchemy Core
(``app.store_schema``) to SQLite or PostgreSQL (``app.store_database``). Every method
takes the owner: "local" in the single-user app, "<issuer> <subject>" once signed in.
Another owner's conversation, message or feedback is answered as if it did not exist.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, func, insert, select, update

from app.answer import CoachingAnswer, Turn
from app.passages import FOCUS_CODES, VERDICTS, Verdict
from app.settings import Settings, get_settings
from app.store_database import (
    DB_NAME,
    Database,
    StoreError,
    database_url,
    open_database,
    sqlite_url,
)
from app.store_schema import conversations as c_t
from app.store_schema import feedback as f_t
from app.store_schema import messages as m_t

__all__ = [
    "DB_NAME",
    "KEEP",
    "LOCAL_OWNER",
    "Conversation",
    "ConversationStore",
    "CorrectedAnswer",
    "Feedback",
    "StoreError",
    "StoredMessage",
    "open_store",
    "title_from",
]

TITLE_CHARS = 60
LOCAL_OWNER = "local"
GONE = "This conversation no longer exists (it was deleted): start a new one."


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP
"""Passed to ``save_feedback`` for a field that should stay as it is."""


@dataclass(frozen=True)
class Conversation:
    """A stored conversation, titled from its first message."""

    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    owner: str = LOCAL_OWNER


@dataclass(frozen=True)
class Feedback:
    """A user's thumbs (1 up, 0 down) and optional correction of one answer."""

    message_id: int
    rating: int | None
    corrected_verdict: Verdict | None
    corrected_focus: list[str]
    comment: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StoredMessage:
    """One turn: a user message (pending, answered or failed) or the coach's answer to it."""

    id: int
    conversation_id: str
    role: str
    text: str
    status: str
    created_at: datetime
    error: str | None = None
    answer: CoachingAnswer | None = None
    reply_to: int | None = None
    source: str | None = None
    notices: list[str] = field(default_factory=list)
    feedback: Feedback | None = None


@dataclass(frozen=True)
class CorrectedAnswer:
    """An answer a user corrected, with the message it replied to."""

    message_id: int
    conversation_id: str
    situation: str
    answer: CoachingAnswer
    corrected_verdict: Verdict
    corrected_focus: list[str]
    comment: str
    rating: int | None
    created_at: datetime


def title_from(message: str) -> str:
    """A conversation title: the first line of the first message, shortened."""
    words = " ".join(message.split())
    if not words:
        return "Untitled conversation"
    if len(words) <= TITLE_CHARS:
        return words
    return words[: TITLE_CHARS - 1].rsplit(" ", 1)[0].rstrip(".,;:") + "…"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _owner(owner: str) -> str:
    if not isinstance(owner, str) or not owner.strip():
        raise StoreError(
            "Conversations are kept per person, and no person was given: sign in again."
        )
    return owner


class ConversationStore:
    """Conversations in SQLite or PostgreSQL; safe to share between Streamlit's session threads.

    ``location`` is a SQLite file (a path) or a database URL. Nothing is opened until the
    first call, which creates or migrates the schema once per process.
    """

    def __init__(self, location: Path | str) -> None:
        if isinstance(location, Path) or "://" not in str(location):
            self.url = sqlite_url(Path(location))
        else:
            self.url = str(location)

    def _db(self) -> Database:
        return open_database(self.url)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._db().read() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._db().write() as conn:
            yield conn

    def open(self) -> None:
        """Connect and migrate now rather than on the first call (once per process)."""
        self._db()

    def close(self) -> None:
        """Give back the pooled server connections (the next call opens new ones)."""
        from app.store_database import forget_database

        forget_database(self.url)

    # ---------------------------------------------------------------- conversations

    def create_conversation(self, first_message: str, *, owner: str = LOCAL_OWNER) -> Conversation:
        """A new conversation of ``owner``, titled from its first message."""
        owner = _owner(owner)
        now = _now()
        conv_id = uuid.uuid4().hex
        title = title_from(first_message)
        with self._write() as conn:
            conn.execute(
                insert(c_t).values(
                    id=conv_id, title=title, created_at=now, updated_at=now, owner=owner
                )
            )
        return Conversation(conv_id, title, _time(now), _time(now), owner)

    def conversation(self, conv_id: str, *, owner: str = LOCAL_OWNER) -> Conversation | None:
        """The conversation, or None when it does not exist or belongs to someone else."""
        with self._read() as conn:
            row = conn.execute(
                select(c_t).where(c_t.c.id == conv_id, c_t.c.owner == _owner(owner))
            ).first()
        return _conversation(row) if row else None

    def list_conversations(
        self, limit: int = 100, *, owner: str = LOCAL_OWNER
    ) -> list[Conversation]:
        """The owner's most recently active conversations first."""
        with self._read() as conn:
            rows = conn.execute(
                select(c_t)
                .where(c_t.c.owner == _owner(owner))
                .order_by(c_t.c.updated_at.desc(), c_t.c.created_at.desc())
                .limit(limit)
            ).all()
        return [_conversation(r) for r in rows]

    def rename(self, conv_id: str, title: str, *, owner: str = LOCAL_OWNER) -> Conversation | None:
        """Give a conversation a new title; a blank title is refused. None if not the owner's."""
        title = " ".join(title.split())
        if not title:
            raise StoreError("A conversation title cannot be empty: type a few words.")
        with self._write() as conn:
            conn.execute(
                update(c_t)
                .where(c_t.c.id == conv_id, c_t.c.owner == _owner(owner))
                .values(title=title[:200])
            )
        return self.conversation(conv_id, owner=owner)

    def delete(self, conv_id: str, *, owner: str = LOCAL_OWNER) -> bool:
        """Delete a conversation with its messages and feedback; False if the owner has none."""
        with self._write() as conn:
            result = conn.execute(
                delete(c_t).where(c_t.c.id == conv_id, c_t.c.owner == _owner(owner))
            )
        return result.rowcount > 0

    def delete_all(self, *, owner: str) -> int:
        """Delete every conversation of ``owner`` with its messages and feedback; how many."""
        with self._write() as conn:
            result = conn.execute(delete(c_t).where(c_t.c.owner == _owner(owner)))
        return result.rowcount

    def delete_inactive(self, before: datetime) -> int:
        """Delete every conversation (any owner) last active before ``before``; how many."""
        with self._write() as conn:
            result = conn.execute(
                delete(c_t).where(
                    c_t.c.updated_at < before.astimezone(UTC).isoformat(timespec="microseconds")
                )
            )
        return result.rowcount

    # ---------------------------------------------------------------- messages

    def add_user_message(
        self,
        conv_id: str,
        text: str,
        *,
        source: str | None = None,
        notices: list[str] | None = None,
        owner: str = LOCAL_OWNER,
    ) -> StoredMessage:
        """Save what the user sent, as pending, before the engine is asked."""
        now = _now()
        with self._write() as conn:
            if _lock_conversation(conn, conv_id, owner) is None:
                raise StoreError(GONE)
            result = conn.execute(
                insert(m_t).values(
                    conversation_id=conv_id,
                    role="user",
                    text=text,
                    status="pending",
                    source=source,
                    notices_json=json.dumps(notices or []),
                    created_at=now,
                )
            )
            conn.execute(update(c_t).where(c_t.c.id == conv_id).values(updated_at=now))
            message_id = result.inserted_primary_key[0]
        return self._message(message_id, owner)

    def mark_pending(self, message_id: int, *, owner: str = LOCAL_OWNER) -> StoredMessage:
        """Put a failed user message back in the queue, for a retry."""
        with self._write() as conn:
            conn.execute(
                update(m_t)
                .where(m_t.c.id == message_id, m_t.c.role == "user", _owned(owner))
                .values(status="pending", error=None)
            )
        return self._message(message_id, owner)

    def add_answer(
        self, user_message_id: int, answer: CoachingAnswer, *, owner: str = LOCAL_OWNER
    ) -> StoredMessage:
        """Store the coach's answer to a user message, and mark that message answered."""
        now = _now()
        with self._write() as conn:
            conv_id = conn.execute(
                select(m_t.c.conversation_id).where(m_t.c.id == user_message_id, _owned(owner))
            ).scalar()
            if conv_id is None or _lock_conversation(conn, conv_id, owner) is None:
                raise StoreError("The message being answered no longer exists (it was deleted).")
            result = conn.execute(
                insert(m_t).values(
                    conversation_id=conv_id,
                    role="assistant",
                    text=answer.coaching,
                    status="answered",
                    answer_json=answer.model_dump_json(),
                    reply_to=user_message_id,
                    created_at=now,
                )
            )
            conn.execute(
                update(m_t).where(m_t.c.id == user_message_id).values(status="answered", error=None)
            )
            conn.execute(update(c_t).where(c_t.c.id == conv_id).values(updated_at=now))
            message_id = result.inserted_primary_key[0]
        return self._message(message_id, owner)

    def mark_failed(
        self, message_id: int, error: str, *, owner: str = LOCAL_OWNER
    ) -> StoredMessage:
        """Record that the engine failed on a user message; the message itself stays."""
        with self._write() as conn:
            conn.execute(
                update(m_t)
                .where(m_t.c.id == message_id, _owned(owner))
                .values(status="failed", error=error)
            )
        return self._message(message_id, owner)

    def message(self, message_id: int, *, owner: str = LOCAL_OWNER) -> StoredMessage | None:
        """One message of the owner's, or None."""
        with self._read() as conn:
            row = conn.execute(_message_select(owner).where(m_t.c.id == message_id)).first()
        return _message(row) if row else None

    def _message(self, message_id: int | None, owner: str) -> StoredMessage:
        found = self.message(message_id, owner=owner) if message_id is not None else None
        if found is None:
            raise StoreError("The message is no longer stored (its conversation was deleted).")
        return found

    def messages(self, conv_id: str, *, owner: str = LOCAL_OWNER) -> list[StoredMessage]:
        """The conversation's messages in reading order: each answer right after its question."""
        with self._read() as conn:
            rows = conn.execute(
                _message_select(owner)
                .where(m_t.c.conversation_id == conv_id)
                .order_by(func.coalesce(m_t.c.reply_to, m_t.c.id), m_t.c.id)
            ).all()
        return [_message(r) for r in rows]

    def history(self, conv_id: str, before: int, *, owner: str = LOCAL_OWNER) -> list[Turn]:
        """The answered turns that come before user message ``before``, as engine context."""
        turns: list[Turn] = []
        messages = self.messages(conv_id, owner=owner)
        answered = {m.reply_to for m in messages if m.role == "assistant"}
        for m in messages:
            if m.id == before:
                break
            if m.role == "user" and m.id in answered:
                turns.append(Turn(role="user", text=m.text))
            elif m.role == "assistant":
                turns.append(Turn(role="assistant", text=m.text))
        return turns

    # ---------------------------------------------------------------- feedback

    def save_feedback(
        self,
        message_id: int,
        *,
        rating: int | None | _Keep = KEEP,
        corrected_verdict: str | None | _Keep = KEEP,
        corrected_focus: list[str] | None | _Keep = KEEP,
        comment: str | None | _Keep = KEEP,
        owner: str = LOCAL_OWNER,
    ) -> Feedback:
        """Create or update the feedback on an answer; fields left as KEEP are unchanged."""
        if rating is not KEEP and rating not in (None, 0, 1):
            raise StoreError("A rating is thumbs up (1) or thumbs down (0).")
        if corrected_verdict is not KEEP and corrected_verdict not in (None, *VERDICTS):
            raise StoreError(f"A corrected verdict must be one of {', '.join(VERDICTS)}.")
        values: dict[str, Any] = {}
        if rating is not KEEP:
            values["rating"] = rating
        if corrected_verdict is not KEEP:
            values["corrected_verdict"] = corrected_verdict
        if corrected_focus is not KEEP:
            codes = list(dict.fromkeys(corrected_focus or []))
            if any(c not in FOCUS_CODES for c in codes):
                raise StoreError(f"Focus codes must be among {', '.join(FOCUS_CODES)}.")
            values["corrected_focus_json"] = json.dumps(codes) if codes else None
        if comment is not KEEP:
            values["comment"] = (comment.strip() or None) if comment is not None else None
        now = _now()
        with self._write() as conn:
            role = conn.execute(
                select(m_t.c.role).where(m_t.c.id == message_id, _owned(owner))
            ).scalar()
            if role != "assistant":
                raise StoreError("Feedback can only be given on a stored answer of the coach.")
            conn.execute(
                _insert_ignoring_duplicate(conn).values(
                    message_id=message_id, created_at=now, updated_at=now
                )
            )
            if values:
                conn.execute(
                    update(f_t)
                    .where(f_t.c.message_id == message_id)
                    .values(**values, updated_at=now)
                )
            saved = conn.execute(select(f_t).where(f_t.c.message_id == message_id)).one()
        return _feedback(saved._mapping)

    def feedback(self, message_id: int, *, owner: str = LOCAL_OWNER) -> Feedback | None:
        """The feedback on one of the owner's answers, or None."""
        with self._read() as conn:
            row = conn.execute(
                select(f_t)
                .join(m_t, m_t.c.id == f_t.c.message_id)
                .where(f_t.c.message_id == message_id, _owned(owner))
            ).first()
        return _feedback(row._mapping) if row else None

    def corrected_feedback(self, *, owner: str | None = LOCAL_OWNER) -> list[CorrectedAnswer]:
        """The owner's answers with a verdict correction, oldest first, with the message each
        answered. ``owner=None`` gives every owner's: the operator's export, never a page."""
        answer_t = m_t.alias("a")
        user_t = m_t.alias("u")
        query = (
            select(
                f_t,
                answer_t.c.conversation_id,
                answer_t.c.answer_json,
                user_t.c.text.label("situation"),
            )
            .join(answer_t, answer_t.c.id == f_t.c.message_id)
            .join(user_t, user_t.c.id == answer_t.c.reply_to)
            .join(c_t, c_t.c.id == answer_t.c.conversation_id)
            .where(f_t.c.corrected_verdict.is_not(None))
            .order_by(f_t.c.message_id)
        )
        if owner is not None:
            query = query.where(c_t.c.owner == _owner(owner))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            CorrectedAnswer(
                message_id=r.message_id,
                conversation_id=r.conversation_id,
                situation=r.situation,
                answer=CoachingAnswer.model_validate_json(r.answer_json),
                corrected_verdict=r.corrected_verdict,
                corrected_focus=json.loads(r.corrected_focus_json or "[]"),
                comment=r.comment or "",
                rating=r.rating,
                created_at=_time(r.created_at),
            )
            for r in rows
        ]


def _owned(owner: str):
    """The condition that a message's conversation belongs to ``owner``."""
    return m_t.c.conversation_id.in_(select(c_t.c.id).where(c_t.c.owner == _owner(owner)))


def _lock_conversation(conn: Connection, conv_id: str, owner: str) -> str | None:
    """The conversation's id when it is the owner's, its row locked until the transaction
    ends (PostgreSQL; SQLite's write transaction already holds the whole file)."""
    return conn.execute(
        select(c_t.c.id).where(c_t.c.id == conv_id, c_t.c.owner == _owner(owner)).with_for_update()
    ).scalar()


def _insert_ignoring_duplicate(conn: Connection):
    """INSERT … ON CONFLICT DO NOTHING for a feedback row, in the database's own dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(f_t).on_conflict_do_nothing(index_elements=[f_t.c.message_id])


_FEEDBACK_COLUMNS = ("rating", "corrected_verdict", "corrected_focus_json", "comment")


def _message_select(owner: str):
    """Messages of the owner's conversations, each with its feedback columns (``f_…``)."""
    return select(
        m_t,
        *(f_t.c[name].label(f"f_{name}") for name in _FEEDBACK_COLUMNS),
        f_t.c.created_at.label("f_created_at"),
        f_t.c.updated_at.label("f_updated_at"),
    ).select_from(
        m_t.join(
            c_t, and_(c_t.c.id == m_t.c.conversation_id, c_t.c.owner == _owner(owner))
        ).outerjoin(f_t, f_t.c.message_id == m_t.c.id)
    )


def _conversation(row: Row) -> Conversation:
    return Conversation(
        id=row.id,
        title=row.title,
        created_at=_time(row.created_at),
        updated_at=_time(row.updated_at),
        owner=row.owner,
    )


def _feedback(row, prefix: str = "") -> Feedback:
    """A feedback row, or the ``f_``-prefixed feedback columns of a joined message row."""
    return Feedback(
        message_id=row["message_id" if not prefix else "id"],
        rating=row[f"{prefix}rating"],
        corrected_verdict=row[f"{prefix}corrected_verdict"],
        corrected_focus=json.loads(row[f"{prefix}corrected_focus_json"] or "[]"),
        comment=row[f"{prefix}comment"] or "",
        created_at=_time(row[f"{prefix}created_at"]),
        updated_at=_time(row[f"{prefix}updated_at"]),
    )


def _message(row: Row) -> StoredMessage:
    values = row._mapping
    feedback = _feedback(values, "f_") if values["f_created_at"] is not None else None
    answer_json = values["answer_json"]
    return StoredMessage(
        id=values["id"],
        conversation_id=values["conversation_id"],
        role=values["role"],
        text=values["text"],
        status=values["status"],
        created_at=_time(values["created_at"]),
        error=values["error"],
        answer=CoachingAnswer.model_validate_json(answer_json) if answer_json else None,
        reply_to=values["reply_to"],
        source=values["source"],
        notices=json.loads(values["notices_json"] or "[]"),
        feedback=feedback,
    )


def open_store(settings: Settings | None = None) -> ConversationStore:
    """The conversation store COACH_DATABASE_URL names, else ``conversations.db`` in the data
    folder; opened (and migrated) now, so a problem is a StoreError here, not mid-page."""
    settings = settings or get_settings()
    store = ConversationStore(database_url(settings))
    store.open()
    return store
