"""Every conversation has an owner; conversations from before sign-in belong to "local".

Messages and feedback are reached through their conversation, so only it carries the
owner. The column keeps a server default so the ``ADD COLUMN`` also works on SQLite.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "conversations",
        sa.Column("owner", sa.Text, nullable=False, server_default="local"),
    )
    op.create_index("conversations_by_owner", "conversations", ["owner", "updated_at"])


def downgrade() -> None:
    op.drop_index("conversations_by_owner", table_name="conversations")
    op.drop_column("conversations", "owner")
