"""The conversation database: its URL, engine, migrations, and the errors a person can act on.

SQLite (one file in the data folder, the default) or PostgreSQL (``postgresql://…``, for a
team), through SQLAlchemy. The schema is kept by the Alembic migrations in
``app/migrations``, run on first use inside a transaction that holds a lock (SQLite's
write lock, a PostgreSQL advisory lock), so processes that start together migrate once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from app.errors import CoachError
from app.settings import Settings
from app.urls import display_url

log = logging.getLogger(__name__)

DB_NAME = "conversations.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
LEGACY_REVISION = "0001"  # what a file of the hand-kept schema (user_version 1) holds
SQLITE_BUSY_SECONDS = 30.0  # how long a writer waits for another process's write
MIGRATION_LOCK = 7_203_411_013  # PostgreSQL advisory lock key held while migrating
URL_HELP = (
    "set COACH_DATABASE_URL to sqlite:////absolute/path/conversations.db or "
    "postgresql://user:password@host:5432/database, or unset it to keep conversations "
    "in the data folder"
)


class StoreError(CoachError):
    """The conversation database cannot be read or written; the message is safe to show."""


def database_url(settings: Settings) -> str:
    """COACH_DATABASE_URL, or the SQLite file in the data folder when it is unset."""
    configured = settings.database_url.get_secret_value().strip() if settings.database_url else ""
    if configured:
        return configured
    return sqlite_url(settings.ensure_data_dir() / DB_NAME)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


@dataclass(eq=False)
class Database:
    """One database: an engine, whether it is migrated, and how to tell its errors."""

    url: str
    engine: Engine
    path: Path | None  # the SQLite file; None for a server
    _ready_for: tuple[int, int] | None = field(default=None, repr=False)
    _ready: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _writer: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def is_sqlite(self) -> bool:
        return self.path is not None

    @property
    def shown(self) -> str:
        """How messages name the database: never a server path, never a password."""
        if self.is_sqlite:
            return "The conversation history"
        return f"The conversation database at {display_url(self.url)}"

    # ------------------------------------------------------------ connections

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading; driver errors come out as a StoreError."""
        self.ensure_ready()
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise self.error(exc) from None

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that commits at the end; on SQLite it holds the write lock from the
        start, so a read followed by a write never meets another process's commit."""
        self.ensure_ready()
        # SQLite has one writer at a time. Threads of this process queue here, in turn,
        # instead of in SQLite's busy handler, which sleeps up to 100 ms between tries.
        with self._writer if self.is_sqlite else contextlib.nullcontext():
            try:
                with self._begin() as conn:
                    yield conn
            except SQLAlchemyError as exc:
                raise self.error(exc) from None

    def _begin(self):
        engine = self.engine
        if self.is_sqlite:
            engine = engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        return engine.begin()

    # ------------------------------------------------------------ schema

    def ensure_ready(self) -> None:
        """Migrate once per process; again if the SQLite file was replaced or removed."""
        if self._ready and self._same_file():
            return
        with self._lock:
            if self._ready and self._same_file():
                return
            try:
                self.engine.dispose()  # pooled connections may hold a replaced file
                self._prepare_file()
                migrate(self)
            except StoreError:
                raise
            except (SQLAlchemyError, sqlite3.Error) as exc:
                raise self.error(exc) from None
            except OSError as exc:
                log.error("Conversation database %s: %s", self.path, exc)
                raise StoreError(
                    f"{self.shown} could not be created ({exc.strerror}): check that the data "
                    "folder (COACH_DATA_DIR) can be written by the app, then try again."
                ) from None
            self._ready_for = self._file_id()
            self._ready = True

    def _file_id(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def _same_file(self) -> bool:
        return self.path is None or self._file_id() == self._ready_for

    def _prepare_file(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.engine.connect() as conn:
            # Outside any transaction: WAL lets readers go on while another process writes.
            conn.connection.driver_connection.execute("PRAGMA journal_mode = WAL")

    # ------------------------------------------------------------ errors

    def error(self, exc: Exception) -> StoreError:
        """A StoreError that says what to do; the full detail goes to the log only."""
        cause = getattr(exc, "orig", None) or exc
        log.error(
            "Conversation database %s: %s: %s",
            self.path or display_url(self.url),
            type(cause).__name__,
            cause,
        )
        if self.is_sqlite:
            return StoreError(_sqlite_problem(self.shown, str(cause).lower()))
        return StoreError(_postgres_problem(self.shown, cause, isinstance(exc, DBAPIError)))

    def dispose(self) -> None:
        """Close the pooled connections (a server's), e.g. before the server stops."""
        self.engine.dispose()


def _sqlite_problem(shown: str, reason: str) -> str:
    if any(s in reason for s in ("not a database", "malformed", "file is encrypted", "corrupt")):
        return (
            f"{shown} cannot be read: its database file (conversations.db) is damaged. "
            "Move it out of the data folder (COACH_DATA_DIR) to start a new history, or put "
            "back a backup, then try again; the app's log names the file."
        )
    if "readonly" in reason or "read-only" in reason:
        return (
            f"{shown} is read-only: let the app write conversations.db and the data folder "
            "(COACH_DATA_DIR), then try again."
        )
    if "unable to open" in reason:
        return (
            f"{shown} could not be opened: check that the data folder (COACH_DATA_DIR) "
            "exists and can be written by the app, then try again."
        )
    if "locked" in reason or "busy" in reason:
        return (
            f"{shown} is busy: another process held it for more than "
            f"{SQLITE_BUSY_SECONDS:.0f} s. Try again in a moment."
        )
    if "disk" in reason or "full" in reason:
        return f"{shown} could not be written: the disk is full or failing. Free some space."
    if "no such table" in reason or "no such column" in reason:
        return (
            f"{shown} does not have the tables the coach expects (was the file changed by "
            "hand?). Move conversations.db out of the data folder to start afresh."
        )
    return (
        f"{shown} could not be used because of an unexpected database error. "
        "Try again; if it persists, the server log has the details."
    )


_PG_ACTIONS = {
    "28P01": "it refused the user name or password: check them in COACH_DATABASE_URL",
    "28000": "it does not let this user in: check the user in COACH_DATABASE_URL and the "
    "server's pg_hba.conf",
    "3D000": "that database does not exist: create it (createdb NAME) or fix its name in "
    "COACH_DATABASE_URL",
    "42501": "the user may not create or change the tables: grant it rights on the "
    "database, or use its owner",
    "53300": "the server has too many connections: try again in a moment",
    "57P03": "the server is starting or stopping: try again in a moment",
}


def _postgres_problem(shown: str, cause: BaseException, from_driver: bool) -> str:
    code = getattr(cause, "sqlstate", None)
    reason = str(cause).lower()
    if code in _PG_ACTIONS:
        action = _PG_ACTIONS[code]
    elif "password" in reason and ("failed" in reason or "no password" in reason):
        action = _PG_ACTIONS["28P01"]
    elif "does not exist" in reason and "database" in reason:
        action = _PG_ACTIONS["3D000"]
    elif any(
        s in reason
        for s in (
            "connection refused",
            "could not connect",
            "timeout expired",
            "name or service not known",
            "could not translate host name",
            "no route to host",
            "network is unreachable",
        )
    ):
        action = (
            "it cannot be reached: check that the server is running and that "
            "COACH_DATABASE_URL names the right host and port"
        )
    elif any(s in reason for s in ("server closed the connection", "terminating connection")):
        action = "the server closed the connection: try again in a moment"
    elif not from_driver:
        action = "the coach could not talk to it: try again; the server log has the details"
    else:
        action = "it answered with an error: try again; the server log has the details"
    return f"{shown} could not be used: {action}."


# ---------------------------------------------------------------- opening


_databases: dict[str, Database] = {}
_databases_lock = threading.Lock()


def open_database(url: str) -> Database:
    """The database at ``url``, migrated; one engine per URL and process."""
    with _databases_lock:
        db = _databases.get(url)
        if db is None:
            db = _databases[url] = _connect(url)
    db.ensure_ready()
    return db


def forget_database(url: str) -> None:
    """Close and forget the engine for ``url`` (tests and benchmarks, before a server stops)."""
    with _databases_lock:
        db = _databases.pop(url, None)
    if db is not None:
        db.dispose()


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StoreError(
            f"The conversation database URL ({display_url(url)}) is not one the coach can "
            f"use: {URL_HELP}."
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgres":  # the short scheme many hosts print
        backend = "postgresql"
    if backend not in ("sqlite", "postgresql") or parsed.get_driver_name() not in (
        "pysqlite",
        "psycopg",
        "psycopg2",
        "",
        "postgresql",
        "postgres",
        "sqlite",
    ):
        raise StoreError(
            f"The conversation database {display_url(url)} is not supported: only SQLite "
            f"and PostgreSQL are; {URL_HELP}."
        )
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")  # psycopg 3, never psycopg2
    if not parsed.database or parsed.database == ":memory:":
        raise StoreError(
            "The conversation history needs a file, not an in-memory database: " + URL_HELP + "."
        )
    return parsed.set(drivername="sqlite+pysqlite")


def _connect(url: str) -> Database:
    parsed = _parse(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            # Pooled (each connection used by one thread at a time): closing the last open
            # connection to a WAL file checkpoints it, which per call would cost a sync.
            engine = create_engine(
                parsed,
                pool_size=5,
                max_overflow=10,
                connect_args={"timeout": SQLITE_BUSY_SECONDS, "check_same_thread": False},
            )
            _sqlite_transactions(engine)
            return Database(url, engine, Path(parsed.database).resolve())
        engine = create_engine(
            parsed,
            pool_pre_ping=True,  # a server restart costs one failed ping, not a failed call
            pool_size=5,
            max_overflow=15,
            pool_timeout=30,
            connect_args={"connect_timeout": 10, "application_name": "leadership-coach"},
        )
    except (ArgumentError, NoSuchModuleError) as exc:
        log.error("Conversation database %s: %s", display_url(url), exc)
        raise StoreError(
            f"The conversation database {display_url(url)} cannot be opened ({type(exc).__name__}): "
            f"{URL_HELP}."
        ) from None
    return Database(url, engine, None)


def _sqlite_transactions(engine: Engine) -> None:
    """SQLite as SQLAlchemy recommends: the driver leaves BEGIN to us, foreign keys on."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        # Every commit reaches the disk before the call returns: a message saved is saved,
        # even through a power cut (NORMAL would save ~15 ms a write and risk the last ones).
        dbapi_connection.execute("PRAGMA synchronous = FULL")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))


# ---------------------------------------------------------------- migrations


def migrate(db: Database) -> None:
    """Bring the schema to the newest migration, holding a lock so one process does it."""
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    with db._begin() as conn:
        if not db.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        _adopt_hand_kept_schema(conn, config, db)
        config.attributes["connection"] = conn
        try:
            command.upgrade(config, "head")
        except CommandError as exc:
            log.error("Conversation database %s: %s", db.path or display_url(db.url), exc)
            raise StoreError(
                f"{db.shown} was set up by a newer version of the coach ({exc}): "
                "run that version, or update this one."
            ) from None


def _adopt_hand_kept_schema(conn: Connection, config, db: Database) -> None:
    """A SQLite file from before Alembic (``PRAGMA user_version`` 1) starts at revision 0001."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables or "conversations" not in tables:
        return
    if db.is_sqlite:
        version = conn.exec_driver_sql("PRAGMA user_version").scalar()
        if version not in (0, 1):  # 0: the tables were made but the version not yet set
            raise StoreError(
                f"{db.shown} was written by an unknown version of the coach (schema "
                f"{version}): run that version, or move conversations.db out of the data "
                "folder to start afresh."
            )
    MigrationContext.configure(conn).stamp(ScriptDirectory.from_config(config), LEGACY_REVISION)
