"""The ``coach`` command line: index, search, train, ask, and the eval and feedback tools."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from app.errors import CoachError

# Modules that add their own sub-commands with ``register(subparsers)``.
EXTENSIONS = ("app.evals.cli", "app.feedback_cli", "app.guard_cli")


def _progress(label: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        end = "\n" if done >= total else ""
        print(
            f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}",
            end=end,
            file=sys.stderr,
            flush=True,
        )

    return report


def cmd_index(args: argparse.Namespace) -> int:
    from app.classifier import ClassifierStore
    from app.index import get_index

    index = get_index()
    result = index.build(rebuild=args.rebuild, progress=_progress("Embedding passages"))
    if result.built:
        print(
            f"Indexed {result.passages} passages into {result.collection} "
            f"in {result.seconds:.2f} s."
        )
    else:
        print(f"Index is up to date ({result.passages} passages); nothing to do.")
    store = ClassifierStore(index.settings, index.embedder)
    if args.rebuild or not store.is_current():
        store.train(progress=lambda msg: print(msg + "…", file=sys.stderr))
        print("Trained the offline classifier.")
    _ensure_safety(index, rebuild=args.rebuild)
    _ensure_moves(index, rebuild=args.rebuild)
    return 0


def _ensure_moves(index, rebuild: bool = False) -> None:
    """Check the offline coaching's wording and move library; embed the library if needed."""
    from app.move_match import MoveStore
    from app.offline_templates import load_templates

    load_templates(index.settings.prompts_dir)
    moves = MoveStore(index.settings, index.embedder)
    progress = lambda msg: print(msg + "…", file=sys.stderr)  # noqa: E731
    if rebuild or moves.ensure(progress):
        if rebuild:
            moves.build(progress)
        print("Embedded the coaching move library.")


def _ensure_safety(index, rebuild: bool = False) -> None:
    """Check the guard's rules and train the safety detector when it is missing or stale."""
    from app.safety_model import SafetyModelStore, load_thresholds
    from app.safety_rules import load_rules

    load_rules(index.settings.prompts_dir)
    safety = SafetyModelStore(index.settings, index.embedder)
    load_thresholds(safety.thresholds_path)
    progress = lambda msg: print(msg + "…", file=sys.stderr)  # noqa: E731
    if rebuild:
        safety.train(progress)
        print("Trained the safety detector.")
    elif safety.ensure(progress):
        print("Trained the safety detector.")


def cmd_train(args: argparse.Namespace) -> int:
    from app.classifier import ClassifierStore
    from app.index import get_index

    index = get_index()
    ClassifierStore(index.settings, index.embedder).train(
        progress=lambda msg: print(msg + "…", file=sys.stderr)
    )
    print(f"Trained the offline classifier; saved to {index.settings.data_dir / 'classifier.npz'}.")
    _ensure_safety(index, rebuild=True)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """What the local models learnt from, and how they did in cross-validation."""
    from app.classifier import ClassifierStore, VerdictModel
    from app.index import get_index
    from app.safety_model import SafetyModelStore, load_thresholds

    index = get_index()
    store = ClassifierStore(index.settings, index.embedder)
    store.ensure()
    report = VerdictModel.load(store.path).report
    recall = ", ".join(f"{k} {v:.3f}" for k, v in report.get("cv_recall", {}).items())
    print(
        f"Verdict classifier: {report.get('examples')} training situations; "
        f"{report.get('cv_folds')}-fold cross-validation accuracy "
        f"{report.get('cv_verdict_accuracy', 0):.3f} (recall: {recall}); "
        f"'both' when each side reaches {report.get('both_bar')}."
    )
    safety = SafetyModelStore(index.settings, index.embedder)
    bars = load_thresholds(safety.thresholds_path)
    print(
        f"Safety detector: trained on {', '.join(p.name for p in safety.training_paths)} "
        f"and the verdict situations; stops at crisis {bars.crisis:.2f}, unethical "
        f"{bars.unethical:.2f}, prompt_leak {bars.prompt_leak:.2f}, off_topic "
        f"{bars.off_topic:.2f} (chosen on {bars.chosen_on})."
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from app.index import get_index

    index = get_index()
    index.build()
    results = index.retrieve(args.query, args.k)
    for rank, sp in enumerate(results, 1):
        p = sp.passage
        label = f" [{p.code}]" if p.code else ""
        print(f"{rank}. {sp.score:.3f}  {p.id}{label}  ({p.section})")
        print(f"   {p.text}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from app.coach import build_coach
    from app.uploads import read_file, read_piped

    if args.file:
        extracted = read_file(args.file)
        situation = extracted.text
        notices = list(extracted.notices)
    else:
        situation = " ".join(args.situation or [])
        notices = []
        if situation == "-":  # bytes, checked and decoded as a .txt file would be
            piped = read_piped(sys.stdin.buffer)
            situation, notices = piped.text, list(piped.notices)
    if not situation.strip():
        raise CoachError(
            "The situation is empty: describe it in a few sentences, e.g. "
            'coach ask "Our deadlines slip because nobody knows who owns which task".'
        )
    coach = build_coach(engine=args.engine, prompt=args.prompt)
    stream = coach.ask(situation)
    if args.json:
        answer = stream.result()
        answer.notices = notices + answer.notices
        print(answer.model_dump_json(indent=2))
        return 0
    from app.render import answer_evidence, answer_header, answer_sources, reading_lines

    answer = stream.result()
    answer.notices = notices + answer.notices
    print(answer_header(answer))
    understood = reading_lines(answer)
    if understood:
        print()
        print("What I understood:")
        print("\n".join(f"- {line}" for line in understood))
    evidence = answer_evidence(answer)
    if evidence:
        print()
        print(evidence)
    print()
    print(answer.coaching)
    sources = answer_sources(answer, coach.sources(answer.citations))
    if sources:
        print()
        print(sources)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coach",
        description="Leadership Coach: tells whether a workplace situation calls for management, "
        "leadership or both, and coaches you on it, grounded in the article "
        "'Management vs Leadership: Key Differences You Need to Know'.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("index", help="build the article index (no-op when nothing changed)")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if nothing changed")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser(
        "train", help="retrain the offline classifier and the safety detector from their data"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "models", help="show the local models' training data and cross-validation figures"
    )
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("search", help="show the passages closest to a query, with scores")
    p.add_argument("query", help="what to look for, in your own words")
    p.add_argument("-k", type=int, default=4, help="how many passages (default 4)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="coach a situation (text, '-' for stdin, or --file)")
    p.add_argument("situation", nargs="*", help="the situation, in your own words")
    p.add_argument("--file", help="read the situation from a .txt, .md, .pdf or .docx file")
    p.add_argument("--json", action="store_true", help="print the structured answer as JSON")
    p.add_argument(
        "--engine", choices=["offline", "llm", "local", "auto"], help="override COACH_ENGINE"
    )
    p.add_argument("--prompt", help="prompt name@version, e.g. coach@v2 (LLM engine)")
    p.set_defaults(func=cmd_ask)

    for name in EXTENSIONS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not (exc.name and name.startswith(exc.name)):
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CoachError as exc:
        print(f"coach: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("coach: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
