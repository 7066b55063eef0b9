"""The conversation tables as the store queries them (the migrations in app/migrations build them).

Times are ISO 8601 text in UTC with microseconds, as the first SQLite schema kept them, so
they sort as they read on SQLite and PostgreSQL alike and old rows need no conversion.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)

metadata = MetaData()

conversations = Table(
    "conversations",
    metadata,
    Column("id", Text, primary_key=True),
    Column("title", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    # Who may see it: "<issuer> <subject>" when signed in, "local" in the single-user app.
    Column("owner", Text, nullable=False, server_default="local"),
    Index("conversations_by_owner", "owner", "updated_at"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "conversation_id",
        Text,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("role", Text, CheckConstraint("role IN ('user', 'assistant')"), nullable=False),
    Column("text", Text, nullable=False),
    Column(
        "status",
        Text,
        CheckConstraint("status IN ('pending', 'answered', 'failed')"),
        nullable=False,
    ),
    Column("error", Text),
    Column("answer_json", Text),
    Column("reply_to", Integer, ForeignKey("messages.id", ondelete="CASCADE")),
    Column("source", Text),
    Column("notices_json", Text),
    Column("created_at", Text, nullable=False),
    Index("messages_by_conversation", "conversation_id", "id"),
    sqlite_autoincrement=True,  # ids are never reused: feedback exports name cases by them
)

feedback = Table(
    "feedback",
    metadata,
    Column(
        "message_id",
        Integer,
        ForeignKey("messages.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("rating", Integer, CheckConstraint("rating IN (0, 1)")),
    Column("corrected_verdict", Text),
    Column("corrected_focus_json", Text),
    Column("comment", Text),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)
