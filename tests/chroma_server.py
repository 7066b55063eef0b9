"""A real Chroma server for the tests: ``chroma run`` (shipped with chromadb) on 127.0.0.1, on a
free port, storing into a temporary folder, stopped when the tests are done."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMA = Path(sys.executable).parent / "chroma"
START_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ChromaServer:
    """One ``chroma run`` process; ``url`` is where it answers."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "chroma.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ChromaServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(CHROMA), "run", "--path", str(self.folder / "db")]
                + ["--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
            )
        deadline = time.monotonic() + START_SECONDS
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"chroma run did not start on {self.url}:\n{tail}")
            time.sleep(0.1)
        return self

    def answers(self) -> bool:
        """Whether the heartbeat endpoint answers like Chroma."""
        try:
            with urllib.request.urlopen(self.url + "/api/v2/heartbeat", timeout=1) as reply:
                return "nanosecond heartbeat" in json.loads(reply.read())
        except (OSError, ValueError):
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """One Chroma server shared by the session's tests (each test uses its own collection
    names, see ``COACH_COLLECTION``)."""
    if not CHROMA.exists():
        pytest.fail(f"{CHROMA} is missing: run `make test` to install chromadb.")
    with ChromaServer(tmp_path_factory.mktemp("chroma-server")) as server:
        yield server
