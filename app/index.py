"""The one seam to Chroma: builds the article index and retrieves passages from it.

The index lives in a Chroma ``PersistentClient`` under the data folder, telemetry
off. Each build goes into a fresh collection named after the hash of
``knowledge/`` plus the embedder's config; only when it is complete does
``index.json`` (written atomically) switch readers to it, so nobody ever reads a
half-built index. One client and one embedder serve the whole process.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.embedder import MiniLMEmbedder
from app.errors import IndexUnavailable, InputError
from app.knowledge import knowledge_hash, load_knowledge
from app.passages import Passage, ScoredPassage
from app.settings import Settings, get_settings

REBUILD_HINT = "run `coach index --rebuild`"


@dataclass(frozen=True)
class BuildResult:
    """What ``build`` did: ``built`` is False for the no-op."""

    built: bool
    collection: str
    passages: int
    seconds: float


def _chroma_client(path: Path):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.PersistentClient(
        path=str(path), settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    )


class ArticleIndex:
    """The article passages in Chroma, with build and retrieval."""

    def __init__(self, settings: Settings, embedder: MiniLMEmbedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or MiniLMEmbedder(str(settings.tokenizer_path))
        self._client = None
        self._collection = None
        self._collection_name: str | None = None
        self._by_code: dict[str, list[Passage]] = {}
        self._lock = threading.Lock()

    # -- locations ----------------------------------------------------------------------
    @property
    def chroma_dir(self) -> Path:
        return self.settings.data_dir / "chroma"

    @property
    def pointer_path(self) -> Path:
        return self.settings.data_dir / "index.json"

    def wanted_hash(self) -> str:
        """Hash of the knowledge files plus the embedder's identity and config."""
        digest = hashlib.sha256(knowledge_hash(self.settings.knowledge_dir).encode())
        digest.update(MiniLMEmbedder.name().encode())
        digest.update(str(self.embedder.get_config().get("batch_size")).encode())
        return digest.hexdigest()

    def _pointer(self) -> dict | None:
        try:
            return json.loads(self.pointer_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            raise IndexUnavailable(
                f"The index pointer {self.pointer_path} is damaged: {REBUILD_HINT}."
            ) from None

    def client(self):
        if self._client is None:
            self.settings.ensure_data_dir()
            try:
                self._client = _chroma_client(self.chroma_dir)
            except Exception as exc:  # Chroma raises many types for a broken store
                raise IndexUnavailable(
                    f"The index in {self.chroma_dir} cannot be opened ({type(exc).__name__}): "
                    f"it may be corrupted or locked by another program; {REBUILD_HINT}."
                ) from None
        return self._client

    # -- building -----------------------------------------------------------------------
    def _pointer_or_none(self) -> dict | None:
        try:
            return self._pointer()
        except IndexUnavailable:
            return None

    def is_current(self) -> bool:
        pointer = self._pointer_or_none()
        if not pointer or pointer.get("hash") != self.wanted_hash():
            return False
        try:
            collection = self.client().get_collection(pointer["collection"])
            return (collection.metadata or {}).get("complete") is True
        except IndexUnavailable:
            raise
        except Exception:
            return False

    def build(
        self, rebuild: bool = False, progress: Callable[[int, int], None] | None = None
    ) -> BuildResult:
        """Build the index when knowledge changed (or ``rebuild``); otherwise do nothing."""
        started = time.perf_counter()
        self.settings.ensure_data_dir()
        wanted = self.wanted_hash()
        if not rebuild and self.is_current():
            pointer = self._pointer_or_none() or {}
            return BuildResult(
                False,
                pointer["collection"],
                pointer.get("passages", 0),
                time.perf_counter() - started,
            )
        passages = load_knowledge(self.settings.knowledge_dir)
        if rebuild and not self._healthy():
            self._reset_store()
        name = f"{self.settings.collection}-{wanted[:12]}-{int(time.time() * 1000)}"
        client = self.client()
        collection = client.create_collection(
            name,
            embedding_function=self.embedder,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"hash": wanted, "complete": False, "passages": len(passages)},
        )
        batch = 64
        for i in range(0, len(passages), batch):
            chunk = passages[i : i + batch]
            collection.add(
                ids=[p.id for p in chunk],
                documents=[p.text for p in chunk],
                metadatas=[p.metadata() for p in chunk],
                embeddings=self.embedder.embed([p.embedding_text() for p in chunk]),
            )
            if progress:
                progress(min(i + batch, len(passages)), len(passages))
        collection.modify(metadata={"hash": wanted, "complete": True, "passages": len(passages)})
        self._switch(name, wanted, len(passages))
        return BuildResult(True, name, len(passages), time.perf_counter() - started)

    def _healthy(self) -> bool:
        """Whether the Chroma store opens and answers; a damaged one is reset by a rebuild."""
        try:
            self.client().list_collections()
            return True
        except Exception:
            return False

    def _reset_store(self) -> None:
        import shutil

        from chromadb.api.client import SharedSystemClient

        self._client = None
        # Chroma caches one system per path in the process; drop it with the files.
        SharedSystemClient.clear_system_cache()
        shutil.rmtree(self.chroma_dir, ignore_errors=True)
        self.pointer_path.unlink(missing_ok=True)

    def _switch(self, name: str, wanted: str, count: int) -> None:
        previous = (self._pointer_or_none() or {}).get("collection")
        tmp = self.pointer_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"collection": name, "hash": wanted, "passages": count}))
        os.replace(tmp, self.pointer_path)
        with self._lock:
            self._collection, self._collection_name = None, None
        # Keep the previous collection for readers that still hold it; drop older ones.
        client = self.client()
        for old in client.list_collections():
            old_name = old if isinstance(old, str) else old.name
            if old_name.startswith(self.settings.collection + "-") and old_name not in (
                name,
                previous,
            ):
                client.delete_collection(old_name)

    # -- reading ------------------------------------------------------------------------
    def collection(self):
        pointer = self._pointer()
        if not pointer:
            raise IndexUnavailable("The article index has not been built yet: run `coach index`.")
        with self._lock:
            if self._collection is None or self._collection_name != pointer["collection"]:
                try:
                    self._collection = self.client().get_collection(
                        pointer["collection"], embedding_function=self.embedder
                    )
                except IndexUnavailable:
                    raise
                except Exception:
                    raise IndexUnavailable(
                        f"The article index is missing or corrupted: {REBUILD_HINT}."
                    ) from None
                self._collection_name = pointer["collection"]
            return self._collection

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
        collection = self.collection()
        try:
            result = collection.query(
                query_embeddings=vector,
                n_results=k,
                include=["documents", "metadatas", "distances"],
            )
        except Exception:
            raise IndexUnavailable(
                f"The article index could not be read: {REBUILD_HINT}."
            ) from None
        return [
            ScoredPassage(passage=Passage.from_metadata(doc, meta), score=round(1.0 - dist, 4))
            for doc, meta, dist in zip(
                result["documents"][0], result["metadatas"][0], result["distances"][0], strict=True
            )
        ]

    def _responsibilities(self, collection) -> list[Passage]:
        """The passages that carry a responsibility code, read once per collection."""
        name = collection.name
        cached = self._by_code.get(name)
        if cached is None:
            got = collection.get(where={"code": {"$ne": ""}}, include=["documents", "metadatas"])
            cached = sorted(
                (
                    Passage.from_metadata(doc, meta)
                    for doc, meta in zip(got["documents"], got["metadatas"], strict=True)
                ),
                key=lambda p: (p.source, p.start),
            )
            self._by_code = {name: cached}
        return cached

    def passages(self, ids: Iterable[str] | None = None, codes: Iterable[str] | None = None):
        """Passages by id or by responsibility code, in the article's order."""
        collection = self.collection()
        if ids is not None:
            got = collection.get(ids=list(ids), include=["documents", "metadatas"])
        elif codes is not None:
            wanted = set(codes)
            return [p for p in self._responsibilities(collection) if p.code in wanted]
        else:
            got = collection.get(include=["documents", "metadatas"])
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
