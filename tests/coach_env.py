"""One built index and trained classifier per test session, in a temporary data folder."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from app.classifier import ClassifierStore
from app.index import ArticleIndex
from app.settings import Settings


@lru_cache(maxsize=1)
def shared_env() -> tuple[Settings, ArticleIndex, ClassifierStore]:
    """Settings, index and classifier store shared by every test that needs the real pipeline."""
    folder = Path(tempfile.mkdtemp(prefix="coach-test-"))
    atexit.register(shutil.rmtree, folder, True)
    settings = Settings(data_dir=folder, engine="offline", llm_base_url=None)
    index = ArticleIndex(settings)
    index.build()
    store = ClassifierStore(settings, index.embedder)
    store.get()
    return settings, index, store
