"""The offline classifier: training data, numpy inference matching scikit-learn, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from app.classifier import (
    EMBEDDING_WEIGHT,
    ClassifierStore,
    TrainingExample,
    choose_focus,
    embed_situations,
    fit_model,
    load_training,
)
from app.errors import ConfigError
from app.passages import focus_side
from app.settings import Settings
from tests.coach_env import shared_env

ROOT = Path(__file__).resolve().parent.parent


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def test_training_set_is_large_varied_and_consistent():
    examples = load_training(ROOT / "knowledge" / "training" / "situations.yaml")
    assert len(examples) >= 300
    for verdict in ("management", "leadership", "both"):
        assert sum(e.verdict == verdict for e in examples) >= 100
    for e in examples:
        sides = {focus_side(c) for c in e.focus}
        expected = {"management", "leadership"} if e.verdict == "both" else {e.verdict}
        assert sides == expected, e.id


def test_eval_suites_are_disjoint_from_the_training_set():
    training = {
        _normalise(e.situation)
        for e in load_training(ROOT / "knowledge" / "training" / "situations.yaml")
    }
    for suite in ("core.yaml", "redteam.yaml"):
        cases = yaml.safe_load((ROOT / "evals" / "suites" / suite).read_text())["cases"]
        overlap = [c["id"] for c in cases if _normalise(c["situation"]) in training]
        assert overlap == [], f"{suite} cases found in the training set: {overlap}"


def test_numpy_inference_matches_scikit_learn():
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    settings, index, _ = shared_env()
    examples = load_training(settings.training_path)[:120]
    texts = [e.situation for e in examples]
    vectors = embed_situations(index.embedder, texts)
    model = fit_model(examples, vectors)

    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), min_df=2, sublinear_tf=True, stop_words="english"
    ).fit(texts)
    features = hstack([csr_matrix(vectors * EMBEDDING_WEIGHT), vectorizer.transform(texts)]).tocsr()
    reference = LogisticRegression(C=4.0, max_iter=2000, random_state=0).fit(
        features, [e.verdict for e in examples]
    )
    probe = ["Nobody owns the rota and the budget split is a mystery to everyone here."]
    probe_vec = embed_situations(index.embedder, probe)
    probe_features = hstack(
        [csr_matrix(probe_vec * EMBEDDING_WEIGHT), vectorizer.transform(probe)]
    ).tocsr()
    expected = reference.decision_function(probe_features)
    ours, _ = model.logits(probe_vec, probe)
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_predictions_are_deterministic_and_consistent():
    _, _, store = shared_env()
    classifier = store.get()
    text = "We have no idea who is covering the weekend shifts and the overtime budget is gone."
    first, second = classifier.predict(text), classifier.predict(text)
    assert first == second
    assert abs(sum(first.probabilities.values()) - 1.0) < 1e-3
    assert first.confidence == max(first.probabilities.values())
    assert 1 <= len(first.focus) <= 3


@pytest.mark.parametrize(
    ("verdict", "scores", "expected"),
    [
        (
            "management",
            {"M1": 0.9, "M2": 0.6, "M3": 0.1, "L1": 0.9, "L2": 0, "L3": 0},
            ["M1", "M2"],
        ),
        ("leadership", {"M1": 0.9, "M2": 0.1, "M3": 0.1, "L1": 0.2, "L2": 0.3, "L3": 0}, ["L2"]),
        ("both", {"M1": 0.2, "M2": 0.1, "M3": 0.1, "L1": 0.1, "L2": 0.3, "L3": 0.2}, ["M1", "L2"]),
        (
            "both",
            {"M1": 0.9, "M2": 0.8, "M3": 0.7, "L1": 0.9, "L2": 0, "L3": 0},
            ["M1", "M2", "L1"],
        ),
    ],
)
def test_focus_fits_the_verdict(verdict, scores, expected):
    assert choose_focus(verdict, scores) == expected


def test_store_retrains_when_the_training_file_changes(tmp_path):
    settings, index, _ = shared_env()
    data = yaml.safe_load(settings.training_path.read_text())
    data["examples"] = data["examples"][:60]
    training = tmp_path / "train.yaml"
    training.write_text(yaml.safe_dump(data))
    own = Settings(data_dir=tmp_path / "data", training_path=training)
    store = ClassifierStore(own, index.embedder)
    assert store.ensure() is True
    assert store.ensure() is False
    data["examples"] = data["examples"][:50]
    training.write_text(yaml.safe_dump(data))
    assert not store.is_current()
    assert store.ensure() is True
    # A new process (a new store) loads the saved model instead of training.
    reloaded = ClassifierStore(own, index.embedder).get()
    assert reloaded.predict("The team lacks direction.").verdict in {
        "management",
        "leadership",
        "both",
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("examples: [", "not valid YAML"),
        ("examples:\n  - {id: a, situation: x, verdict: maybe, focus: [M1]}\n", "verdict"),
        ("examples:\n  - {id: a, situation: x, verdict: management, focus: [Z1]}\n", "focus"),
        ("examples: []\n", "too few"),
    ],
)
def test_bad_training_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "t.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_training(path)


def test_missing_training_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="missing"):
        load_training(tmp_path / "nope.yaml")


def test_training_example_type():
    assert TrainingExample("t1", "x", "management", ["M1"]).verdict == "management"
