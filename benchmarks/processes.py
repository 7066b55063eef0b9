"""Child processes for the benchmarks: the ``coach`` command, free ports and peak memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def coach_command() -> list[str]:
    """How to run ``coach`` with this interpreter (the venv's script when installed)."""
    script = Path(sys.executable).parent / "coach"
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def child_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment with the coach pointed at ``data_dir``, offline."""
    env = dict(os.environ)
    env.update({"COACH_DATA_DIR": str(data_dir), "COACH_ENGINE": "offline"})
    for name in ("OPENAI_API_KEY", "COACH_LLM_BASE_URL", "COACH_LLM_API_KEY"):
        env.pop(name, None)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed_run(command: list[str], env: dict[str, str], timeout: float) -> tuple[float, str]:
    """Seconds from start to exit, and stdout; a RuntimeError with stderr when it fails."""
    started = time.perf_counter()
    done = subprocess.run(
        command,
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(command[:3])} … exited {done.returncode}: {tail}")
    return elapsed, done.stdout


def memory_mb(pid: int) -> dict[str, float]:
    """Peak (VmHWM) and current (VmRSS) resident memory of ``pid`` in MB, from /proc."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            out[name] = int(value.split()[0]) / 1024
    return out


def bytecode_state() -> dict[str, object]:
    """Whether imports can use compiled bytecode; without it every process start recompiles."""
    import site

    packages = Path(site.getsitepackages()[0])
    return {
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
        "site_packages_pyc_files": sum(1 for _ in packages.rglob("*.pyc")),
        "site_packages_py_files": sum(1 for _ in packages.rglob("*.py")),
    }
