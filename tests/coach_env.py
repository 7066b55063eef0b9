"""One built index and trained classifier per test session, in a temporary data folder."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from app.classifier import ClassifierStore
from app.index import ArticleIndex
from app.safety_model import SafetyModelStore
from app.settings import Settings


@lru_cache(maxsize=1)
def shared_env() -> tuple[Settings, ArticleIndex, ClassifierStore]:
    """Settings, index and classifier store shared by every test that needs the real pipeline."""
    folder = Path(tempfile.mkdtemp(prefix="coach-test-"))
    atexit.register(shutil.rmtree, folder, True)
    seed_models(folder)
    settings = Settings(data_dir=folder, engine="offline", llm_base_url=None)
    index = ArticleIndex(settings)
    index.build()
    store = ClassifierStore(settings, index.embedder)
    store.get()
    SafetyModelStore(settings, index.embedder).ensure()
    return settings, index, store


def seed_models(folder: Path) -> None:
    """Start from the models `make test` trained into the project's data folder, if any.

    They are only a head start: each store checks the training-data hash of what it
    finds and retrains when it does not match, so a test never runs on a stale model.
    """
    source = Settings().data_dir
    for name in ("classifier.npz", "classifier.json", "guard-model.npz", "guard-model.json"):
        if (source / name).is_file():
            shutil.copy2(source / name, folder / name)
