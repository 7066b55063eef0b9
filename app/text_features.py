"""Word features for the local models: scikit-learn's TF-IDF, reproduced with numpy.

Fitting uses scikit-learn's ``TfidfVectorizer`` (lower-cased ``\\w\\w+`` tokens,
English stop words removed, words and word pairs, sublinear tf, idf, L2 norm);
answering uses ``WordFeatures.transform``, which needs numpy only, so a running
coach never imports scikit-learn. ``tests/test_classifier.py`` checks they agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

_TOKEN = re.compile(r"(?u)\b\w\w+\b")


@dataclass
class WordFeatures:
    """A fitted TF-IDF vocabulary as plain data."""

    vocabulary: dict[str, int]
    idf: np.ndarray
    stop_words: frozenset[str]

    @property
    def size(self) -> int:
        return len(self.idf)

    def transform(self, text: str) -> tuple[np.ndarray, np.ndarray]:
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

    def to_json(self) -> dict[str, Any]:
        """Everything but the idf array, which is stored with the model's arrays."""
        return {"vocabulary": self.vocabulary, "stop_words": sorted(self.stop_words)}

    @classmethod
    def from_json(cls, data: dict[str, Any], idf: np.ndarray) -> WordFeatures:
        vocabulary = {str(k): int(v) for k, v in dict(data["vocabulary"]).items()}
        if len(vocabulary) != len(idf) or (vocabulary and max(vocabulary.values()) >= len(idf)):
            raise ValueError("vocabulary and idf do not match")
        return cls(vocabulary, np.asarray(idf, dtype=np.float64), frozenset(data["stop_words"]))


def fit_word_features(texts: list[str], *, min_df: int = 2):
    """Fit the vectorizer; returns ``(WordFeatures, the fitted sklearn vectorizer)``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), min_df=min_df, sublinear_tf=True, stop_words="english"
    ).fit(texts)
    features = WordFeatures(
        vocabulary={k: int(v) for k, v in vectorizer.vocabulary_.items()},
        idf=vectorizer.idf_.astype(np.float64),
        stop_words=frozenset(vectorizer.get_stop_words()),
    )
    return features, vectorizer
