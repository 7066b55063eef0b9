"""The ``coach`` command line: index, search, train, ask, and the eval and feedback tools."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from app.errors import CoachError

# Modules that add their own sub-commands with ``register(subparsers)``.
EXTENSIONS = ("app.evals.cli", "app.feedback_cli")


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
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from app.classifier import ClassifierStore
    from app.index import get_index

    index = get_index()
    ClassifierStore(index.settings, index.embedder).train(
        progress=lambda msg: print(msg + "…", file=sys.stderr)
    )
    print(f"Trained the offline classifier; saved to {index.settings.data_dir / 'classifier.pkl'}.")
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
    from app.uploads import read_file

    if args.file:
        extracted = read_file(args.file)
        situation = extracted.text
        notices = list(extracted.notices)
    else:
        situation = " ".join(args.situation or [])
        if situation == "-":
            situation = sys.stdin.read()
        notices = []
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
    from app.render import answer_header, answer_sources

    answer = stream.result()
    answer.notices = notices + answer.notices
    print(answer_header(answer))
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

    p = sub.add_parser("train", help="retrain the offline classifier from its training set")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("search", help="show the passages closest to a query, with scores")
    p.add_argument("query", help="what to look for, in your own words")
    p.add_argument("-k", type=int, default=4, help="how many passages (default 4)")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="coach a situation (text, '-' for stdin, or --file)")
    p.add_argument("situation", nargs="*", help="the situation, in your own words")
    p.add_argument("--file", help="read the situation from a .txt, .md, .pdf or .docx file")
    p.add_argument("--json", action="store_true", help="print the structured answer as JSON")
    p.add_argument("--engine", choices=["offline", "llm", "auto"], help="override COACH_ENGINE")
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
