"""Query embedding plus retrieval latency on the article index, over varied queries."""

from __future__ import annotations

import gc
import time

from app.index import ArticleIndex
from benchmarks import synthetic
from benchmarks.figures import Section

WARM_UP = 5


def run(index: ArticleIndex, queries: int, k: int = 4) -> Section:
    """Time ``index.retrieve`` over ``queries`` questions, split into embedding and search."""
    section = Section("retrieval")
    texts = synthetic.queries(queries)
    for text in texts[:WARM_UP]:
        index.retrieve(text, k)
    gc.collect()
    total, embed, search = [], [], []
    for text in texts:
        started = time.perf_counter()
        vector = index.embedder.embed([text])[0]
        embedded = time.perf_counter()
        found = index.retrieve(text, k, vector=vector)
        done = time.perf_counter()
        if not found:
            raise RuntimeError(f"retrieval returned nothing for {text!r}")
        total.append((done - started) * 1000)
        embed.append((embedded - started) * 1000)
        search.append((done - embedded) * 1000)
    section.add("query_ms", "Retrieval, article index (embed + search)", "ms", total)
    section.add("embed_ms", "  of which query embedding", "ms", embed)
    section.add("search_ms", "  of which Chroma search", "ms", search)
    section.details.update({"queries": len(texts), "k": k})
    return section
