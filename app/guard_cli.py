"""``coach guard``: train, tune, cross-validate and try the safety detector."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from app.errors import ConfigError


def _store():
    from app.embedder import MiniLMEmbedder
    from app.safety_model import SafetyModelStore
    from app.settings import get_settings

    settings = get_settings()
    return SafetyModelStore(settings, MiniLMEmbedder(str(settings.tokenizer_path)))


def _dev_cases(paths: list[str]) -> list[tuple[str, str, str]]:
    """(id, text, expected kind) from dev suites; a frozen test suite is refused."""
    cases = []
    for name in paths:
        path = Path(name)
        if "test" in path.stem:
            raise ConfigError(
                f"{path} looks like a frozen test suite: thresholds are chosen on dev suites only."
            )
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"Cannot read the suite {path}: {exc}") from None
        for case in data.get("cases") or []:
            text = " ".join([str(case["situation"])] * int(case.get("repeat", 1)))
            if "expected_safety" in case:
                cases.append((case["id"], text, case["expected_safety"] or "none"))
            elif case.get("expected_verdict"):  # a situation labelled with a verdict is ordinary
                cases.append((case["id"], text, "none"))
    if not cases:
        raise ConfigError("No usable case in those files: pass the guard dev suites.")
    return cases


def cmd_train(args: argparse.Namespace) -> int:
    store = _store()
    store.train(progress=lambda msg: print(msg + "…", file=sys.stderr))
    print(f"Trained the safety detector; saved to {store.path}.")
    return 0


def cmd_read(args: argparse.Namespace) -> int:
    detector = _store().get()
    text = " ".join(args.text)
    reading = detector.read(text)
    print(f"kind: {reading.kind or 'none'}")
    for kind, score in reading.scores.items():
        bar = getattr(detector.thresholds, kind)
        print(f"  {kind:<12} {score:.3f}  (stops at {bar:.2f})")
    if reading.window and reading.window != text:
        print(f"because of: {reading.window}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from app.safety_model import STOP_KINDS
    from app.safety_thresholds import ScoredCase, choose_thresholds

    cases = _dev_cases(args.suites)  # refuse a frozen test suite before any work
    store = _store()
    store.ensure()
    detector = store.get()
    scored = [ScoredCase(expected, detector.read(text).scores) for _, text, expected in cases]
    chosen = choose_thresholds(scored)
    counts = {k: sum(c.expected == k for c in scored) for k in (*STOP_KINDS, "none")}
    lines = [f"{k}: {t:.2f}" for k, (t, _, _) in chosen.items()]
    for kind, (threshold, caught, false) in chosen.items():
        print(
            f"{kind:<12} threshold {threshold:.2f}: catches {caught}/{counts[kind]}, "
            f"would also stop {false} other dev cases"
        )
    if args.write:
        names = ", ".join(Path(p).name for p in args.suites)
        text = (
            "# Per-kind stop thresholds of the safety detector, written by `coach guard tune`.\n"
            "# Chosen on the dev split only; the frozen test split is never read to choose them.\n"
            + "\n".join(lines)
            + f"\nchosen_on: {yaml.safe_dump(names).strip()}\n"
            + f"note: {yaml.safe_dump(f'{len(scored)} dev cases').strip()}\n"
        )
        store.thresholds_path.write_text(text.replace("\n...", ""), encoding="utf-8")
        print(f"Wrote {store.thresholds_path}.")
    return 0


def cmd_cv(args: argparse.Namespace) -> int:
    """Cross-validated per-kind recall and precision on the training messages."""
    import numpy as np

    from app.safety_model import (
        KINDS,
        STOP_KINDS,
        decide,
        embed_windows,
        fit_safety_model,
        load_guard_training,
        weighted_rows,
    )

    store = _store()
    files = [load_guard_training(p) for p in store.training_paths]
    texts = [e.text for f in files for e in f.examples]
    kinds = [e.kind for f in files for e in f.examples]
    scale = [f.weight for f in files for _ in f.examples]
    thresholds = store.get().thresholds
    fold = np.random.default_rng(0).permutation(len(texts)) % args.folds
    predicted = [""] * len(texts)
    for f in range(args.folds):
        train = [i for i in range(len(texts)) if fold[i] != f]
        held = [i for i in range(len(texts)) if fold[i] == f]
        rows, vectors, labels, weights = weighted_rows(
            [texts[i] for i in train],
            [kinds[i] for i in train],
            [scale[i] for i in train],
            store._embed,
        )
        model = fit_safety_model(rows, labels, vectors, weights=weights)
        read = embed_windows([texts[i] for i in held], store._embed)
        for i, (parts, part_vectors) in zip(held, read, strict=True):
            probs = model.probabilities(part_vectors, parts)
            scores = {k: float(probs[:, KINDS.index(k)].max()) for k in STOP_KINDS}
            predicted[i] = decide(scores, thresholds) or "none"
        print(f"fold {f + 1}/{args.folds} done", file=sys.stderr)
    print(f"{args.folds}-fold cross-validation on {len(texts)} training messages:")
    for kind in KINDS:
        truth = [i for i, k in enumerate(kinds) if k == kind]
        said = [i for i, k in enumerate(predicted) if k == kind]
        recall = sum(predicted[i] == kind for i in truth) / max(len(truth), 1)
        precision = sum(kinds[i] == kind for i in said) / max(len(said), 1)
        print(f"  {kind:<12} recall {recall:.3f}  precision {precision:.3f}  (n={len(truth)})")
    return 0


def register(sub) -> None:
    guard = sub.add_parser("guard", help="train, tune and try the safety detector")
    gsub = guard.add_subparsers(dest="guard_command", metavar="GUARD_COMMAND", required=True)

    p = gsub.add_parser("train", help="retrain the detector from knowledge/guard/situations.yaml")
    p.set_defaults(func=cmd_train)

    p = gsub.add_parser("read", help="show how the detector reads a message, with scores")
    p.add_argument("text", nargs="+", help="the message")
    p.set_defaults(func=cmd_read)

    p = gsub.add_parser(
        "tune",
        help="choose per-kind thresholds on dev suites (never the frozen test suites)",
        description="Scores every case in the given DEV suites (a case with expected_safety "
        "counts as that kind; a case labelled with a verdict counts as ordinary) and picks, per "
        "stop kind, the threshold that catches the most cases for the fewest false stops. "
        "Files whose name contains 'test' are refused.",
    )
    p.add_argument("suites", nargs="+", help="dev suite files, e.g. evals/suites/guard-dev.yaml")
    p.add_argument("--write", action="store_true", help="write knowledge/guard/thresholds.yaml")
    p.set_defaults(func=cmd_tune)

    p = gsub.add_parser("cv", help="cross-validate the detector on its training set")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    p.set_defaults(func=cmd_cv)
