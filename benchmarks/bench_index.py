"""Index build for ``knowledge/``: cold (empty data folder, model loaded) and the warm no-op."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from app.index import ArticleIndex
from app.settings import Settings
from benchmarks.figures import Section


def run(cold_builds: int, warm_builds: int) -> Section:
    """Build into ``cold_builds`` fresh folders, then time ``warm_builds`` no-op builds."""
    section = Section("index")
    cold: list[float] = []
    warm: list[float] = []
    passages = 0
    for i in range(cold_builds):
        folder = Path(tempfile.mkdtemp(prefix="coach-bench-index-"))
        try:
            # A new index and embedder each time: the ONNX model load is part of a cold build.
            index = ArticleIndex(Settings(data_dir=folder, engine="offline", llm_base_url=None))
            started = time.perf_counter()
            result = index.build()
            cold.append(time.perf_counter() - started)
            passages = result.passages
            if i == cold_builds - 1:
                for _ in range(warm_builds):
                    started = time.perf_counter()
                    again = index.build()
                    warm.append((time.perf_counter() - started) * 1000)
                    if again.built:
                        raise RuntimeError("a second build of unchanged knowledge was not a no-op")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    section.add(
        "build_cold_s",
        "Index build, cold (empty folder, model load included)",
        "s",
        cold,
        note="in-process; each build uses a new data folder and a new embedder",
    )
    section.add("build_warm_ms", "Index build, warm no-op", "ms", warm)
    section.details["passages"] = passages
    return section
