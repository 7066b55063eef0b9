"""The one seam to Chroma's clients: the article index in a local folder or on a Chroma server,
and where each keeps the pointer that names the live collection.

* **Folder** (default): a ``PersistentClient`` on ``chroma/`` in the data folder; the pointer
  is ``index.json`` beside it, replaced atomically.
* **Server** (``COACH_CHROMA_URL``): an ``HttpClient`` on ``chroma run``; the pointer is the
  metadata of a collection of its own, ``<collection>.live``, which holds no records and is
  replaced in one request, so every process on every machine switches at the same moment.

Both answer the same calls, so ``app.index`` builds and reads without knowing which it has.
Every failure comes out as an ``IndexUnavailable`` that says what to do, with any password
in the server's address left out.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Protocol
from urllib.parse import urlsplit

from app.errors import ConfigError, IndexUnavailable
from app.settings import Settings
from app.urls import display_url

REBUILD_HINT = "run `coach index --rebuild`"
SERVER_API = "/api/v2"
SERVER_API_MAJOR = "1"  # the REST API version chromadb 1.x serves and its client speaks
CONNECT_TIMEOUT = 10.0


class DamagedPointer(IndexUnavailable):
    """The pointer to the live collection cannot be read; a build replaces it."""


def _telemetry_off():
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


class IndexStore(Protocol):
    """What ``app.index`` needs from wherever the index lives."""

    where: str

    def client(self) -> Any: ...

    def read_pointer(self) -> dict | None: ...

    def write_pointer(self, pointer: dict) -> None: ...

    def can_reset(self) -> bool: ...

    def reset(self) -> None: ...

    def failure(self, exc: BaseException, doing: str) -> IndexUnavailable: ...


class ChromaFolder:
    """The index in ``chroma/`` under the data folder, with ``index.json`` as its pointer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = settings.data_dir / "chroma"
        self.pointer_path = settings.data_dir / "index.json"
        self.where = f"the index folder {self.path}"
        self._client = None

    def client(self) -> Any:
        if self._client is None:
            self.settings.ensure_data_dir()
            try:
                import chromadb

                self._client = chromadb.PersistentClient(
                    path=str(self.path), settings=_telemetry_off()
                )
            except Exception as exc:  # Chroma raises many types for a broken store
                raise IndexUnavailable(
                    f"The index in {self.path} cannot be opened ({type(exc).__name__}): "
                    f"it may be corrupted or locked by another program; {REBUILD_HINT}."
                ) from None
        return self._client

    def read_pointer(self) -> dict | None:
        try:
            pointer = json.loads(self.pointer_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            pointer = None
        if not isinstance(pointer, dict) or not isinstance(pointer.get("collection"), str):
            raise DamagedPointer(
                f"The index pointer {self.pointer_path} is damaged: {REBUILD_HINT}."
            )
        return pointer

    def write_pointer(self, pointer: dict) -> None:
        tmp = self.pointer_path.with_name(f"{self.pointer_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(pointer))
        os.replace(tmp, self.pointer_path)

    def can_reset(self) -> bool:
        return True

    def reset(self) -> None:
        """Delete the folder and the pointer (a rebuild of a damaged store)."""
        from chromadb.api.client import SharedSystemClient

        self._client = None
        # Chroma caches one system per path in the process; drop it with the files.
        SharedSystemClient.clear_system_cache()
        shutil.rmtree(self.path, ignore_errors=True)
        self.pointer_path.unlink(missing_ok=True)

    def failure(self, exc: BaseException, doing: str) -> IndexUnavailable:
        if isinstance(exc, IndexUnavailable):
            return exc
        return IndexUnavailable(
            f"The article index in {self.path} could not be {doing} ({type(exc).__name__}): "
            f"{REBUILD_HINT}."
        )


class ServerAddress:
    """``COACH_CHROMA_URL`` taken apart: what the client needs and what may be shown."""

    def __init__(self, url: str) -> None:
        self.shown = display_url(url)
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            parts, port = None, None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"COACH_CHROMA_URL ({self.shown}) is not an address like "
                "http://127.0.0.1:8000: fix it, or unset it to keep the index in the data folder."
            )
        self.ssl = parts.scheme == "https"
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        port = port or (443 if self.ssl else 8000)
        self.base = f"{parts.scheme}://{host}:{port}{parts.path.rstrip('/')}"
        self.headers: dict[str, str] = {}
        if parts.username is not None:
            import base64
            from urllib.parse import unquote

            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()


class ChromaServer:
    """The index on a Chroma server, with the metadata of ``<collection>.live`` as its pointer."""

    def __init__(self, settings: Settings, url: str) -> None:
        self.settings = settings
        self.address = ServerAddress(url)
        self.pointer_name = f"{settings.collection}.live"
        self.where = f"the Chroma server at {self.address.shown}"
        self._client = None

    # -- connecting -----------------------------------------------------------------------
    def _unreachable(self) -> IndexUnavailable:
        return IndexUnavailable(
            f"The Chroma server at {self.address.shown} is not reachable: start it "
            "(`chroma run --path <folder> --host 127.0.0.1 --port 8000`) or fix COACH_CHROMA_URL, "
            "then try again."
        )

    def _check_server(self) -> None:
        """Ask the server who it is before the client does, so each wrong answer gets its own
        plain sentence instead of chromadb's ``ValueError``."""
        import httpx

        shown = self.address.shown
        try:
            with httpx.Client(headers=self.address.headers, timeout=CONNECT_TIMEOUT) as http:
                beat = http.get(self.address.base + SERVER_API + "/heartbeat")
                if beat.status_code == 404:
                    old = http.get(self.address.base + "/api/v1/heartbeat")
                    if old.is_success:
                        raise IndexUnavailable(
                            f"The Chroma server at {shown} runs an older Chroma (API v1) that "
                            "this coach cannot use: upgrade it to chromadb 1.x (`chroma run` "
                            "from the chromadb in requirements.lock)."
                        )
                version = http.get(self.address.base + SERVER_API + "/version")
        except httpx.TransportError:
            raise self._unreachable() from None
        if beat.status_code in (401, 403):
            raise IndexUnavailable(
                f"The Chroma server at {shown} refused the credentials (HTTP "
                f"{beat.status_code}): check the user and password in COACH_CHROMA_URL."
            )
        try:
            answer = beat.json() if beat.is_success else None
            server_version = version.json() if version.is_success else None
        except ValueError:
            answer, server_version = None, None
        if not isinstance(answer, dict) or "nanosecond heartbeat" not in answer:
            raise IndexUnavailable(
                f"{shown} does not answer like a Chroma server (HTTP {beat.status_code} on "
                f"{SERVER_API}/heartbeat): point COACH_CHROMA_URL at `chroma run`, "
                "e.g. http://127.0.0.1:8000."
            )
        if not isinstance(server_version, str) or server_version.split(".")[0] != SERVER_API_MAJOR:
            raise IndexUnavailable(
                f"The Chroma server at {shown} speaks API version {server_version!r}; this coach "
                f"needs {SERVER_API_MAJOR}.x: run the server from the chromadb in "
                "requirements.lock (`chroma run`)."
            )

    def client(self) -> Any:
        if self._client is None:
            self._check_server()
            try:
                import chromadb

                self._client = chromadb.HttpClient(
                    host=self.address.base,
                    ssl=self.address.ssl,
                    headers=self.address.headers or None,
                    settings=_telemetry_off(),
                )
            except Exception as exc:
                raise self.failure(exc, "opened") from None
        return self._client

    # -- the pointer ----------------------------------------------------------------------
    def read_pointer(self) -> dict | None:
        from chromadb.errors import NotFoundError

        try:
            live = self.client().get_collection(self.pointer_name, embedding_function=None)
            metadata = live.metadata
        except NotFoundError:
            return None
        except Exception as exc:
            raise self.failure(exc, "read") from None
        pointer = dict(metadata or {})
        if not isinstance(pointer.get("collection"), str):
            raise DamagedPointer(
                f"The index pointer {self.pointer_name} on {self.where} is damaged: {REBUILD_HINT}."
            )
        return pointer

    def write_pointer(self, pointer: dict) -> None:
        try:
            live = self.client().get_or_create_collection(
                self.pointer_name, embedding_function=None
            )
            live.modify(metadata=pointer)  # replaces the whole metadata in one request
        except Exception as exc:
            raise self.failure(exc, "switched") from None

    def can_reset(self) -> bool:
        return False  # a server's storage is its own; a rebuild only adds a new collection

    def reset(self) -> None:
        raise IndexUnavailable(f"{self.where} cannot be reset by the coach.")

    def failure(self, exc: BaseException, doing: str) -> IndexUnavailable:
        import httpx

        if isinstance(exc, IndexUnavailable):
            return exc
        text = str(exc)
        if isinstance(exc, httpx.TransportError) or "Could not connect" in text:
            return self._unreachable()
        # The password travels in a header, never in the URL, so no message can carry it.
        first_line = (text.splitlines() or [""])[0][:200]
        return IndexUnavailable(
            f"The article index on {self.where} could not be {doing} "
            f"({type(exc).__name__}: {first_line}): check the server's log, then "
            f"{REBUILD_HINT}."
        )


def open_store(settings: Settings) -> ChromaFolder | ChromaServer:
    """The server named by ``COACH_CHROMA_URL``, or the folder in the data folder."""
    url = settings.chroma_url.get_secret_value() if settings.chroma_url else ""
    return ChromaServer(settings, url) if url.strip() else ChromaFolder(settings)
