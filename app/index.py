"""Builds the article index and retrieves passages from it, in a local folder or on a Chroma
server (``app.index_store`` is the seam to Chroma's clients).

Each build goes into a fresh collection named after the hash of ``knowledge/`` plus the
embedder's config; only when it is complete does the pointer (``index.json`` in the folder,
or the ``<collection>.live`` collection's metadata on a server) switch readers to it, so
nobody ever reads a half-built index. Processes sharing a data folder build one at a time
under a file lock, and a process that waited reuses the index the other one built. One
client and one embedder serve the whole process.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.embedder import MiniLMEmbedder
from app.errors import IndexUnavailable, InputError
from app.file_lock import file_lock
from app.index_store import REBUILD_HINT, DamagedPointer, IndexStore, open_store
from app.knowledge import knowledge_hash, load_knowledge
from app.passages import Passage, ScoredPassage
from app.settings import Settings, get_settings

BATCH = 64
# A collection that is neither live nor the one before it is deleted only when it is older
# than this: a process on another machine may be just about to switch to it, and a reader
# may still hold it (readers re-read the pointer and retry once when a collection vanishes).
KEEP_SECONDS = 600


@dataclass(frozen=True)
class BuildResult:
    """What ``build`` did: ``built`` is False for the no-op."""

    built: bool
    collection: str
    passages: int
    seconds: float


def _built_at(name: str, prefix: str) -> float | None:
    """When a collection called ``<prefix><hash>-<ms>[-<pid>]`` was created, in seconds."""
    parts = name[len(prefix) :].split("-")
    try:
        return int(parts[1]) / 1000 if len(parts) >= 2 else None
    except ValueError:
        return None


class ArticleIndex:
    """The article passages in Chroma, with build and retrieval."""

    def __init__(self, settings: Settings, embedder: MiniLMEmbedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or MiniLMEmbedder(str(settings.tokenizer_path))
        self.store: IndexStore = open_store(settings)
        self._collection = None
        self._collection_name: str | None = None
        self._by_code: dict[str, list[Passage]] = {}
        self._lock = threading.Lock()

    # -- locations ----------------------------------------------------------------------
    @property
    def lock_path(self):
        return self.settings.data_dir / "index.lock"

    @property
    def prefix(self) -> str:
        return self.settings.collection + "-"

    def wanted_hash(self) -> str:
        """Hash of the knowledge files plus the embedder's identity and config."""
        digest = hashlib.sha256(knowledge_hash(self.settings.knowledge_dir).encode())
        digest.update(MiniLMEmbedder.name().encode())
        digest.update(str(self.embedder.get_config().get("batch_size")).encode())
        return digest.hexdigest()

    def client(self) -> Any:
        """The Chroma client (folder or server) this index uses."""
        return self.store.client()

    def _pointer_or_none(self) -> dict | None:
        try:
            return self.store.read_pointer()
        except DamagedPointer:
            return None  # a build writes a new one

    # -- building -----------------------------------------------------------------------
    def is_current(self) -> bool:
        pointer = self._pointer_or_none()
        if not pointer or pointer.get("hash") != self.wanted_hash():
            return False
        try:
            collection = self.client().get_collection(
                pointer["collection"], embedding_function=self.embedder
            )
            return (collection.metadata or {}).get("complete") is True
        except IndexUnavailable:
            raise
        except Exception:
            return False

    def build(
        self, rebuild: bool = False, progress: Callable[[int, int], None] | None = None
    ) -> BuildResult:
        """Build the index when knowledge changed (or ``rebuild``); otherwise do nothing.

        Processes on one data folder build one at a time; one that waited for another's
        build finds the index current and does nothing.
        """
        started = time.perf_counter()
        self.settings.ensure_data_dir()
        if not rebuild and self.is_current():
            return self._unchanged(started)
        with file_lock(self.lock_path, "building the article index"):
            if not rebuild and self.is_current():
                return self._unchanged(started)
            return self._build(rebuild, progress, started)

    def _unchanged(self, started: float) -> BuildResult:
        pointer = self._pointer_or_none() or {}
        return BuildResult(
            False,
            pointer.get("collection", ""),
            pointer.get("passages", 0),
            time.perf_counter() - started,
        )

    def _build(
        self, rebuild: bool, progress: Callable[[int, int], None] | None, started: float
    ) -> BuildResult:
        wanted = self.wanted_hash()
        passages = load_knowledge(self.settings.knowledge_dir)
        if rebuild and self.store.can_reset() and not self._healthy():
            self.store.reset()
        # The process id keeps two machines building into one server in the same
        # millisecond apart.
        name = f"{self.prefix}{wanted[:12]}-{int(time.time() * 1000)}-{os.getpid()}"
        client = self.client()
        try:
            collection = client.create_collection(
                name,
                embedding_function=self.embedder,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"hash": wanted, "complete": False, "passages": len(passages)},
            )
            for i in range(0, len(passages), BATCH):
                chunk = passages[i : i + BATCH]
                collection.add(
                    ids=[p.id for p in chunk],
                    documents=[p.text for p in chunk],
                    metadatas=[p.metadata() for p in chunk],
                    embeddings=self.embedder.embed([p.embedding_text() for p in chunk]),
                )
                if progress:
                    progress(min(i + BATCH, len(passages)), len(passages))
            collection.modify(
                metadata={"hash": wanted, "complete": True, "passages": len(passages)}
            )
        except Exception as exc:
            raise self.store.failure(exc, "built") from None
        self._switch(name, wanted, len(passages))
        return BuildResult(True, name, len(passages), time.perf_counter() - started)

    def _healthy(self) -> bool:
        """Whether the Chroma store opens and answers; a damaged folder is reset by a rebuild."""
        try:
            self.client().list_collections()
            return True
        except Exception:
            return False

    def _switch(self, name: str, wanted: str, count: int) -> None:
        previous = (self._pointer_or_none() or {}).get("collection")
        self.store.write_pointer({"collection": name, "hash": wanted, "passages": count})
        with self._lock:
            self._collection, self._collection_name = None, None
        self._drop_old(keep={name, previous})

    def _drop_old(self, keep: set[str | None]) -> None:
        """Delete old builds, keeping the live one and the one before it for its readers."""
        client = self.client()
        now = time.time()
        try:
            names = [c if isinstance(c, str) else c.name for c in client.list_collections()]
        except Exception:
            return  # cleaning up is a courtesy; the next build tries again
        for old in names:
            if not old.startswith(self.prefix) or old in keep:
                continue
            built_at = _built_at(old, self.prefix)
            if built_at is not None and now - built_at < KEEP_SECONDS:
                continue
            try:
                client.delete_collection(old)
            except Exception:
                continue  # another process deleted it first

    # -- reading ------------------------------------------------------------------------
    def collection(self, fresh: bool = False) -> Any:
        """The live collection; ``fresh`` opens it again instead of reusing the held one."""
        pointer = self.store.read_pointer()
        if not pointer:
            raise IndexUnavailable("The article index has not been built yet: run `coach index`.")
        with self._lock:
            if fresh or self._collection is None or self._collection_name != pointer["collection"]:
                try:
                    self._collection = self.client().get_collection(
                        pointer["collection"], embedding_function=self.embedder
                    )
                except IndexUnavailable:
                    raise
                except Exception as exc:
                    if self.store.can_reset():
                        raise IndexUnavailable(
                            f"The article index is missing or corrupted: {REBUILD_HINT}."
                        ) from None
                    raise self.store.failure(exc, "opened") from None
                self._collection_name = pointer["collection"]
            return self._collection

    def _read(self, doing: str, call: Callable[[Any], Any]) -> Any:
        """``call(collection)``, retried once on a freshly opened live collection: another
        process may have switched the index and dropped the one this process held."""
        try:
            return call(self.collection())
        except IndexUnavailable:
            raise
        except Exception:
            pass
        try:
            return call(self.collection(fresh=True))
        except IndexUnavailable:
            raise
        except Exception as exc:
            raise self.store.failure(exc, doing) from None

    def retrieve(
        self, query: str, k: int | None = None, vector: np.ndarray | None = None
    ) -> list[ScoredPassage]:
        """The ``k`` passages closest to ``query``, best first, with cosine similarity.

        ``vector`` is the query's embedding when the caller already has it.
        """
        if not query or not query.strip():
            raise InputError("The query is empty: describe the situation in a sentence or two.")
        k = k or self.settings.k
        vector = self.embedder.embed([query]) if vector is None else vector.reshape(1, -1)
        result = self._read(
            "read",
            lambda collection: collection.query(
                query_embeddings=vector,
                n_results=k,
                include=["documents", "metadatas", "distances"],
            ),
        )
        return [
            ScoredPassage(passage=Passage.from_metadata(doc, meta), score=round(1.0 - dist, 4))
            for doc, meta, dist in zip(
                result["documents"][0], result["metadatas"][0], result["distances"][0], strict=True
            )
        ]

    def _responsibilities(self) -> list[Passage]:
        """The passages that carry a responsibility code, read once per collection."""

        def read(collection) -> tuple[str, list[Passage]]:
            cached = self._by_code.get(collection.name)
            if cached is not None:
                return collection.name, cached
            got = collection.get(where={"code": {"$ne": ""}}, include=["documents", "metadatas"])
            return collection.name, sorted(
                (
                    Passage.from_metadata(doc, meta)
                    for doc, meta in zip(got["documents"], got["metadatas"], strict=True)
                ),
                key=lambda p: (p.source, p.start),
            )

        name, found = self._read("read", read)
        self._by_code = {name: found}
        return found

    def passages(self, ids: Iterable[str] | None = None, codes: Iterable[str] | None = None):
        """Passages by id or by responsibility code, in the article's order."""
        if codes is not None and ids is None:
            wanted = set(codes)
            return [p for p in self._responsibilities() if p.code in wanted]
        if ids is not None:
            id_list = list(ids)
            got = self._read(
                "read",
                lambda c: c.get(ids=id_list, include=["documents", "metadatas"]),
            )
        else:
            got = self._read("read", lambda c: c.get(include=["documents", "metadatas"]))
        found = [
            Passage.from_metadata(doc, meta)
            for doc, meta in zip(got["documents"], got["metadatas"], strict=True)
        ]
        return sorted(found, key=lambda p: (p.source, p.start))


_INDEX: ArticleIndex | None = None
_INDEX_LOCK = threading.Lock()


def get_index(settings: Settings | None = None) -> ArticleIndex:
    """The process-wide index (one Chroma client and one embedder per process)."""
    global _INDEX
    with _INDEX_LOCK:
        if _INDEX is None or (settings is not None and _INDEX.settings is not settings):
            _INDEX = ArticleIndex(settings or get_settings())
        return _INDEX


def retrieve(query: str, k: int | None = None) -> list[ScoredPassage]:
    """Passages closest to ``query`` from the process-wide index."""
    return get_index().retrieve(query, k)
