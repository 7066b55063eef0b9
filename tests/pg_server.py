"""A throwaway PostgreSQL server on 127.0.0.1 for the tests and the benchmarks.

Debian's ``postgresql`` package (``make postgres`` installs it) ships ``initdb`` and
``postgres`` in ``/usr/lib/postgresql/<version>/bin``. Both refuse to run as root, so
when the tests run as root the cluster is made and run as the ``postgres`` system user
that the package creates (or ``COACH_TEST_PG_USER``). Everything lives in one temporary
folder: the cluster, the unix socket and the log; ``stop()`` removes it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

SUPERUSER = "coach"
DATABASE = "coach_test"
START_SECONDS = 60.0


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not installed here, or cannot run: the message says how to fix it."""


def postgres_bin() -> Path:
    """The folder holding ``initdb`` and ``postgres``: PATH first, then Debian's newest."""
    found = shutil.which("initdb")
    if found and (Path(found).resolve().parent / "postgres").exists():
        return Path(found).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if not versions:
        raise PostgresUnavailable(
            "PostgreSQL is not installed (no initdb): run `make postgres` "
            "(Debian's postgresql package)."
        )
    return Path(versions[-1]).parent


def _run_as() -> pwd.struct_passwd | None:
    """The non-root user to run the server as, or None when this process is not root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("COACH_TEST_PG_USER", "postgres")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise PostgresUnavailable(
            f"initdb refuses to run as root and there is no {name!r} user to run it as: "
            "install Debian's postgresql package (`make postgres`), which creates it."
        ) from None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """``with PostgresServer() as pg:`` then ``pg.url`` is a fresh, empty database's URL."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.user = _run_as()
        self.password = secrets.token_hex(12)
        self.port = 0
        self.folder: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.url_for(DATABASE)

    def url_for(self, database: str, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{SUPERUSER}:{secret}@127.0.0.1:{self.port}/{database}"

    def _as_user(self) -> dict:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            cwd=self.folder,
            timeout=120,
            check=False,
            **self._as_user(),
        )
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"{args[0]} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}"
            )

    def start(self) -> PostgresServer:
        self.folder = Path(tempfile.mkdtemp(prefix="coach-pg-"))
        if self.user is not None:
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
        data, sockets = self.folder / "data", self.folder / "sockets"
        password_file = self.folder / "password"
        password_file.write_text(self.password + "\n")
        sockets.mkdir()
        if self.user is not None:
            for path in (password_file, sockets):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            f"--pwfile={password_file}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--encoding=UTF8",
            "--no-instructions",
            "--no-sync",
        )
        self.port = free_port()
        log = open(self.folder / "postgres.log", "wb")  # noqa: SIM115 - kept open while it runs
        self.process = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(sockets),
                # A throwaway cluster: nothing needs to survive a crash.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.folder,
            **self._as_user(),
        )
        log.close()
        self._wait_until_ready()
        self.create_database(DATABASE)
        return self

    def _wait_until_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_SECONDS
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise PostgresUnavailable(f"postgres exited at start: {self.log_tail()}")
            try:
                with psycopg.connect(self.url_for("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(
                        f"postgres did not accept connections in {START_SECONDS:.0f} s: "
                        f"{self.log_tail()}"
                    ) from None
                time.sleep(0.1)

    def create_database(self, name: str) -> str:
        """A new empty database on this server; its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url_for("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def log_tail(self, lines: int = 10) -> str:
        if self.folder is None or not (self.folder / "postgres.log").exists():
            return "(no log)"
        text = (self.folder / "postgres.log").read_text(errors="replace")
        return " | ".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: end sessions, stop
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(Exception):
            self.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole test session; tests make their own databases.

    Skipped with the reason when PostgreSQL is not installed, except under CI (``CI`` set),
    where a missing server is a failure: ``make test`` installs it.
    """
    server = None
    try:
        server = PostgresServer()
        server.start()
    except PostgresUnavailable as exc:
        if server is not None:
            server.stop()
        (pytest.fail if os.environ.get("CI") else pytest.skip)(str(exc))
    try:
        yield server
    finally:
        server.stop()
