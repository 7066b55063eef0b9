"""The trained safety detector: which stop kind, if any, a message is.

One multinomial logistic regression over five classes (``none`` and the four stop
kinds) on the same features as the verdict classifier: the MiniLM embedding next to
TF-IDF words and word pairs. It learns from ``knowledge/guard/situations.yaml``,
which was written apart from the guard's eval suites.

A message is read as a whole and sentence by sentence (each sentence and each pair
of neighbouring sentences), and each stop kind takes its highest probability over
those windows, so one alarming sentence inside a long workplace story still counts.
A kind stops the message when that score reaches the kind's threshold; thresholds
live in ``knowledge/guard/thresholds.yaml`` and are chosen on the dev split only
(``coach guard tune``). Crisis outranks every other kind.

The fitted model is stored as plain arrays (``.npz``) plus JSON, never pickle; a
damaged or foreign file is refused and retrained.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.data_files import load_arrays, load_yaml_model, save_arrays
from app.errors import ConfigError
from app.text_features import WordFeatures, fit_word_features

KINDS = ("none", "crisis", "unethical", "prompt_leak", "off_topic")
STOP_KINDS = KINDS[1:]
StopKind = Literal["crisis", "unethical", "prompt_leak", "off_topic"]
MODEL_VERSION = 1
FORMAT = "coach-guard-model"
MAX_WINDOWS = 96
WINDOW_WEIGHT = 0.5  # how much each sentence of an ordinary training message counts
CRISIS_MARGIN = 0.05  # chosen on the dev split
ORDINARY_WEIGHT = 1.0  # how much each of the verdict classifier's situations counts
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")


class GuardExample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    kind: Literal["none", "crisis", "unethical", "prompt_leak", "off_topic"]


class GuardTrainingSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    weight: float = Field(1.0, gt=0, le=10, description="how much each example counts")
    examples: list[GuardExample] = Field(min_length=50)


class Thresholds(BaseModel):
    """Per-kind stop thresholds, chosen on the dev split."""

    model_config = ConfigDict(extra="forbid")

    crisis: float = Field(ge=0, le=1)
    unethical: float = Field(ge=0, le=1)
    prompt_leak: float = Field(ge=0, le=1)
    off_topic: float = Field(ge=0, le=1)
    chosen_on: str = ""
    note: str = ""


def load_guard_training(path: Path) -> GuardTrainingSet:
    return load_yaml_model(path, GuardTrainingSet, "guard training set")


def load_thresholds(path: Path) -> Thresholds:
    return load_yaml_model(path, Thresholds, "guard thresholds file")


def units(text: str) -> tuple[list[str], bool]:
    """The pieces of a text that get embedded, and whether neighbours are also read in pairs.

    Sentences (a fragment under four words joins the one before it; a sentence over
    60 words is cut into overlapping runs); for a very long text, overlapping runs of
    48 words instead, so every part is still read.
    """
    sentences = [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]
    merged: list[str] = []
    for sentence in sentences:
        if merged and len(merged[-1].split()) < 4:
            merged[-1] = f"{merged[-1]} {sentence}"
        else:
            merged.extend(_runs(sentence) if len(sentence.split()) > 60 else [sentence])
    if len(merged) <= 1:
        return [text.strip() or text], False
    if 2 * len(merged) <= MAX_WINDOWS:
        return merged, True
    return _runs(text), False


def _runs(text: str, size: int = 48, step: int = 32) -> list[str]:
    words = text.split()
    return [" ".join(words[i : i + size]) for i in range(0, max(len(words) - 16, 1), step)]


def windows(text: str) -> list[str]:
    """What the detector reads: the whole text, each unit and each neighbouring pair."""
    parts, paired = units(text)
    if len(parts) == 1:
        return [text]
    pairs = [f"{a} {b}" for a, b in zip(parts, parts[1:], strict=False)] if paired else []
    return [text, *parts, *pairs]


def _normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.clip(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12, None)


def window_vectors(unit_vectors: np.ndarray, paired: bool) -> np.ndarray:
    """Vectors for ``windows()``, built from the units' embeddings alone.

    The whole text and each pair are the normalised sums of their units' vectors, so a
    message costs one embedding per sentence and nothing more (training does the same).
    """
    if len(unit_vectors) == 1:
        return unit_vectors[:1]
    whole = _normalise(unit_vectors.sum(axis=0, keepdims=True))
    if not paired:
        return np.vstack([whole, unit_vectors])
    pairs = _normalise(unit_vectors[:-1] + unit_vectors[1:])
    return np.vstack([whole, unit_vectors, pairs])


def embed_windows(
    texts: list[str], embed: Callable[[list[str]], np.ndarray]
) -> list[tuple[list[str], np.ndarray]]:
    """For each text, its windows and their vectors; every distinct unit is embedded once,
    shortest first, so a batch pads little."""
    split = [units(t) for t in texts]
    wholes = [_runs(t, 120, 120) if len(t.split()) > 120 else [t] for t in texts]
    pieces = sorted({u for parts, _ in split for u in parts}, key=len)
    longer = sorted({u for w in wholes for u in w} - set(pieces), key=len)
    # Short sentences and whole texts are embedded in separate calls: a batch is padded
    # to its longest text, and one long text would make every sentence cost as much.
    vectors = {u: v for u, v in zip(pieces, embed(pieces) if pieces else [], strict=True)}
    vectors.update(zip(longer, embed(longer) if longer else [], strict=True))
    out = []
    for text, (parts, paired), whole in zip(texts, split, wholes, strict=True):
        found = window_vectors(np.array([vectors[u] for u in parts]), paired)
        found[0] = _normalise(np.sum([vectors[u] for u in whole], axis=0))
        out.append((windows(text), found))
    return out


@dataclass
class SafetyModel:
    """The fitted detector as arrays: predicting needs numpy only."""

    words: WordFeatures
    coef: np.ndarray  # (5, dims + words)
    intercept: np.ndarray  # (5,)
    dims: int
    training_hash: str

    def probabilities(self, vectors: np.ndarray, texts: list[str]) -> np.ndarray:
        logits = vectors.astype(np.float64) @ self.coef[:, : self.dims].T + self.intercept
        for row, text in enumerate(texts):
            idx, weights = self.words.transform(text)
            if len(idx):
                logits[row] += self.coef[:, self.dims + idx] @ weights
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> None:
        """Write ``path`` (.npz arrays) and its .json sidecar atomically."""
        meta = {
            "format": FORMAT,
            "version": MODEL_VERSION,
            "kinds": list(KINDS),
            "dims": self.dims,
            "training_hash": self.training_hash,
            "words": self.words.to_json(),
        }
        arrays = {"coef": self.coef, "intercept": self.intercept, "idf": self.words.idf}
        save_arrays(path, arrays, meta)

    @classmethod
    def load(cls, path: Path) -> SafetyModel:
        """Read a saved model; ``ValueError`` when it is damaged or not ours."""
        meta, arrays = load_arrays(path, FORMAT, MODEL_VERSION)
        try:
            if list(meta.get("kinds") or []) != list(KINDS):
                raise ValueError("different kinds")
            coef, intercept = arrays["coef"], arrays["intercept"]
            words = WordFeatures.from_json(meta["words"], arrays["idf"])
            dims = int(meta["dims"])
            training_hash = str(meta["training_hash"])
        except (KeyError, TypeError) as exc:
            raise ValueError(str(exc)) from exc
        if coef.shape != (len(KINDS), dims + words.size) or intercept.shape != (len(KINDS),):
            raise ValueError("array shapes do not match")
        return cls(words, coef, intercept, dims, training_hash)


def training_rows(
    texts: list[str], kinds: list[str], embed: Callable[[list[str]], np.ndarray]
) -> tuple[list[str], np.ndarray, list[str], list[float]]:
    """Rows to fit on: each message, plus every window of the ordinary ones as ordinary.

    The detector reads sentence windows at run time; a fragment such as "I'm the head
    of QA." must look ordinary to it, and any piece of an ordinary message is one. The
    pieces of a stop message are not added: the one alarming sentence is not known.
    Returns texts, vectors, kinds and weights.
    """
    rows: list[str] = []
    vectors: list[np.ndarray] = []
    labels: list[str] = []
    weights: list[float] = []
    for (parts, part_vectors), kind in zip(embed_windows(texts, embed), kinds, strict=True):
        keep = len(parts) if kind == "none" else 1
        rows.extend(parts[:keep])
        vectors.append(part_vectors[:keep])
        labels.extend([kind] * keep)
        weights.extend([1.0] + [WINDOW_WEIGHT] * (keep - 1))
    return rows, np.vstack(vectors), labels, weights


def weighted_rows(
    texts: list[str],
    kinds: list[str],
    scale: list[float],
    embed: Callable[[list[str]], np.ndarray],
) -> tuple[list[str], np.ndarray, list[str], list[float]]:
    """``training_rows`` for messages that each carry their file's weight."""
    rows: list[str] = []
    vectors: list[np.ndarray] = []
    labels: list[str] = []
    weights: list[float] = []
    for weight in sorted(set(scale)):
        chosen = [i for i, w in enumerate(scale) if w == weight]
        r, v, k, w = training_rows([texts[i] for i in chosen], [kinds[i] for i in chosen], embed)
        rows += r
        vectors.append(v)
        labels += k
        weights += [x * weight for x in w]
    return rows, np.vstack(vectors), labels, weights


def fit_safety_model(
    texts: list[str],
    kinds: list[str],
    vectors: np.ndarray,
    training_hash: str = "",
    weights: list[float] | None = None,
) -> SafetyModel:
    """Fit the five-class model with scikit-learn and keep its arrays."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.linear_model import LogisticRegression

    words, vectorizer = fit_word_features(texts)
    features = hstack([csr_matrix(vectors), vectorizer.transform(texts)]).tocsr()
    model = LogisticRegression(C=4.0, max_iter=3000, class_weight="balanced", random_state=0)
    model.fit(features, kinds, sample_weight=weights)
    order = [list(model.classes_).index(k) for k in KINDS]
    return SafetyModel(
        words=words,
        coef=model.coef_[order].astype(np.float64),
        intercept=model.intercept_[order].astype(np.float64),
        dims=vectors.shape[1],
        training_hash=training_hash,
    )


@dataclass(frozen=True)
class SafetyReading:
    """What the detector read: the stop kind (or None), each kind's score, and why."""

    kind: str | None
    scores: dict[str, float] = field(default_factory=dict)
    window: str = ""  # the sentence(s) that scored highest for the chosen kind


def decide(scores: dict[str, float], thresholds: Thresholds) -> str | None:
    """The stop kind for these per-kind scores: crisis first, then the clearest."""
    over = {k: scores[k] / max(getattr(thresholds, k), 1e-6) for k in STOP_KINDS}
    hits = [k for k in STOP_KINDS if scores[k] >= getattr(thresholds, k)]
    if not hits:
        return None
    if "crisis" in hits and scores["crisis"] >= max(scores[k] for k in hits) - CRISIS_MARGIN:
        return "crisis"  # safety first: crisis wins unless another kind is clearly stronger
    return max((k for k in hits if k != "crisis"), key=over.get, default="crisis")


class SafetyDetector:
    """Reads a message with the fitted model and the thresholds."""

    def __init__(
        self,
        model: SafetyModel,
        thresholds: Thresholds,
        embed: Callable[[list[str]], np.ndarray],
    ) -> None:
        self.model = model
        self.thresholds = thresholds
        self.embed = embed

    def window_scores(self, text: str) -> tuple[list[str], np.ndarray]:
        [(parts, vectors)] = embed_windows([text], self.embed)
        return parts, self.model.probabilities(vectors, parts)

    def read(self, text: str) -> SafetyReading:
        if not text.strip():
            return SafetyReading(kind=None)
        parts, probs = self.window_scores(text)
        scores = {k: round(float(probs[:, KINDS.index(k)].max()), 4) for k in STOP_KINDS}
        kind = decide(scores, self.thresholds)
        window = ""
        if kind:
            window = parts[int(probs[:, KINDS.index(kind)].argmax())]
        return SafetyReading(kind=kind, scores=scores, window=window)


def without(detector: SafetyDetector, text: str, kind: str) -> str:
    """The text less every sentence that reads as ``kind`` on its own."""
    parts, _ = units(text)
    if len(parts) <= 1:
        return ""
    [(found, vectors)] = embed_windows([text], detector.embed)
    probs = detector.model.probabilities(vectors[1 : 1 + len(parts)], parts)
    bar = getattr(detector.thresholds, kind)
    column = probs[:, KINDS.index(kind)]
    return " ".join(p for p, score in zip(parts, column, strict=True) if score < bar)


def guard_training_hash(paths: list[Path], embedder_name: str) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    digest.update(f"{MODEL_VERSION}:{WINDOW_WEIGHT}:{ORDINARY_WEIGHT}:{embedder_name}".encode())
    return digest.hexdigest()


class SafetyModelStore:
    """Trains, saves and loads the detector in the data folder."""

    FILE = "guard-model.npz"

    def __init__(self, settings, embedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self._detector: SafetyDetector | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.settings.data_dir / self.FILE

    @property
    def training_paths(self) -> list[Path]:
        """Every training file in ``knowledge/guard/`` (all but the thresholds)."""
        folder = self.settings.knowledge_dir / "guard"
        return sorted(p for p in folder.glob("*.yaml") if p.name != "thresholds.yaml")

    @property
    def thresholds_path(self) -> Path:
        return self.settings.knowledge_dir / "guard" / "thresholds.yaml"

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.embedder.embed(texts), dtype=np.float32)

    def _hash(self) -> str:
        from app.classifier import training_files

        paths = self.training_paths + training_files(self.settings.training_path)
        return guard_training_hash(paths, type(self.embedder).name())

    def training_data(self) -> tuple[list[str], np.ndarray, list[str], list[float]]:
        """Rows, vectors, kinds and weights from every training file, windows included."""
        paths = self.training_paths
        if not paths:
            raise ConfigError(
                f"No guard training data in {self.settings.knowledge_dir / 'guard'}: "
                "restore knowledge/guard/situations.yaml from git."
            )
        texts: list[str] = []
        kinds: list[str] = []
        scale: list[float] = []
        for path in paths:
            data = load_guard_training(path)
            texts += [e.text for e in data.examples]
            kinds += [e.kind for e in data.examples]
            scale += [data.weight] * len(data.examples)
        rows, vectors, labels, weights = weighted_rows(texts, kinds, scale, self._embed)
        # Every situation the verdict classifier learns from is an ordinary one the coach
        # must coach: the detector learns from them too, as whole messages.
        from app.classifier import embed_situations, load_training

        ordinary = [e.situation for e in load_training(self.settings.training_path)]
        rows += ordinary
        vectors = np.vstack([vectors, embed_situations(self.embedder, ordinary)])
        labels += ["none"] * len(ordinary)
        weights += [ORDINARY_WEIGHT] * len(ordinary)
        return rows, vectors, labels, weights

    def _training_lock(self):
        from app.file_lock import file_lock

        self.settings.ensure_data_dir()
        return file_lock(
            self.settings.data_dir / "guard-model.lock", "training the safety detector"
        )

    def train(self, progress: Callable[[str], None] | None = None) -> SafetyModel:
        """Fit the detector and save it; processes on one data folder train one at a time."""
        with self._training_lock():
            return self._train(progress)

    def _train(self, progress: Callable[[str], None] | None = None) -> SafetyModel:
        if progress:
            progress("Training the safety detector")
        rows, vectors, labels, weights = self.training_data()
        model = fit_safety_model(rows, labels, vectors, self._hash(), weights)
        self.settings.ensure_data_dir()
        model.save(self.path)
        return model

    def _current_model(self) -> SafetyModel | None:
        try:
            model = SafetyModel.load(self.path)
        except ValueError:
            return None
        return model if model.training_hash == self._hash() else None

    def ensure(self, progress: Callable[[str], None] | None = None) -> bool:
        """Train when the saved model is missing, stale or damaged; True when it trained."""
        return self._current_or_trained(progress)[1]

    def _current_or_trained(
        self, progress: Callable[[str], None] | None = None
    ) -> tuple[SafetyModel, bool]:
        """The saved model when current, else a new one; a process that waited while another
        one trained loads that model instead of training again."""
        model = self._current_model()
        if model is not None:
            return model, False
        with self._training_lock():
            model = self._current_model()
            if model is not None:
                return model, False
            return self._train(progress), True

    def get(self) -> SafetyDetector:
        """The detector, loaded (or trained when missing) once per process."""
        with self._lock:
            if self._detector is None:
                model = self._current_or_trained()[0]
                thresholds = load_thresholds(self.thresholds_path)
                self._detector = SafetyDetector(model, thresholds, self._embed)
            return self._detector
