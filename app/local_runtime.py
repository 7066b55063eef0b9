"""The built-in local LLM: one llama.cpp server (xllamacpp) per process, on 127.0.0.1.

``COACH_ENGINE=local`` with ``COACH_LOCAL_MODEL=/path/to/model.gguf`` runs any GGUF chat
model inside the app. The server starts on first use (never at import), serves the
OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1 only, and stops when the process
exits; the LLM engine talks to it like to any other OpenAI-compatible server, and because
llama.cpp accepts a ``grammar`` in the request body, it can hold a small model to the
reply protocol (``app.engines.reply_format``). This module is the only one that imports
``xllamacpp``.

Before loading, the model file is checked so that each common mistake gets a plain
message instead of llama.cpp's "Failed to init server": the file is missing, it is not a
GGUF (its first four bytes are not ``GGUF``), there is not enough free memory for it
(about 1.2 times its size, from ``MemAvailable`` in /proc/meminfo), or the port asked for
with ``COACH_LOCAL_PORT`` is taken.

Threads: llama.cpp's CPU backend uses OpenMP, whose default is to spin waiting threads.
On a machine whose cores are busy with other work that collapses generation to under one
token per second, so ``OMP_WAIT_POLICY=PASSIVE`` is set (unless already set) before the
library loads, ggml's own polling is turned off, and the thread count is a setting
(``COACH_LOCAL_THREADS``, default the usable cores, at most 4).
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import ConfigError
from app.settings import Settings

GGUF_MAGIC = b"GGUF"
MEMORY_FACTOR = 1.2  # weights plus context, compute buffers and the server around them
MEMINFO = Path("/proc/meminfo")
HOST = "127.0.0.1"
MODEL_HINT = "run `make local-model` to fetch one, or download any GGUF chat model"


@dataclass(frozen=True)
class LocalServer:
    """A running local server: where it listens and what it runs."""

    model: Path
    port: int
    threads: int
    ctx: int
    started_in: float  # seconds the model took to load

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"


def check_model(path: Path | str | None) -> Path:
    """The model file, resolved; a ConfigError that says what to do if it cannot be used."""
    if path is None or str(path).strip() == "":
        raise ConfigError(
            "The local engine needs a model: set COACH_LOCAL_MODEL to a .gguf file "
            f"({MODEL_HINT}), or use another engine (COACH_ENGINE=offline)."
        )
    model = Path(path).expanduser()
    if not model.is_file():
        what = "is a folder" if model.is_dir() else "does not exist"
        raise ConfigError(
            f"The local model {model} {what}: point COACH_LOCAL_MODEL at a .gguf file "
            f"({MODEL_HINT})."
        )
    try:
        with model.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ConfigError(
            f"The local model {model} cannot be read ({exc.strerror}): check its permissions."
        ) from None
    if magic != GGUF_MAGIC:
        raise ConfigError(
            f"{model} is not a GGUF model file (it does not start with 'GGUF'): point "
            "COACH_LOCAL_MODEL at a .gguf file; other formats (safetensors, .bin, .pt) must "
            "be converted or downloaded as GGUF first."
        )
    return model.resolve()


def available_memory(meminfo: Path | None = None) -> int | None:
    """Bytes of memory available to new work (MemAvailable), or None where unknown."""
    try:
        lines = (meminfo or MEMINFO).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemAvailable:"):
            parts = line.split()
            try:
                return int(parts[1]) * (1024 if parts[-1].lower() == "kb" else 1)
            except (IndexError, ValueError):
                return None
    return None


def check_memory(model: Path, available: int | None = None) -> None:
    """A ConfigError when the model clearly does not fit in the available memory."""
    available = available_memory() if available is None else available
    if available is None:
        return
    needed = int(model.stat().st_size * MEMORY_FACTOR)
    if needed > available:
        raise ConfigError(
            f"The local model {model.name} needs about {needed / 1e9:.1f} GB of memory and "
            f"only {available / 1e9:.1f} GB is available: close other programs, or use a "
            "smaller model (a lower quantisation such as Q4_K_M, or fewer parameters)."
        )


def check_port(port: int) -> None:
    """A ConfigError when ``port`` on 127.0.0.1 is already taken."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind((HOST, port))
    except OSError:
        raise ConfigError(
            f"Port {port} on {HOST} is already in use, so the local model's server cannot "
            "start there: set COACH_LOCAL_PORT to a free port, or unset it to pick one "
            "automatically."
        ) from None
    finally:
        probe.close()


_lock = threading.Lock()
_running: tuple[LocalServer, Any] | None = None
_atexit_registered = False


def start_server(settings: Settings) -> LocalServer:
    """The process's local server for ``settings``, started now if it is not running.

    One server per process: asking again with the same model, threads and context returns
    the running one; asking with others stops it and starts a new one.
    """
    global _running, _atexit_registered
    with _lock:
        model = check_model(settings.local_model)
        if _running is not None:
            running = _running[0]
            same = (running.model, running.threads, running.ctx) == (
                model,
                settings.local_threads,
                settings.local_ctx,
            )
            if same and settings.local_port in (None, running.port):
                return running
        if settings.local_port is not None:
            check_port(settings.local_port)  # before stopping the running one: it stays up
        _stop_locked()
        check_memory(model)
        started = time.perf_counter()
        server = _load(model, settings)
        port = int(str(server.listening_address).rsplit(":", 1)[-1].strip("/"))
        info = LocalServer(
            model=model,
            port=port,
            threads=settings.local_threads,
            ctx=settings.local_ctx,
            started_in=time.perf_counter() - started,
        )
        _running = (info, server)
        if not _atexit_registered:
            atexit.register(stop_server)
            _atexit_registered = True
        return info


def prefill(system: str) -> None:
    """Have the running server read ``system`` into its prompt cache (one token written),
    so a request that starts with the same instructions skips reading them again."""
    import json
    import urllib.request

    server = running_server()
    if server is None:
        return
    body = {"messages": [{"role": "system", "content": system}], "max_tokens": 1}
    request = urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            response.read()
    except OSError:  # only a head start: the first question reads the prompt instead
        pass


def running_server() -> LocalServer | None:
    """The local server of this process, if one is running."""
    return _running[0] if _running is not None else None


def stop_server() -> None:
    """Stop the local server, if one is running (also run at exit)."""
    with _lock:
        _stop_locked()


def _stop_locked() -> None:
    global _running
    if _running is None:
        return
    server = _running[1]
    _running = None
    del server  # xllamacpp stops the HTTP server and frees the model when the object goes


def _load(model: Path, settings: Settings) -> Any:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when the library loads
    try:
        import xllamacpp
    except ImportError:
        raise ConfigError(
            "The local engine needs the xllamacpp package, which is not installed: run "
            "`make test` or `uv pip install -r requirements.lock`, or use another engine."
        ) from None
    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.n_ctx = settings.local_ctx
    params.n_parallel = 1  # one answer at a time gets the whole context and all threads
    params.cpuparams.n_threads = settings.local_threads
    params.cpuparams_batch.n_threads = settings.local_threads
    params.cpuparams.poll = 0  # no busy-waiting between tokens on shared cores
    params.cpuparams_batch.poll = 0
    params.hostnames = [HOST]
    params.port = settings.local_port or 0  # 0: the system picks a free port
    params.ui = False
    params.endpoint_metrics = True  # /metrics: whether it is generating (tests, bench)
    params.verbosity = 0
    params.model_alias = {model.name}
    try:
        return xllamacpp.Server(params)
    except RuntimeError as exc:
        raise ConfigError(
            f"llama.cpp could not load the local model {model.name} ({exc}): check that it is "
            "a complete GGUF chat model (re-download it if it may be cut short), or lower "
            "COACH_LOCAL_CTX if memory is short."
        ) from None
