"""Conversations, messages and feedback in SQLite: the one module that talks to the database."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

from app.answer import CoachingAnswer, Turn
from app.errors import CoachError
from app.passages import FOCUS_CODES, VERDICTS, Verdict
from app.settings import Settings, get_settings

DB_NAME = "conversations.db"
TITLE_CHARS = 60
SCHEMA_VERSION = 1

_SCHEMA = """
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


class StoreError(CoachError):
    """The conversation database cannot be read or written."""


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


class ConversationStore:
    """Conversations in one SQLite file; safe to share between Streamlit's session threads.

    Every call opens its own connection, so no connection crosses threads; WAL mode
    lets readers go on while one session writes.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._ready = False
        self._lock = threading.Lock()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self._ensure_schema()
        try:
            conn = sqlite3.connect(self.path, timeout=10)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            with conn:
                yield conn
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        finally:
            conn.close()

    def _error(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(
            f"The conversation history at {self.path} could not be used ({exc}). "
            "Check the data folder (COACH_DATA_DIR) is writable, then try again."
        )

    def _ensure_schema(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=10)
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.executescript(_SCHEMA)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.commit()
                finally:
                    conn.close()
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(
                    f"The conversation history at {self.path} could not be opened ({exc}). "
                    "Check the data folder (COACH_DATA_DIR) is writable, then try again."
                ) from None
            self._ready = True

    # ---------------------------------------------------------------- conversations

    def create_conversation(self, first_message: str) -> Conversation:
        """A new conversation titled from its first message."""
        now = _now()
        conv_id = uuid.uuid4().hex
        title = title_from(first_message)
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO conversations (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (conv_id, title, now, now),
            )
        return Conversation(conv_id, title, _time(now), _time(now))

    def conversation(self, conv_id: str) -> Conversation | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM conversations WHERE id = ?", (conv_id,)).fetchone()
        return _conversation(row) if row else None

    def list_conversations(self, limit: int = 100) -> list[Conversation]:
        """The most recently active conversations first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM conversations ORDER BY updated_at DESC, created_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_conversation(r) for r in rows]

    def rename(self, conv_id: str, title: str) -> Conversation | None:
        """Give a conversation a new title; a blank title is refused."""
        title = " ".join(title.split())
        if not title:
            raise StoreError("A conversation title cannot be empty: type a few words.")
        with self._connect() as conn:
            conn.execute("UPDATE conversations SET title = ? WHERE id = ?", (title[:200], conv_id))
        return self.conversation(conv_id)

    def delete(self, conv_id: str) -> bool:
        """Delete a conversation with its messages and feedback; False if it did not exist."""
        with self._connect() as conn:
            cursor = conn.execute("DELETE FROM conversations WHERE id = ?", (conv_id,))
        return cursor.rowcount > 0

    # ---------------------------------------------------------------- messages

    def add_user_message(
        self,
        conv_id: str,
        text: str,
        *,
        source: str | None = None,
        notices: list[str] | None = None,
    ) -> StoredMessage:
        """Save what the user sent, as pending, before the engine is asked."""
        now = _now()
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT INTO messages (conversation_id, role, text, status, source, notices_json, "
                "created_at) VALUES (?, 'user', ?, 'pending', ?, ?, ?)",
                (conv_id, text, source, json.dumps(notices or []), now),
            )
            conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conv_id))
            message_id = cursor.lastrowid
        return self._message(message_id)

    def mark_pending(self, message_id: int) -> StoredMessage:
        """Put a failed user message back in the queue, for a retry."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE messages SET status = 'pending', error = NULL WHERE id = ? AND role = 'user'",
                (message_id,),
            )
        return self._message(message_id)

    def add_answer(self, user_message_id: int, answer: CoachingAnswer) -> StoredMessage:
        """Store the coach's answer to a user message, and mark that message answered."""
        now = _now()
        with self._connect() as conn:
            row = conn.execute(
                "SELECT conversation_id FROM messages WHERE id = ?", (user_message_id,)
            ).fetchone()
            if row is None:
                raise StoreError("The message being answered no longer exists (it was deleted).")
            cursor = conn.execute(
                "INSERT INTO messages (conversation_id, role, text, status, answer_json, reply_to, "
                "created_at) VALUES (?, 'assistant', ?, 'answered', ?, ?, ?)",
                (
                    row["conversation_id"],
                    answer.coaching,
                    answer.model_dump_json(),
                    user_message_id,
                    now,
                ),
            )
            conn.execute(
                "UPDATE messages SET status = 'answered', error = NULL WHERE id = ?",
                (user_message_id,),
            )
            conn.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?",
                (now, row["conversation_id"]),
            )
            message_id = cursor.lastrowid
        return self._message(message_id)

    def mark_failed(self, message_id: int, error: str) -> StoredMessage:
        """Record that the engine failed on a user message; the message itself stays."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE messages SET status = 'failed', error = ? WHERE id = ?",
                (error, message_id),
            )
        return self._message(message_id)

    def message(self, message_id: int) -> StoredMessage | None:
        with self._connect() as conn:
            row = conn.execute(_MESSAGE_SELECT + " WHERE m.id = ?", (message_id,)).fetchone()
        return _message(row) if row else None

    def _message(self, message_id: int | None) -> StoredMessage:
        found = self.message(message_id) if message_id is not None else None
        if found is None:
            raise StoreError("The message is no longer stored (its conversation was deleted).")
        return found

    def messages(self, conv_id: str) -> list[StoredMessage]:
        """The conversation's messages in reading order: each answer right after its question."""
        with self._connect() as conn:
            rows = conn.execute(
                _MESSAGE_SELECT
                + " WHERE m.conversation_id = ? ORDER BY COALESCE(m.reply_to, m.id), m.id",
                (conv_id,),
            ).fetchall()
        return [_message(r) for r in rows]

    def history(self, conv_id: str, before: int) -> list[Turn]:
        """The answered turns that come before user message ``before``, as engine context."""
        turns: list[Turn] = []
        messages = self.messages(conv_id)
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
    ) -> Feedback:
        """Create or update the feedback on an answer; fields left as KEEP are unchanged."""
        if rating is not KEEP and rating not in (None, 0, 1):
            raise StoreError("A rating is thumbs up (1) or thumbs down (0).")
        if corrected_verdict is not KEEP and corrected_verdict not in (None, *VERDICTS):
            raise StoreError(f"A corrected verdict must be one of {', '.join(VERDICTS)}.")
        focus_json: str | None | _Keep = KEEP
        if corrected_focus is not KEEP:
            codes = list(dict.fromkeys(corrected_focus or []))
            if any(c not in FOCUS_CODES for c in codes):
                raise StoreError(f"Focus codes must be among {', '.join(FOCUS_CODES)}.")
            focus_json = json.dumps(codes) if codes else None
        now = _now()
        with self._connect() as conn:
            row = conn.execute("SELECT role FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None or row["role"] != "assistant":
                raise StoreError("Feedback can only be given on a stored answer of the coach.")
            conn.execute(
                "INSERT INTO feedback (message_id, created_at, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (message_id) DO NOTHING",
                (message_id, now, now),
            )
            updates = {
                "rating": rating,
                "corrected_verdict": corrected_verdict,
                "corrected_focus_json": focus_json,
                "comment": comment,
            }
            for column, value in updates.items():
                if value is KEEP:
                    continue
                if column == "comment" and value is not None:
                    value = value.strip() or None
                conn.execute(
                    f"UPDATE feedback SET {column} = ?, updated_at = ? WHERE message_id = ?",
                    (value, now, message_id),
                )
            saved = conn.execute(
                "SELECT * FROM feedback WHERE message_id = ?", (message_id,)
            ).fetchone()
        return _feedback(saved)

    def feedback(self, message_id: int) -> Feedback | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM feedback WHERE message_id = ?", (message_id,)
            ).fetchone()
        return _feedback(row) if row else None

    def corrected_feedback(self) -> list[CorrectedAnswer]:
        """Every answer with a verdict correction, oldest first, with the message it answered."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT f.*, a.conversation_id, a.answer_json, u.text AS situation "
                "FROM feedback f "
                "JOIN messages a ON a.id = f.message_id "
                "JOIN messages u ON u.id = a.reply_to "
                "WHERE f.corrected_verdict IS NOT NULL "
                "ORDER BY f.message_id"
            ).fetchall()
        return [
            CorrectedAnswer(
                message_id=r["message_id"],
                conversation_id=r["conversation_id"],
                situation=r["situation"],
                answer=CoachingAnswer.model_validate_json(r["answer_json"]),
                corrected_verdict=r["corrected_verdict"],
                corrected_focus=json.loads(r["corrected_focus_json"] or "[]"),
                comment=r["comment"] or "",
                rating=r["rating"],
                created_at=_time(r["created_at"]),
            )
            for r in rows
        ]


_MESSAGE_SELECT = (
    "SELECT m.*, f.rating AS f_rating, f.corrected_verdict AS f_corrected_verdict, "
    "f.corrected_focus_json AS f_corrected_focus_json, f.comment AS f_comment, "
    "f.created_at AS f_created_at, f.updated_at AS f_updated_at "
    "FROM messages m LEFT JOIN feedback f ON f.message_id = m.id"
)


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        created_at=_time(row["created_at"]),
        updated_at=_time(row["updated_at"]),
    )


def _feedback(row: sqlite3.Row, prefix: str = "") -> Feedback:
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


def _message(row: sqlite3.Row) -> StoredMessage:
    feedback = _feedback(row, "f_") if row["f_created_at"] is not None else None
    answer_json = row["answer_json"]
    return StoredMessage(
        id=row["id"],
        conversation_id=row["conversation_id"],
        role=row["role"],
        text=row["text"],
        status=row["status"],
        created_at=_time(row["created_at"]),
        error=row["error"],
        answer=CoachingAnswer.model_validate_json(answer_json) if answer_json else None,
        reply_to=row["reply_to"],
        source=row["source"],
        notices=json.loads(row["notices_json"] or "[]"),
        feedback=feedback,
    )


def open_store(settings: Settings | None = None) -> ConversationStore:
    """The conversation store in the data folder (``conversations.db``)."""
    settings = settings or get_settings()
    return ConversationStore(settings.ensure_data_dir() / DB_NAME)
