"""Which coaching situations of the move library (``knowledge/moves/``) fit this person's.

Every situation is embedded through the texts that describe it (when it applies, how
people put it, what they ask); a person's situation is matched by its whole-text vector
and by its own sentences, so one sentence that names the problem counts even in a long
post. The responsibilities the classifier points at, and the verdict's side, break near
ties; a situation whose conditions (``needs``) the reading contradicts is left out.

The vectors are stored in the data folder (``moves.npz`` + JSON, no pickle) and rebuilt
when the library changes, like the classifier.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.data_files import load_arrays, save_arrays
from app.moves import MoveLibrary, Situation, load_library, texts_for_matching
from app.settings import Settings
from app.text_features import WordFeatures

MODEL_FILE = "moves.npz"
FORMAT = "coach-moves"
VERSION = 2
# Words count beside meaning: "checklist" and "shift" in a post should find the situation
# about checklists across shifts even when the embedding is pulled by other topics. Chosen
# on the library itself (each signal held out and matched back to its situation: the right
# situation first 25% of the time by embeddings alone, 31% with words at 0.4, 33% at 0.8).
LEXICAL_WEIGHT = 0.5
HUB_NEIGHBOURS = 10
HUB_WEIGHT = 0.5
# How much the classifier's reading may move a match: enough to break near ties between
# situations that read alike, never enough to pick one that doesn't fit the words.
FOCUS_BONUS = 0.03
SIDE_BONUS = 0.02
SENTENCE_WEIGHT = 0.5
# A situation much further from the person's words than the best one is a different
# situation: its moves would be advice for someone else.
MARGIN = 0.06
# A question like "how do I raise this with my boss?" fits many situations; the one that
# also fits the person's situation wins.
PRIOR_WEIGHT = 0.5
NEAR_SITUATIONS = 10
STRONG_QUESTION = 0.6


@dataclass(frozen=True)
class Match:
    """A library situation and how well it fits (cosine-like, higher is closer)."""

    situation: Situation
    score: float


class FittedMoves:
    """The library with one unit vector per matching text."""

    def __init__(
        self,
        library: MoveLibrary,
        vectors: np.ndarray,
        owners: np.ndarray,
        asks: np.ndarray,
        words: WordFeatures | None = None,
        documents: np.ndarray | None = None,
    ) -> None:
        self.library = library
        self.words = words
        self.documents = documents  # (situations, vocabulary): each situation's TF-IDF
        self.situations: list[Situation] = list(library.situations)
        # A situation is matched by what describes it (when it applies, how people put it),
        # not by its typical questions: "how do I get them on board?" is no board meeting.
        described = asks == 0
        self.vectors = vectors[described]
        self.owners = owners[described]
        self._starts = np.flatnonzero(np.r_[True, self.owners[1:] != self.owners[:-1]])
        self.hubness = self._hubness()
        self._ask_vectors = [
            vectors[(owners == i) & (asks == 1)] for i in range(len(self.situations))
        ]

    def _hubness(self) -> np.ndarray:
        """How close each situation sits to its nearest other situations: a situation near
        everything ("a team split across two projects" for any post about projects) would
        otherwise win for posts it doesn't fit (cross-domain similarity local scaling)."""
        first = self.vectors[self._starts]  # each situation's "applies when" text
        sims = self._best_per_situation(first @ self.vectors.T)  # (situations, situations)
        np.fill_diagonal(sims, -1.0)
        return np.sort(sims, axis=1)[:, -HUB_NEIGHBOURS:].mean(axis=1)

    def _best_per_situation(self, sims: np.ndarray) -> np.ndarray:
        """The highest similarity among each situation's texts (last axis: texts, stored
        situation by situation, so each situation's texts are one contiguous block)."""
        return np.maximum.reduceat(sims, self._starts, axis=-1)

    def scores(
        self,
        vector: np.ndarray,
        sentence_vectors: np.ndarray | None = None,
        *,
        text: str = "",
        focus: Sequence[str] = (),
        verdict: str | None = None,
    ) -> np.ndarray:
        """How well each situation fits a situation's vector (and its sentences', and its
        words when ``text`` is given)."""
        score = self._best_per_situation(self.vectors @ vector)
        if sentence_vectors is not None and len(sentence_vectors):
            best = self._best_per_situation(sentence_vectors @ self.vectors.T)  # (sentences, s)
            top = np.sort(best, axis=0)[-2:].mean(axis=0)  # the two sentences closest to it
            score = (1 - SENTENCE_WEIGHT) * score + SENTENCE_WEIGHT * top
        score = score - HUB_WEIGHT * self.hubness
        if text:
            score = score + LEXICAL_WEIGHT * self.lexical(text)
        wanted = set(focus)
        for i, situation in enumerate(self.situations):
            score[i] += FOCUS_BONUS * len(wanted & set(situation.draws_on))
            if verdict and situation.side == verdict:
                score[i] += SIDE_BONUS
        return score

    def lexical(self, text: str) -> np.ndarray:
        """Each situation's TF-IDF closeness to ``text`` (0 when no distinctive word is
        shared)."""
        if self.words is None or self.documents is None:
            return np.zeros(len(self.situations), dtype=np.float32)
        idx, weights = self.words.transform(text)
        if not len(idx):
            return np.zeros(len(self.situations), dtype=np.float32)
        return self.documents[:, idx] @ weights

    def match(
        self,
        score: np.ndarray,
        *,
        allowed: Callable[[Situation], bool] | None = None,
        k: int = 3,
    ) -> list[Match]:
        """The ``k`` best-fitting situations (within ``MARGIN`` of the best) by ``score``."""
        found: list[Match] = []
        for i in np.argsort(-score):
            situation = self.situations[int(i)]
            if allowed is not None and not allowed(situation):
                continue
            if found and score[i] < found[0].score - MARGIN:
                break
            found.append(Match(situation, float(score[i])))
            if len(found) == k:
                break
        return found

    def closest_ask(
        self,
        question_vector: np.ndarray,
        prior: np.ndarray,
        allowed: Callable[[Situation], bool] | None = None,
    ) -> Match | None:
        """The situation whose typical questions are closest to the person's question, with
        how well the situation fits theirs as a tie-breaker (``PRIOR_WEIGHT``); the score
        returned is the question's closeness alone."""
        best: tuple[float, float, int] | None = None
        near = set(np.argsort(-prior)[:NEAR_SITUATIONS].tolist())
        for i, situation in enumerate(self.situations):
            asks = self._ask_vectors[i] if i < len(self._ask_vectors) else None
            if asks is None or not len(asks):
                continue
            if allowed is not None and not allowed(situation):
                continue
            closeness = float((asks @ question_vector).max())
            if i not in near and closeness < STRONG_QUESTION:
                continue  # a question is about their own situation unless it plainly isn't
            ranked = closeness + PRIOR_WEIGHT * float(prior[i])
            if best is None or ranked > best[0]:
                best = (ranked, closeness, i)
        if best is None:
            return None
        return Match(self.situations[best[2]], best[1])


def _word_documents(library: MoveLibrary) -> tuple[WordFeatures, np.ndarray]:
    """TF-IDF over each situation's description (title, when it applies, its signals)."""
    from app.text_features import fit_word_features

    docs = [" ".join([s.title, s.applies_when, *s.signals]) for s in library.situations]
    words, _ = fit_word_features(docs, min_df=1)
    documents = np.zeros((len(docs), words.size), dtype=np.float32)
    for row, doc in enumerate(docs):
        idx, weights = words.transform(doc)
        documents[row, idx] = weights
    return words, documents


def library_hash(knowledge_dir: Path, embedder_name: str) -> str:
    digest = hashlib.sha256(f"{VERSION}:{embedder_name}".encode())
    for file in sorted((knowledge_dir / "moves").glob("*.yaml")):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


class MoveStore:
    """Embeds, saves and loads the move library's vectors in the data folder."""

    def __init__(self, settings: Settings, embedder: Any) -> None:
        self.settings = settings
        self.embedder = embedder
        self._fitted: FittedMoves | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.settings.data_dir / MODEL_FILE

    def _hash(self) -> str:
        return library_hash(self.settings.knowledge_dir, type(self.embedder).name())

    def _load(self, library: MoveLibrary) -> FittedMoves | None:
        try:
            meta, arrays = load_arrays(self.path, FORMAT, VERSION)
        except ValueError:
            return None
        if meta.get("hash") != self._hash():
            return None
        try:
            words = WordFeatures.from_json(meta["words"], arrays["idf"])
        except (KeyError, ValueError, TypeError):
            return None
        return FittedMoves(
            library, arrays["vectors"], arrays["owners"], arrays["asks"], words, arrays["documents"]
        )

    def build(self, progress: Callable[[str], None] | None = None) -> FittedMoves:
        """Embed every matching text of the library and save the vectors."""
        library = load_library(self.settings.knowledge_dir)
        texts: list[str] = []
        owners: list[int] = []
        asks: list[int] = []
        for i, situation in enumerate(library.situations):
            for text in texts_for_matching(situation):
                texts.append(text)
                owners.append(i)
                asks.append(1 if text in situation.asks else 0)
        if progress:
            progress(
                f"Embedding {len(texts)} texts of {len(library.situations)} coaching situations"
            )
        vectors = self.embedder.embed(texts).astype(np.float32)
        words, documents = _word_documents(library)
        arrays = {
            "vectors": vectors,
            "owners": np.array(owners, dtype=np.int32),
            "asks": np.array(asks, dtype=np.int8),
            "idf": words.idf,
            "documents": documents,
        }
        meta = {"format": FORMAT, "version": VERSION, "hash": self._hash()}
        self.settings.ensure_data_dir()
        save_arrays(self.path, arrays, {**meta, "words": words.to_json()})
        return FittedMoves(library, vectors, arrays["owners"], arrays["asks"], words, documents)

    def ensure(self, progress: Callable[[str], None] | None = None) -> bool:
        """Load the saved vectors, or build them when missing or stale; True when built.
        Processes on one data folder build one at a time; one that waited loads the result."""
        from app.file_lock import file_lock

        library = load_library(self.settings.knowledge_dir)
        fitted = self._load(library)
        built = False
        if fitted is None:
            self.settings.ensure_data_dir()
            with file_lock(self.settings.data_dir / "moves.lock", "embedding the move library"):
                fitted = self._load(library)
                if fitted is None:
                    fitted = self.build(progress)
                    built = True
        with self._lock:
            self._fitted = fitted
        return built

    def get(self) -> FittedMoves:
        with self._lock:
            if self._fitted is not None:
                return self._fitted
        self.ensure()
        with self._lock:
            assert self._fitted is not None
            return self._fitted
