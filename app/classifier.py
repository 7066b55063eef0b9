"""The local classifier: verdict and focus codes from embeddings plus word features.

Trained on ``knowledge/training/situations.yaml`` (never on the eval suites) with
scikit-learn logistic regression; the fitted weights are kept as numpy arrays so that
answering never imports scikit-learn. Features are the MiniLM embedding of the
situation (long texts are embedded in chunks and averaged) next to TF-IDF word
and word-pair counts. The fitted model is cached in the data folder with the
hash of the training file and is retrained when that file changes.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from app.embedder import MiniLMEmbedder
from app.errors import ConfigError
from app.passages import FOCUS_CODES, VERDICTS, focus_side
from app.settings import Settings

MODEL_VERSION = 6
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
EMBEDDING_WEIGHT = 1.0
# The verdict blends the 3-class model with what the six focus models imply; half each
# did better than either alone in 5-fold cross-validation on the training set, as did
# C=4 and an embedding weight of 1 among C in {1, 4, 16} and weights in {1, 2, 4}.
SIDE_WEIGHT = 0.5
MAX_CHUNKS = 8


@dataclass(frozen=True)
class Prediction:
    """The classifier's reading of one situation."""

    verdict: str
    confidence: float
    probabilities: dict[str, float]
    focus: list[str]
    focus_scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingExample:
    id: str
    situation: str
    verdict: str
    focus: list[str]


def load_training(path: Path) -> list[TrainingExample]:
    """The labelled situations, validated."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"The training set {path} is missing: restore it or set COACH_TRAINING_PATH."
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"The training set {path} is not valid YAML: {exc}") from None
    examples = []
    for i, row in enumerate((data or {}).get("examples") or []):
        ident = row.get("id", f"#{i + 1}")
        if row.get("verdict") not in VERDICTS:
            raise ConfigError(f"{path.name}, example {ident}: verdict must be one of {VERDICTS}.")
        codes = row.get("focus") or []
        if not codes or any(c not in FOCUS_CODES for c in codes):
            raise ConfigError(f"{path.name}, example {ident}: focus needs codes from M1..L3.")
        examples.append(TrainingExample(str(ident), str(row["situation"]), row["verdict"], codes))
    if len(examples) < 30:
        raise ConfigError(f"The training set {path} has too few examples ({len(examples)}).")
    return examples


def embed_situations(embedder: MiniLMEmbedder, texts: list[str]) -> np.ndarray:
    """One vector per text; texts longer than the model's window are chunked and averaged."""
    chunks: list[str] = []
    owners: list[int] = []
    for i, text in enumerate(texts):
        parts = _chunks(text)
        chunks.extend(parts)
        owners.extend([i] * len(parts))
    vectors = embedder.embed(chunks)
    out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
    np.add.at(out, np.array(owners), vectors)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.clip(norms, 1e-12, None)


def _chunks(text: str, max_words: int = 120) -> list[str]:
    words = text.split()
    if len(words) <= max_words:
        return [text or " "]
    sentences = [s for s in _SENTENCE.split(text) if s.strip()]
    out, current = [], []
    for sentence in sentences:
        if current and len(" ".join(current + [sentence]).split()) > max_words:
            out.append(" ".join(current))
            current = []
        current.append(sentence)
    if current:
        out.append(" ".join(current))
    # A pathological text (one endless sentence) is cut by words instead.
    chunks = [c for part in out for c in _split_words(part, max_words)]
    if len(chunks) <= MAX_CHUNKS:
        return chunks
    # Very long texts: an even sample across the whole text keeps answers fast.
    step = len(chunks) / MAX_CHUNKS
    return [chunks[int(i * step)] for i in range(MAX_CHUNKS)]


def _split_words(text: str, max_words: int) -> list[str]:
    words = text.split()
    return [" ".join(words[i : i + max_words]) for i in range(0, len(words), max_words)] or [" "]


_TOKEN = re.compile(r"(?u)\b\w\w+\b")


@dataclass
class LinearModel:
    """The fitted classifier as plain arrays, so predicting needs numpy but not scikit-learn.

    The word features reproduce scikit-learn's ``TfidfVectorizer`` (lower-cased
    ``\\w\\w+`` tokens, English stop words removed, words and word pairs, sublinear tf,
    idf, L2 norm); ``tests/test_classifier.py`` checks they agree.
    """

    vocabulary: dict[str, int]
    idf: np.ndarray
    stop_words: frozenset[str]
    classes: list[str]
    verdict_coef: np.ndarray  # (3, features)
    verdict_intercept: np.ndarray
    focus_coef: np.ndarray  # (6, features), in FOCUS_CODES order
    focus_intercept: np.ndarray

    def words(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Indices and TF-IDF weights of the text's known words and word pairs."""
        tokens = [t for t in _TOKEN.findall(text.lower()) if t not in self.stop_words]
        grams = tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]
        counts: dict[int, int] = {}
        for gram in grams:
            index = self.vocabulary.get(gram)
            if index is not None:
                counts[index] = counts.get(index, 0) + 1
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        idx = np.fromiter(counts.keys(), dtype=np.int64)
        tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64))
        weights = tf * self.idf[idx]
        return idx, weights / np.linalg.norm(weights)

    def logits(self, vectors: np.ndarray, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Verdict and focus logits for each text, given its embedding."""
        dims = vectors.shape[1]
        scaled = vectors.astype(np.float64) * EMBEDDING_WEIGHT
        verdict = scaled @ self.verdict_coef[:, :dims].T + self.verdict_intercept
        focus = scaled @ self.focus_coef[:, :dims].T + self.focus_intercept
        for row, text in enumerate(texts):
            idx, weights = self.words(text)
            if len(idx):
                verdict[row] += self.verdict_coef[:, dims + idx] @ weights
                focus[row] += self.focus_coef[:, dims + idx] @ weights
        return verdict, focus


def fit_model(examples: list[TrainingExample], vectors: np.ndarray) -> LinearModel:
    """Fit the verdict and focus models with scikit-learn and keep their arrays."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts = [e.situation for e in examples]
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), min_df=2, sublinear_tf=True, stop_words="english"
    ).fit(texts)
    features = hstack([csr_matrix(vectors * EMBEDDING_WEIGHT), vectorizer.transform(texts)]).tocsr()
    verdict = LogisticRegression(C=4.0, max_iter=2000, random_state=0).fit(
        features, [e.verdict for e in examples]
    )
    focus = [
        LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced", random_state=0).fit(
            features, [int(code in e.focus) for e in examples]
        )
        for code in FOCUS_CODES
    ]
    return LinearModel(
        vocabulary={k: int(v) for k, v in vectorizer.vocabulary_.items()},
        idf=vectorizer.idf_.astype(np.float64),
        stop_words=frozenset(vectorizer.get_stop_words()),
        classes=[str(c) for c in verdict.classes_],
        verdict_coef=verdict.coef_.astype(np.float64),
        verdict_intercept=verdict.intercept_.astype(np.float64),
        focus_coef=np.vstack([m.coef_[0] for m in focus]).astype(np.float64),
        focus_intercept=np.array([m.intercept_[0] for m in focus], dtype=np.float64),
    )


class Classifier:
    """Verdict (3 classes) and focus (6 labels) from one shared feature space."""

    def __init__(self, embedder: MiniLMEmbedder, model: LinearModel | None = None) -> None:
        self.embedder = embedder
        self.model = model

    def fit(self, examples: list[TrainingExample]) -> Classifier:
        vectors = embed_situations(self.embedder, [e.situation for e in examples])
        self.model = fit_model(examples, vectors)
        return self

    def predict(self, text: str, vector: np.ndarray | None = None) -> Prediction:
        return self.predict_many([text], None if vector is None else vector[None, :])[0]

    def predict_many(self, texts: list[str], vectors: np.ndarray | None = None) -> list[Prediction]:
        if vectors is None:
            vectors = embed_situations(self.embedder, texts)
        verdict_logits, focus_logits = self.model.logits(vectors, texts)
        shifted = np.exp(verdict_logits - verdict_logits.max(axis=1, keepdims=True))
        verdict_probs = shifted / shifted.sum(axis=1, keepdims=True)
        focus_probs = 1.0 / (1.0 + np.exp(-focus_logits))
        out = []
        for row in range(len(texts)):
            direct = dict(zip(self.model.classes, verdict_probs[row], strict=True))
            scores = {
                code: round(float(focus_probs[row, i]), 4) for i, code in enumerate(FOCUS_CODES)
            }
            side = _side_probabilities(
                max(scores[c] for c in ("M1", "M2", "M3")),
                max(scores[c] for c in ("L1", "L2", "L3")),
            )
            probabilities = {
                v: round(float((1 - SIDE_WEIGHT) * direct[v] + SIDE_WEIGHT * side[v]), 4)
                for v in VERDICTS
            }
            verdict = max(probabilities, key=probabilities.get)
            out.append(
                Prediction(
                    verdict=verdict,
                    confidence=probabilities[verdict],
                    probabilities=probabilities,
                    focus=choose_focus(verdict, scores),
                    focus_scores=scores,
                )
            )
        return out


def _side_probabilities(management: float, leadership: float) -> dict[str, float]:
    """Verdict probabilities implied by how strongly each side's focus codes fire."""
    raw = {
        "management": management * (1 - leadership),
        "leadership": leadership * (1 - management),
        "both": management * leadership,
    }
    total = sum(raw.values()) or 1.0
    return {k: v / total for k, v in raw.items()}


def choose_focus(verdict: str, scores: dict[str, float], limit: int = 3) -> list[str]:
    """1 to 3 codes that fit the verdict: the confident ones, and the best of each needed side."""
    sides = ["management", "leadership"] if verdict == "both" else [verdict]
    ranked = sorted((c for c in scores if focus_side(c) in sides), key=scores.get, reverse=True)
    chosen = [ranked[0]] if ranked else []
    if verdict == "both":
        other = next(c for c in ranked if focus_side(c) != focus_side(chosen[0]))
        chosen.append(other)
    for code in ranked:
        if len(chosen) >= limit:
            break
        if code not in chosen and scores[code] >= 0.5:
            chosen.append(code)
    return sorted(chosen, key=FOCUS_CODES.index)


def training_hash(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes())
    digest.update(f"{MODEL_VERSION}:{MiniLMEmbedder.name()}".encode())
    return digest.hexdigest()


class ClassifierStore:
    """Trains, saves and loads the classifier in the data folder."""

    def __init__(self, settings: Settings, embedder: MiniLMEmbedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self._classifier: Classifier | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.settings.data_dir / "classifier.pkl"

    def is_current(self) -> bool:
        try:
            with self.path.open("rb") as fh:
                saved_hash = pickle.load(fh)
        except (OSError, pickle.UnpicklingError, EOFError):
            return False
        return saved_hash == training_hash(self.settings.training_path)

    def train(self, progress: Callable[[str], None] | None = None) -> Classifier:
        """Fit on the training set and save; deterministic for the same file."""
        examples = load_training(self.settings.training_path)
        if progress:
            progress(f"Training the offline classifier on {len(examples)} situations")
        classifier = Classifier(self.embedder).fit(examples)
        self.settings.ensure_data_dir()
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(training_hash(self.settings.training_path), fh)
            pickle.dump(classifier.model, fh)
        tmp.replace(self.path)
        with self._lock:
            self._classifier = classifier
        return classifier

    def ensure(self) -> bool:
        """Train when the saved model is missing or stale; True when it trained."""
        if self.is_current():
            self._load()
            return False
        self.train()
        return True

    def get(self) -> Classifier:
        """The trained classifier, loading it (or training it when missing) once per process."""
        with self._lock:
            if self._classifier is not None:
                return self._classifier
        if not self.is_current():
            return self.train()
        return self._load()

    def _load(self) -> Classifier:
        with self.path.open("rb") as fh:
            pickle.load(fh)  # the training hash, checked by is_current()
            model = pickle.load(fh)
        classifier = Classifier(self.embedder, model)
        with self._lock:
            self._classifier = classifier
        return classifier
