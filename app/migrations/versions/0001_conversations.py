"""Conversations, messages and feedback, as the first hand-kept SQLite schema had them.

A SQLite file made by that schema (``PRAGMA user_version = 1``) is stamped at this
revision instead of running it, so its rows stay as they are.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "conversation_id",
            sa.Text,
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("answer_json", sa.Text),
        sa.Column("reply_to", sa.Integer, sa.ForeignKey("messages.id", ondelete="CASCADE")),
        sa.Column("source", sa.Text),
        sa.Column("notices_json", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.CheckConstraint("role IN ('user', 'assistant')", name="messages_role"),
        sa.CheckConstraint("status IN ('pending', 'answered', 'failed')", name="messages_status"),
        sqlite_autoincrement=True,
    )
    op.create_index("messages_by_conversation", "messages", ["conversation_id", "id"])
    op.create_table(
        "feedback",
        sa.Column(
            "message_id",
            sa.Integer,
            sa.ForeignKey("messages.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("rating", sa.Integer),
        sa.Column("corrected_verdict", sa.Text),
        sa.Column("corrected_focus_json", sa.Text),
        sa.Column("comment", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.CheckConstraint("rating IN (0, 1)", name="feedback_rating"),
    )


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("messages")
    op.drop_table("conversations")
