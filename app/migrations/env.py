"""Alembic's entry point for the conversation database; the store runs it on first use.

``app.store_database.migrate`` calls ``alembic.command.upgrade`` with an open connection
in ``config.attributes["connection"]``, inside a transaction that holds the migration
lock, so there is no ``alembic.ini`` and no manual ``alembic upgrade`` step. A new
migration is a new file in ``versions/`` whose ``down_revision`` is the latest one.
"""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "The conversation database migrates itself on first use: open the store "
        "(app.store.open_store) instead of running alembic by hand."
    )
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
