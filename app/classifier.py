"""The local classifier: how much a situation needs management, and how much leadership.

Two calibrated scores, not one three-way guess. One logistic regression reads how much
the situation needs management (its verdict is management or both), another how much it
needs leadership (leadership or both); each is calibrated (Platt scaling fitted on
out-of-fold predictions of 5-fold cross-validation on the training data, never on an
eval suite). The verdict follows from the two: **both** when each side clears the bar,
otherwise the stronger side. Six more models score the focus codes. The confidence is
itself calibrated the same way, so "70%" means right about seven times in ten on
situations the model did not learn from.

Features are the MiniLM embedding of the text (long texts are embedded in chunks and
averaged) next to TF-IDF words and word pairs. The same models read each sentence on
its own, so every answer can show the person's sentences that drove each side
(``evidence``). Training data: every ``*.yaml`` under ``knowledge/training/``.

The fitted model is stored as plain arrays (``.npz``) plus JSON, never pickle; a damaged
or foreign file is refused and retrained. Answering needs numpy only: neither
scikit-learn nor chromadb is imported by this module.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from app.data_files import load_arrays, save_arrays
from app.errors import ConfigError
from app.passages import FOCUS_CODES, VERDICTS, focus_side
from app.text_features import WordFeatures, fit_word_features

if TYPE_CHECKING:
    from app.settings import Settings

MODEL_VERSION = 7
MODEL_FILE = "classifier.npz"
FORMAT = "coach-verdict-model"
SIDES = ("management", "leadership")
MAX_CHUNKS = 8
FOLDS = 5
C = 4.0
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True)
class Evidence:
    """One of the person's sentences and what it was read as."""

    text: str
    side: str
    code: str
    score: float


@dataclass(frozen=True)
class Prediction:
    """The classifier's reading of one situation."""

    verdict: str
    confidence: float
    probabilities: dict[str, float]
    focus: list[str]
    focus_scores: dict[str, float] = field(default_factory=dict)
    sides: dict[str, float] = field(default_factory=dict)
    evidence: list[Evidence] = field(default_factory=list)


@dataclass(frozen=True)
class TrainingExample:
    id: str
    situation: str
    verdict: str
    focus: list[str]


def training_files(path: Path) -> list[Path]:
    """The training file, or every ``*.yaml`` in the training folder."""
    if path.is_dir():
        return sorted(path.glob("*.yaml"))
    return [path]


def load_training(path: Path) -> list[TrainingExample]:
    """The labelled situations of a file or folder, validated."""
    files = training_files(path)
    if not files or not all(f.exists() for f in files):
        raise ConfigError(
            f"The training set {path} is missing: restore it or set COACH_TRAINING_PATH."
        )
    examples = []
    for file in files:
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"The training set {file} is not valid YAML: {exc}") from None
        for i, row in enumerate((data or {}).get("examples") or []):
            ident = row.get("id", f"#{i + 1}")
            if row.get("verdict") not in VERDICTS:
                raise ConfigError(
                    f"{file.name}, example {ident}: verdict must be one of {VERDICTS}."
                )
            codes = row.get("focus") or []
            if not codes or any(c not in FOCUS_CODES for c in codes):
                raise ConfigError(f"{file.name}, example {ident}: focus needs codes from M1..L3.")
            text = row.get("text", row.get("situation"))
            if not text:
                raise ConfigError(f"{file.name}, example {ident}: the situation's text is missing.")
            examples.append(TrainingExample(str(ident), str(text), row["verdict"], codes))
    if len(examples) < 30:
        raise ConfigError(f"The training set {path} has too few examples ({len(examples)}).")
    return examples


def sentences(text: str) -> list[str]:
    """The person's sentences (at least three words each), in order.

    They are the safety detector's units, so each is embedded once per question.
    """
    from app.safety_model import units

    parts, _ = units(text)
    return [p for p in parts if len(p.split()) >= 3]


def embed_situations(embedder: Any, texts: list[str]) -> np.ndarray:
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
    parts = [s for s in _SENTENCE.split(text) if s.strip()]
    out, current = [], []
    for sentence in parts:
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


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def verdict_probabilities(p_m: float, p_l: float) -> dict[str, float]:
    """The three verdicts' shares implied by the two side probabilities."""
    raw = {"management": p_m * (1 - p_l), "leadership": p_l * (1 - p_m), "both": p_m * p_l}
    total = sum(raw.values()) or 1.0
    return {k: v / total for k, v in raw.items()}


def decide_verdict(p_m: float, p_l: float, bar: float) -> str:
    """Both when each side clears the bar; otherwise the stronger side."""
    if min(p_m, p_l) >= bar:
        return "both"
    return "management" if p_m >= p_l else "leadership"


@dataclass
class VerdictModel:
    """The fitted models as arrays, with their calibration."""

    words: WordFeatures
    side_coef: np.ndarray  # (2, features)
    side_intercept: np.ndarray  # (2,)
    focus_coef: np.ndarray  # (6, features), FOCUS_CODES order
    focus_intercept: np.ndarray  # (6,)
    side_platt: np.ndarray  # (2, 2): a, b of sigmoid(a * logit + b) per side
    confidence_platt: np.ndarray  # (2,)
    both_bar: float
    dims: int
    training_hash: str = ""
    report: dict[str, Any] = field(default_factory=dict)

    def raw_logits(self, vectors: np.ndarray, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Side and focus logits, before calibration."""
        dims = self.dims
        x = vectors.astype(np.float64)
        side = x @ self.side_coef[:, :dims].T + self.side_intercept
        focus = x @ self.focus_coef[:, :dims].T + self.focus_intercept
        for row, text in enumerate(texts):
            idx, weights = self.words.transform(text)
            if len(idx):
                side[row] += self.side_coef[:, dims + idx] @ weights
                focus[row] += self.focus_coef[:, dims + idx] @ weights
        return side, focus

    def side_probabilities(self, side_logits: np.ndarray) -> np.ndarray:
        return _sigmoid(side_logits * self.side_platt[:, 0] + self.side_platt[:, 1])

    def confidence(self, share: float) -> float:
        """Calibrated probability that a verdict with this raw share is right."""
        logit = np.log(np.clip(share, 1e-6, 1 - 1e-6) / np.clip(1 - share, 1e-6, None))
        a, b = self.confidence_platt
        return float(_sigmoid(a * logit + b))

    # -- storage -------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        meta = {
            "format": FORMAT,
            "version": MODEL_VERSION,
            "dims": self.dims,
            "both_bar": self.both_bar,
            "training_hash": self.training_hash,
            "focus_codes": list(FOCUS_CODES),
            "words": self.words.to_json(),
            "report": self.report,
        }
        arrays = {
            "side_coef": self.side_coef,
            "side_intercept": self.side_intercept,
            "focus_coef": self.focus_coef,
            "focus_intercept": self.focus_intercept,
            "side_platt": self.side_platt,
            "confidence_platt": self.confidence_platt,
            "idf": self.words.idf,
        }
        save_arrays(path, arrays, meta)

    @classmethod
    def load(cls, path: Path) -> VerdictModel:
        """Read a saved model; ``ValueError`` when it is damaged, foreign or of another version."""
        meta, arrays = load_arrays(path, FORMAT, MODEL_VERSION)
        try:
            if list(meta.get("focus_codes") or []) != list(FOCUS_CODES):
                raise ValueError("different focus codes")
            words = WordFeatures.from_json(meta["words"], arrays["idf"])
            dims = int(meta["dims"])
            features = dims + words.size
            shapes = {
                "side_coef": (2, features),
                "side_intercept": (2,),
                "focus_coef": (len(FOCUS_CODES), features),
                "focus_intercept": (len(FOCUS_CODES),),
                "side_platt": (2, 2),
                "confidence_platt": (2,),
            }
            for name, shape in shapes.items():
                if arrays[name].shape != shape:
                    raise ValueError(f"{name} has shape {arrays[name].shape}, not {shape}")
        except (KeyError, TypeError) as exc:
            raise ValueError(str(exc)) from exc
        return cls(
            words=words,
            side_coef=arrays["side_coef"],
            side_intercept=arrays["side_intercept"],
            focus_coef=arrays["focus_coef"],
            focus_intercept=arrays["focus_intercept"],
            side_platt=arrays["side_platt"],
            confidence_platt=arrays["confidence_platt"],
            both_bar=float(meta["both_bar"]),
            dims=dims,
            training_hash=str(meta.get("training_hash", "")),
            report=dict(meta.get("report") or {}),
        )


# ------------------------------------------------------------------------------ fitting


def _fit_linear(examples: list[TrainingExample], vectors: np.ndarray):
    """Side and focus logistic regressions on one set of examples (scikit-learn)."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.linear_model import LogisticRegression

    texts = [e.situation for e in examples]
    words, vectorizer = fit_word_features(texts)
    features = hstack([csr_matrix(vectors), vectorizer.transform(texts)]).tocsr()

    def fit(labels: list[int]) -> tuple[np.ndarray, float]:
        if len(set(labels)) < 2:  # a tiny training set may lack a code: it never fires
            return np.zeros(features.shape[1]), -5.0 if not any(labels) else 5.0
        model = LogisticRegression(C=C, max_iter=3000, class_weight="balanced", random_state=0)
        model.fit(features, labels)
        return model.coef_[0], float(model.intercept_[0])

    sides = [fit([int(e.verdict in (side, "both")) for e in examples]) for side in SIDES]
    focus = [fit([int(code in e.focus) for e in examples]) for code in FOCUS_CODES]
    return (
        words,
        np.vstack([c for c, _ in sides]),
        np.array([b for _, b in sides]),
        np.vstack([c for c, _ in focus]),
        np.array([b for _, b in focus]),
    )


def _platt(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=100.0, max_iter=1000).fit(scores.reshape(-1, 1), labels)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def _uncalibrated(words, side_coef, side_intercept, focus_coef, focus_intercept, dims):
    return VerdictModel(
        words=words,
        side_coef=side_coef,
        side_intercept=side_intercept,
        focus_coef=focus_coef,
        focus_intercept=focus_intercept,
        side_platt=np.array([[1.0, 0.0], [1.0, 0.0]]),
        confidence_platt=np.array([1.0, 0.0]),
        both_bar=0.5,
        dims=dims,
    )


def fit_model(
    examples: list[TrainingExample],
    vectors: np.ndarray,
    progress: Callable[[str], None] | None = None,
) -> VerdictModel:
    """Fit, calibrate on out-of-fold predictions, choose the both-bar, and refit on all."""
    n = len(examples)
    fold = np.random.default_rng(0).permutation(n) % FOLDS
    oof_side = np.zeros((n, 2))
    for f in range(FOLDS):
        if progress:
            progress(f"Cross-validating, fold {f + 1} of {FOLDS}")
        train = np.where(fold != f)[0]
        held = np.where(fold == f)[0]
        model = _uncalibrated(
            *_fit_linear([examples[i] for i in train], vectors[train]), vectors.shape[1]
        )
        side, _ = model.raw_logits(vectors[held], [examples[i].situation for i in held])
        oof_side[held] = side
    truth = np.array(
        [[int(e.verdict in (s, "both")) for s in SIDES] for e in examples], dtype=np.int64
    )
    side_platt = np.array([_platt(oof_side[:, k], truth[:, k]) for k in range(2)])
    p = _sigmoid(oof_side * side_platt[:, 0] + side_platt[:, 1])
    verdicts = [e.verdict for e in examples]
    bar, balanced = _choose_both_bar(p, verdicts)
    chosen = [decide_verdict(pm, pl, bar) for pm, pl in p]
    shares = np.array(
        [verdict_probabilities(pm, pl)[v] for (pm, pl), v in zip(p, chosen, strict=True)]
    )
    right = np.array([c == v for c, v in zip(chosen, verdicts, strict=True)], dtype=np.int64)
    share_logit = np.log(np.clip(shares, 1e-6, 1 - 1e-6) / np.clip(1 - shares, 1e-6, None))
    confidence_platt = np.array(_platt(share_logit, right))
    if progress:
        progress("Fitting the final model on every example")
    final = _uncalibrated(*_fit_linear(examples, vectors), vectors.shape[1])
    final.side_platt = side_platt
    final.confidence_platt = confidence_platt
    final.both_bar = bar
    final.report = {
        "examples": n,
        "cv_folds": FOLDS,
        "cv_verdict_accuracy": round(float(right.mean()), 4),
        "cv_balanced_accuracy": round(balanced, 4),
        "cv_recall": {
            v: round(
                float(np.mean([c == v for c, t in zip(chosen, verdicts, strict=True) if t == v])),
                4,
            )
            for v in VERDICTS
        },
        "both_bar": bar,
    }
    return final


def _choose_both_bar(p: np.ndarray, verdicts: list[str]) -> tuple[float, float]:
    """The bar that maximises balanced accuracy (mean per-verdict recall) out of fold."""
    best = (0.5, -1.0)
    for bar in np.round(np.arange(0.30, 0.81, 0.01), 2):
        chosen = [decide_verdict(pm, pl, bar) for pm, pl in p]
        recalls = [
            np.mean([c == v for c, t in zip(chosen, verdicts, strict=True) if t == v])
            for v in VERDICTS
        ]
        score = float(np.mean(recalls))
        if score > best[1] + 1e-9:
            best = (float(bar), score)
    return best


# ------------------------------------------------------------------------------ reading


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


class Classifier:
    """Verdict, focus and evidence from one model."""

    def __init__(self, embedder: Any, model: VerdictModel | None = None) -> None:
        self.embedder = embedder
        self.model = model

    def fit(
        self, examples: list[TrainingExample], progress: Callable[[str], None] | None = None
    ) -> Classifier:
        vectors = embed_situations(self.embedder, [e.situation for e in examples])
        self.model = fit_model(examples, vectors, progress)
        return self

    def predict(self, text: str, vector: np.ndarray | None = None) -> Prediction:
        return self.predict_many([text], None if vector is None else vector[None, :])[0]

    def predict_many(self, texts: list[str], vectors: np.ndarray | None = None) -> list[Prediction]:
        model = self.model
        if vectors is None:
            vectors = embed_situations(self.embedder, texts)
        side_logits, focus_logits = model.raw_logits(vectors, texts)
        sides = model.side_probabilities(side_logits)
        focus_probs = _sigmoid(focus_logits)
        out = []
        for row, text in enumerate(texts):
            p_m, p_l = float(sides[row, 0]), float(sides[row, 1])
            verdict = decide_verdict(p_m, p_l, model.both_bar)
            shares = verdict_probabilities(p_m, p_l)
            scores = {c: round(float(focus_probs[row, i]), 4) for i, c in enumerate(FOCUS_CODES)}
            evidence = self.evidence(text, verdict)
            focus = choose_focus(verdict, _with_evidence(scores, evidence))
            out.append(
                Prediction(
                    verdict=verdict,
                    confidence=round(model.confidence(shares[verdict]), 4),
                    probabilities={k: round(v, 4) for k, v in shares.items()},
                    focus=focus,
                    focus_scores=scores,
                    sides={"management": round(p_m, 4), "leadership": round(p_l, 4)},
                    evidence=evidence,
                )
            )
        return out

    def evidence(self, text: str, verdict: str, per_side: int = 2) -> list[Evidence]:
        """The person's sentences that read most strongly as each side the verdict names."""
        found = sentences(text)
        if not found:
            return []
        model = self.model
        vectors = np.asarray(self.embedder.embed(found), dtype=np.float64)
        side_logits, focus_logits = model.raw_logits(vectors, found)
        sides = model.side_probabilities(side_logits)
        focus_probs = _sigmoid(focus_logits)
        wanted = list(SIDES) if verdict == "both" else [verdict]
        out: list[Evidence] = []
        used: set[int] = set()
        for side in wanted:
            k = SIDES.index(side)
            # A sentence speaks for a side when it leans that way more than the other.
            lean = sides[:, k] - sides[:, 1 - k]
            ranked = [i for i in np.argsort(-lean) if lean[i] > 0 and i not in used]
            for i in ranked[:per_side]:
                codes = [c for c in FOCUS_CODES if focus_side(c) == side]
                code = max(codes, key=lambda c: focus_probs[i, FOCUS_CODES.index(c)])
                out.append(Evidence(found[i], side, code, round(float(sides[i, k]), 4)))
                used.add(i)
        return out


def _with_evidence(scores: dict[str, float], evidence: list[Evidence]) -> dict[str, float]:
    """Focus scores nudged towards the codes of the sentences that drove the verdict."""
    nudged = dict(scores)
    for item in evidence:
        nudged[item.code] = max(nudged[item.code], min(0.5, item.score))
    return nudged


def training_hash(path: Path, embedder_name: str) -> str:
    digest = hashlib.sha256()
    for file in training_files(path):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    digest.update(f"{MODEL_VERSION}:{embedder_name}".encode())
    return digest.hexdigest()


class ClassifierStore:
    """Trains, saves and loads the classifier in the data folder."""

    def __init__(self, settings: Settings, embedder: Any) -> None:
        self.settings = settings
        self.embedder = embedder
        self._classifier: Classifier | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.settings.data_dir / MODEL_FILE

    def _hash(self) -> str:
        return training_hash(self.settings.training_path, type(self.embedder).name())

    def _saved(self) -> VerdictModel | None:
        try:
            return VerdictModel.load(self.path)
        except ValueError:
            return None

    def is_current(self) -> bool:
        saved = self._saved()
        return saved is not None and saved.training_hash == self._hash()

    def _training_lock(self):
        from app.file_lock import file_lock

        self.settings.ensure_data_dir()
        return file_lock(self.settings.data_dir / "classifier.lock", "training the classifier")

    def train(self, progress: Callable[[str], None] | None = None) -> Classifier:
        """Fit on the training set and save; deterministic for the same files. Processes on
        one data folder train one at a time."""
        with self._training_lock():
            return self._train(progress)

    def _train(self, progress: Callable[[str], None] | None = None) -> Classifier:
        examples = load_training(self.settings.training_path)
        if progress:
            progress(f"Training the offline classifier on {len(examples)} situations")
        classifier = Classifier(self.embedder).fit(examples, progress)
        classifier.model.training_hash = self._hash()
        self.settings.ensure_data_dir()
        classifier.model.save(self.path)
        with self._lock:
            self._classifier = classifier
        return classifier

    def ensure(self) -> bool:
        """Train when the saved model is missing, stale or damaged; True when it trained.

        A process that waited while another one trained loads that model instead."""
        if self._load_current():
            return False
        with self._training_lock():
            if self._load_current():
                return False
            self._train()
        return True

    def _load_current(self) -> bool:
        saved = self._saved()
        if saved is None or saved.training_hash != self._hash():
            return False
        with self._lock:
            self._classifier = Classifier(self.embedder, saved)
        return True

    def get(self) -> Classifier:
        """The trained classifier, loading it (or training it when missing) once per process."""
        with self._lock:
            if self._classifier is not None:
                return self._classifier
        self.ensure()
        with self._lock:
            assert self._classifier is not None
            return self._classifier
