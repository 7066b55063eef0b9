"""A lock shared by every process on one data folder, so that one of them builds the index
or trains a model while the others wait and then reuse what it made.

It is an ``flock`` on a small file beside what it guards; the kernel drops it when the holder
exits, so a crashed build never leaves a stale lock behind. Each ``with`` opens the file
anew, which makes the lock exclusive between threads of one process too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.errors import CoachError, ConfigError

WAIT_SECONDS = 900.0  # longer than the slowest first build on a busy 2-core machine
POLL_SECONDS = 0.1


class LockTimeout(CoachError):
    """Another process held the lock for longer than we were willing to wait."""


@contextmanager
def file_lock(path: Path, doing: str, wait: float = WAIT_SECONDS) -> Iterator[None]:
    """Hold the exclusive lock on ``path`` for the ``with`` block, waiting up to ``wait``
    seconds for another process to release it; ``doing`` names the work in the error."""
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(
            f"The lock file {path} cannot be created ({exc.strerror}): "
            "set COACH_DATA_DIR to a folder you can write to."
        ) from None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"Another coach process has been {doing} in {path.parent} for over "
                        f"{wait:.0f} s: let it finish (or stop it) and try again."
                    ) from None
                time.sleep(POLL_SECONDS)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
