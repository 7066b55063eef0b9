"""The benchmarks' data folders: one built index and trained local models, copied per run.

The base folder (``benchmarks/.data/coach``) is seeded from the project's own data
folder when that already holds a current index and classifier (``make bench``
runs ``coach index`` first), so the classifier is not trained twice. Runs that
write (the app's conversation store, the eval cache) get a fresh copy.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from app.classifier import ClassifierStore
from app.index import ArticleIndex
from app.safety_model import SafetyModelStore
from app.settings import Settings, get_settings

BENCH_ROOT = Path(__file__).resolve().parent
DATA_ROOT = BENCH_ROOT / ".data"
SEEDED = (
    "chroma",
    "index.json",
    "classifier.npz",
    "classifier.json",
    "guard-model.npz",
    "guard-model.json",
)


def seed_from(source: Path, target: Path) -> bool:
    """Copy a built index and classifier from ``source`` into an empty ``target``."""
    if target.exists() or not all((source / name).exists() for name in SEEDED):
        return False
    target.mkdir(parents=True)
    for name in SEEDED:
        src = source / name
        if src.is_dir():
            shutil.copytree(src, target / name)
        else:
            shutil.copy2(src, target / name)
    return True


def copy_data(source: Path, prefix: str = "coach-bench-") -> Path:
    """A temporary copy of the index and classifier in ``source``; the caller removes it."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.rmtree(folder)
    if not seed_from(source, folder):
        raise RuntimeError(f"{source} holds no built index and classifier to copy")
    return folder


@dataclass
class CoachData:
    """Settings, index and classifier over one data folder, built once per benchmark run."""

    data_dir: Path
    settings: Settings = field(init=False)
    index: ArticleIndex = field(init=False)
    classifiers: ClassifierStore = field(init=False)
    seeded: bool = False
    built: bool = False
    trained: bool = False

    def __post_init__(self) -> None:
        self.settings = Settings(data_dir=self.data_dir, engine="offline", llm_base_url=None)
        self.index = ArticleIndex(self.settings)
        self.classifiers = ClassifierStore(self.settings, self.index.embedder)

    @classmethod
    def prepare(cls, data_dir: Path, seed: Path | None = None) -> CoachData:
        """The folder with a current index and classifier, seeded or built when missing."""
        seeded = seed_from(seed, data_dir) if seed is not None else False
        data = cls(data_dir, seeded=seeded)
        data.built = data.index.build().built
        data.trained = data.classifiers.ensure()
        data.classifiers.get()
        SafetyModelStore(data.settings, data.index.embedder).ensure()
        return data


def default_base() -> CoachData:
    """The base folder under ``benchmarks/.data``, seeded from the project's data folder."""
    return CoachData.prepare(DATA_ROOT / "coach", seed=get_settings().data_dir)
