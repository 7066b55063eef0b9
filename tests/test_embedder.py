"""The local embedder: deterministic, normalised, and semantically sensible."""

import numpy as np
import pytest

from app.embedder import DIMENSIONS, MiniLMEmbedder


@pytest.fixture(scope="module")
def embedder():
    return MiniLMEmbedder()


def test_vectors_are_deterministic_and_normalised(embedder):
    texts = ["Our deadlines keep slipping.", "Nobody trusts the new director."]
    first, second = embedder.embed(texts), embedder.embed(texts)
    assert first.shape == (2, DIMENSIONS)
    np.testing.assert_allclose(first, second, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)


def test_related_sentences_score_higher_than_unrelated(embedder):
    a, b, c = embedder.embed(
        [
            "Who decides how the budget is split between teams?",
            "Allocating resources, such as time and budget, efficiently.",
            "My cat likes to sleep on the windowsill in the afternoon sun.",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.2


def test_batching_does_not_change_vectors(embedder):
    texts = [f"Situation number {i} about a team." for i in range(5)]
    together = embedder.embed(texts)
    one_by_one = np.vstack([embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-4)


def test_registered_with_chroma_and_rebuilds_from_config(embedder):
    from chromadb.utils.embedding_functions import known_embedding_functions

    assert known_embedding_functions[MiniLMEmbedder.name()] is MiniLMEmbedder
    rebuilt = MiniLMEmbedder.build_from_config(embedder.get_config())
    np.testing.assert_allclose(rebuilt.embed(["hello team"]), embedder.embed(["hello team"]))
    assert embedder.default_space() == "cosine"
