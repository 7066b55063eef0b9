"""Retrieval at scale: a synthetic 100,000-passage Chroma collection, built once and cached.

Embedding 100,000 passages with MiniLM on two cores takes longer than the whole
benchmark may (about 150 passages/s at best). So ``sentences`` real synthetic
sentences are embedded with our MiniLM embedder and every passage is two of them
joined, with a vector derived from theirs: ``normalise(0.8 a + 0.6 b + noise)``,
deterministic for the seed. The collection, its distances and the HNSW graph are
real; only the passage vectors are derived. Queries are embedded live with MiniLM.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from app.embedder import MiniLMEmbedder
from app.index import ArticleIndex
from app.passages import Passage, ScoredPassage
from app.settings import Settings
from benchmarks import synthetic
from benchmarks.figures import Section

GENERATOR_VERSION = 1
COLLECTION = "scale-synthetic"
SEED = 20240611
BATCH = 5000
WARM_UP = 5


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def derived_batches(
    sentences: list[str], vectors: np.ndarray, size: int, seed: int
) -> Iterator[tuple[list[Passage], np.ndarray]]:
    """Passages of two joined sentences each, with vectors derived from the sentences'."""
    rng = np.random.default_rng(seed)
    count = len(sentences)
    for start in range(0, size, BATCH):
        n = min(BATCH, size - start)
        first = rng.integers(0, count, n)
        second = (first + rng.integers(1, count, n)) % count
        noise = rng.standard_normal((n, vectors.shape[1])).astype(np.float32) * 0.02
        mixed = 0.8 * vectors[first] + 0.6 * vectors[second] + noise
        mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
        passages = []
        for j in range(n):
            number = start + j
            text = f"{sentences[first[j]]} {sentences[second[j]]}"
            passages.append(
                Passage(
                    id=f"synthetic#{number}",
                    doc_id="synthetic",
                    title="Synthetic workplace notes",
                    section=f"Note {number // 100}",
                    kind="paragraph",
                    side="none",
                    text=text,
                    source="synthetic.md",
                    start=number * 300,
                    end=number * 300 + len(text),
                )
            )
        yield passages, mixed.astype(np.float32)


class ScaleIndex:
    """The synthetic collection in ``folder``, opened through the app's Chroma seam."""

    def __init__(
        self, folder: Path, embedder: MiniLMEmbedder, size: int, sentences: int, seed: int = SEED
    ) -> None:
        self.folder = folder
        self.embedder = embedder
        self.size = size
        self.sentences = sentences
        self.seed = seed
        self.record_path = folder / "build.json"
        self._index: ArticleIndex | None = None
        self._collection: Any = None

    def wanted(self) -> dict[str, Any]:
        return {
            "generator": GENERATOR_VERSION,
            "passages": self.size,
            "sentences": self.sentences,
            "seed": self.seed,
            "embedder": MiniLMEmbedder.name(),
        }

    def record(self) -> dict[str, Any] | None:
        try:
            record = json.loads(self.record_path.read_text())
        except (OSError, ValueError):
            return None
        same = all(record.get(k) == v for k, v in self.wanted().items())
        return record if same and record.get("complete") else None

    def _app_index(self) -> ArticleIndex:
        if self._index is None:
            settings = Settings(data_dir=self.folder, engine="offline", llm_base_url=None)
            self._index = ArticleIndex(settings, embedder=self.embedder)
        return self._index

    def collection(self) -> Any:
        if self._collection is None:
            self._collection = (
                self._app_index()
                .client()
                .get_collection(COLLECTION, embedding_function=self.embedder)
            )
        return self._collection

    def ensure(self) -> tuple[dict[str, Any], bool]:
        """The build record, building the collection first when it is missing; (record, built)."""
        record = self.record()
        if record is not None:
            try:
                if self.collection().count() == self.size:
                    return record, False
            except Exception:  # a damaged cache is rebuilt below
                pass
        return self.build(), True

    def build(self) -> dict[str, Any]:
        from chromadb.api.client import SharedSystemClient

        self._collection, self._index = None, None
        SharedSystemClient.clear_system_cache()
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        started = time.perf_counter()
        texts = synthetic.sentences(self.sentences, seed=self.seed)
        vectors = self.embedder.embed(texts)
        embedded = time.perf_counter()
        client = self._app_index().client()
        collection = client.create_collection(
            COLLECTION,
            embedding_function=self.embedder,
            configuration={"hnsw": {"space": "cosine"}},
        )
        for passages, batch in derived_batches(texts, vectors, self.size, self.seed):
            collection.add(
                ids=[p.id for p in passages],
                documents=[p.text for p in passages],
                metadatas=[p.metadata() for p in passages],
                embeddings=batch,
            )
        done = time.perf_counter()
        self._collection = collection
        record = {
            **self.wanted(),
            "complete": True,
            "build_s": round(done - started, 2),
            "embed_sentences_s": round(embedded - started, 2),
            "embed_rate_per_s": round(self.sentences / max(embedded - started, 1e-9), 1),
            "add_s": round(done - embedded, 2),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_average_at_build": [round(x, 2) for x in os.getloadavg()],
            "disk_bytes": disk_bytes(self.folder),
        }
        self.record_path.write_text(json.dumps(record, indent=2))
        return record

    def retrieve(self, query: str, k: int = 4) -> tuple[list[ScoredPassage], float]:
        """The app's retrieval steps on this collection; also the seconds spent embedding."""
        started = time.perf_counter()
        vector = self.embedder.embed([query])
        embed_s = time.perf_counter() - started
        result = self.collection().query(
            query_embeddings=vector, n_results=k, include=["documents", "metadatas", "distances"]
        )
        found = [
            ScoredPassage(passage=Passage.from_metadata(doc, meta), score=round(1.0 - dist, 4))
            for doc, meta, dist in zip(
                result["documents"][0], result["metadatas"][0], result["distances"][0], strict=True
            )
        ]
        return found, embed_s


def run(
    folder: Path, embedder: MiniLMEmbedder, size: int, sentences: int, queries: int, k: int = 4
) -> Section:
    """Build (once) and query the synthetic collection of ``size`` passages."""
    section = Section("scale")
    scale = ScaleIndex(folder, embedder, size, sentences)
    record, built = scale.ensure()
    started = time.perf_counter()
    scale.collection().count()
    open_s = time.perf_counter() - started
    texts = synthetic.queries(queries, seed=29)
    for text in texts[:WARM_UP]:
        scale.retrieve(text, k)
    gc.collect()
    total, embed, search = [], [], []
    for text in texts:
        started = time.perf_counter()
        found, embed_s = scale.retrieve(text, k)
        elapsed = time.perf_counter() - started
        if len(found) != min(k, size):
            raise RuntimeError(f"the synthetic index returned {len(found)} passages, not {k}")
        total.append(elapsed * 1000)
        embed.append(embed_s * 1000)
        search.append((elapsed - embed_s) * 1000)
    derived = f"vectors derived from {sentences} embedded sentences"
    section.add(
        "build_s",
        f"Build, {size:,} passages (first build)",
        "s",
        [record["build_s"]],
        note=f"{derived}; recorded when first built ({record['built_at']}), cached since",
    )
    section.add("disk_mb", f"Disk size, {size:,} passages", "MB", [disk_bytes(folder) / 1e6])
    section.add("query_ms", f"Retrieval, {size:,} passages (embed + search)", "ms", total)
    section.add("embed_ms", "  of which query embedding", "ms", embed)
    section.add("search_ms", "  of which Chroma search", "ms", search)
    section.details.update(
        {
            "passages": size,
            "vectors": derived,
            "built_this_run": built,
            "first_build": record,
            "open_s": round(open_s, 3),
            "queries": len(texts),
            "k": k,
            "folder": str(folder),
        }
    )
    return section
