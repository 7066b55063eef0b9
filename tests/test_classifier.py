"""The offline classifier: training data, numpy inference matching scikit-learn, persistence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from app.classifier import (
    ClassifierStore,
    TrainingExample,
    VerdictModel,
    choose_focus,
    decide_verdict,
    load_training,
    verdict_probabilities,
)
from app.errors import ConfigError
from app.passages import focus_side
from app.settings import Settings
from app.text_features import fit_word_features
from tests.coach_env import shared_env

ROOT = Path(__file__).resolve().parent.parent
TRAINING = ROOT / "knowledge" / "training"
SUITES = ROOT / "evals" / "suites"


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def test_training_set_is_large_varied_and_consistent():
    examples = load_training(TRAINING)
    assert len(examples) >= 1000
    for verdict in ("management", "leadership", "both"):
        assert sum(e.verdict == verdict for e in examples) >= 300
    for e in examples:
        sides = {focus_side(c) for c in e.focus}
        expected = {"management", "leadership"} if e.verdict == "both" else {e.verdict}
        assert sides == expected, e.id


def test_eval_suites_are_disjoint_from_the_training_set():
    training = {_normalise(e.situation) for e in load_training(TRAINING)}
    for suite in sorted(SUITES.glob("*.yaml")):
        cases = yaml.safe_load(suite.read_text())["cases"]
        overlap = [c["id"] for c in cases if _normalise(c["situation"]) in training]
        assert overlap == [], f"{suite.name} cases found in the training set: {overlap}"


def test_numpy_word_features_match_scikit_learn():
    texts = [e.situation for e in load_training(TRAINING)[:200]]
    ours, vectorizer = fit_word_features(texts)
    probe = "Nobody owns the rota and the budget split is a mystery to everyone here."
    idx, weights = ours.transform(probe)
    expected = vectorizer.transform([probe]).toarray()[0]
    dense = np.zeros_like(expected)
    dense[idx] = weights
    np.testing.assert_allclose(dense, expected, atol=1e-9)


def test_predictions_are_deterministic_and_consistent():
    _, _, store = shared_env()
    classifier = store.get()
    text = "We have no idea who is covering the weekend shifts and the overtime budget is gone."
    first, second = classifier.predict(text), classifier.predict(text)
    assert first == second
    assert abs(sum(first.probabilities.values()) - 1.0) < 1e-3
    assert 0 < first.confidence < 1
    assert 1 <= len(first.focus) <= 3
    assert set(first.sides) == {"management", "leadership"}


@pytest.mark.parametrize(
    ("p_m", "p_l", "bar", "expected"),
    [
        (0.9, 0.2, 0.5, "management"),
        (0.2, 0.9, 0.5, "leadership"),
        (0.7, 0.6, 0.5, "both"),
        (0.7, 0.45, 0.5, "management"),
        (0.45, 0.46, 0.5, "leadership"),
    ],
)
def test_verdict_follows_from_the_two_sides(p_m, p_l, bar, expected):
    assert decide_verdict(p_m, p_l, bar) == expected
    shares = verdict_probabilities(p_m, p_l)
    assert abs(sum(shares.values()) - 1) < 1e-9


def test_evidence_quotes_the_persons_own_sentences_for_each_side():
    _, _, store = shared_env()
    text = (
        "Nobody on my team knows which of the four client projects comes first, and two people "
        "spent last week on the same report. Since the merger nobody trusts the new director, "
        "and people have stopped speaking up in meetings because ideas get shot down."
    )
    prediction = store.get().predict(text)
    assert prediction.evidence
    for item in prediction.evidence:
        assert item.text in text
        assert focus_side(item.code) == item.side
        assert 0 <= item.score <= 1
    wanted = {"management", "leadership"} if prediction.verdict == "both" else {prediction.verdict}
    assert {e.side for e in prediction.evidence} <= wanted


def test_model_file_is_arrays_and_json_and_a_damaged_one_is_refused(tmp_path):
    _, _, store = shared_env()
    assert store.path.suffix == ".npz"
    with np.load(store.path, allow_pickle=False) as arrays:  # no pickled objects inside
        assert "side_coef" in arrays.files
    model = VerdictModel.load(store.path)
    assert model.report["cv_verdict_accuracy"] > 0
    broken = tmp_path / "classifier.npz"
    broken.write_bytes(b"not an npz")
    (tmp_path / "classifier.json").write_text("{}")
    with pytest.raises(ValueError):
        VerdictModel.load(broken)


def test_importing_the_classifier_imports_neither_chromadb_nor_sklearn():
    code = (
        "import sys, app.classifier; "
        "bad = [m for m in ('chromadb', 'sklearn') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stderr


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
    data = yaml.safe_load((TRAINING / "situations.yaml").read_text())
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


def test_offline_quotes_agree_with_the_focus_they_support_on_the_dev_suite():
    """Every sentence the offline coach quotes was read as the side of the focus it supports."""
    import re

    from app.coach import Coach
    from app.engines.offline import OfflineEngine

    settings, index, store = shared_env()
    coach = Coach(OfflineEngine(settings), settings=settings, index=index, classifiers=store)
    cases = yaml.safe_load((SUITES / "core.yaml").read_text())["cases"][::3]
    checked = 0
    for case in cases:
        answer = coach.ask(case["situation"]).result()
        if answer.verdict is None:
            continue
        sides = {focus_side(c) for c in answer.focus}
        for quote in re.findall(r'In your words: "([^"]+)"', answer.coaching):
            head = quote.rstrip("…")
            match = [e for e in answer.evidence if e.text.startswith(head[:60])]
            assert match, f"{case['id']}: quoted {quote!r} is not one of the evidence sentences"
            assert match[0].side in sides, f"{case['id']}: {quote!r} read as {match[0].side}"
            checked += 1
    assert checked >= 10


def test_cli_shows_the_evidence_in_json_and_in_plain_text(tmp_path):
    import json
    import os

    from tests.coach_env import seed_models

    data = tmp_path / "data"
    data.mkdir()
    seed_models(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COACH_", "OPENAI_"))}
    env["COACH_DATA_DIR"] = str(data)
    text = (
        "Two of my five nurses are booked on the same night shifts every week while the weekend "
        "has nobody senior, and the overtime budget ran out in March."
    )
    run = [sys.executable, "-m", "app.cli", "ask"]
    plain = subprocess.run(
        [*run, text], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600
    )
    assert plain.returncode == 0, plain.stderr
    as_json = subprocess.run(
        [*run, "--json", text], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600
    )
    evidence = json.loads(as_json.stdout)["evidence"]
    assert evidence and all(e["text"] in text for e in evidence)
    assert f"What I read as {evidence[0]['side']}:" in plain.stdout
    assert evidence[0]["text"] in plain.stdout
