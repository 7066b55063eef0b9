"""``coach feedback export``: answers users corrected in the app, written as an eval suite."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from app.errors import CoachError
from app.passages import focus_side

if TYPE_CHECKING:  # the store loads SQLAlchemy; every `coach` command imports this module
    from app.store import ConversationStore, CorrectedAnswer

SUITE_NAME = "feedback"
SUITE_DESCRIPTION = (
    "Answers that users corrected in the chat app (thumbs and verdict correction), "
    "exported by `coach feedback export`. Regenerate it rather than editing it by hand."
)
DEFAULT_OUT = Path("evals/suites/feedback.yaml")


def focus_fits(verdict: str, codes: list[str]) -> bool:
    """The eval suite's rule: 1-3 codes, on the verdict's side (both: at least one of each)."""
    if not 1 <= len(codes) <= 3:
        return False
    sides = {focus_side(c) for c in codes}
    if verdict == "both":
        return sides == {"management", "leadership"}
    return sides == {verdict}


def expected_focus(correction: CorrectedAnswer) -> list[str] | None:
    """The focus codes a corrected case expects, or None when none can be told.

    The user's own focus choice wins; otherwise the answer's focus when its verdict was
    right, else those of the answer's codes that fit the corrected verdict.
    """
    verdict = correction.corrected_verdict
    if correction.corrected_focus:
        codes = list(correction.corrected_focus)
    elif correction.answer.verdict == verdict:
        codes = list(correction.answer.focus)
    else:
        codes = [
            c for c in correction.answer.focus if verdict == "both" or focus_side(c) == verdict
        ]
    return codes if focus_fits(verdict, codes) else None


def feedback_cases(
    corrections: list[CorrectedAnswer],
) -> tuple[list[dict[str, Any]], list[str]]:
    """Eval cases for the corrections, and a reason for each one that had to be left out."""
    cases: list[dict[str, Any]] = []
    skipped: list[str] = []
    for c in corrections:
        case_id = f"feedback-{c.message_id}"
        if not c.situation.strip():
            skipped.append(f"{case_id}: the message it answered is empty.")
            continue
        focus = expected_focus(c)
        if focus is None:
            skipped.append(
                f"{case_id}: corrected to {c.corrected_verdict}, but no focus area of the "
                "answer fits that verdict; pick the focus areas in the correction form."
            )
            continue
        tags = ["feedback"]
        if c.rating == 0:
            tags.append("thumbs-down")
        if c.answer.verdict != c.corrected_verdict:
            tags.append("verdict-corrected")
        cases.append(
            {
                "id": case_id,
                "situation": c.situation,
                "expected_verdict": c.corrected_verdict,
                "expected_focus": focus,
                "tags": tags,
            }
        )
    return cases, skipped


def suite_yaml(cases: list[dict[str, Any]]) -> str:
    """The suite file text: name, description and cases, in the evals format."""
    doc = {"name": SUITE_NAME, "description": SUITE_DESCRIPTION, "cases": cases}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


def export_feedback(store: ConversationStore, out: Path) -> tuple[int, list[str]]:
    """Write the corrected answers to ``out``; how many were written and why others were not.

    Nothing is written when there is no usable correction (a suite needs one case).
    """
    cases, skipped = feedback_cases(store.corrected_feedback())
    if cases:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(suite_yaml(cases), encoding="utf-8")
        except OSError as exc:
            raise CoachError(
                f"Could not write {out} ({exc.strerror}): choose another --out path."
            ) from None
    return len(cases), skipped


def cmd_export(args: argparse.Namespace) -> int:
    from app.store import ConversationStore, open_store

    if args.db and not Path(args.db).is_file():
        raise CoachError(f"{args.db} does not exist: give the path of a conversations.db file.")
    store = ConversationStore(Path(args.db)) if args.db else open_store()
    written, skipped = export_feedback(store, Path(args.out))
    for reason in skipped:
        print(f"Skipped {reason}", file=sys.stderr)
    if written:
        print(f"Wrote {written} corrected answer(s) to {args.out}.")
    else:
        print("No corrected answers to export yet; nothing was written.")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``coach feedback export`` to the ``coach`` command line."""
    feedback = subparsers.add_parser(
        "feedback", help="work with the feedback users gave in the app"
    )
    sub = feedback.add_subparsers(dest="feedback_command", metavar="ACTION", required=True)
    p = sub.add_parser("export", help="write corrected answers as eval cases (suite YAML)")
    p.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        help=f"the suite file to write (default {DEFAULT_OUT})",
    )
    p.add_argument(
        "--db", help="the conversations database (default: conversations.db in COACH_DATA_DIR)"
    )
    p.set_defaults(func=cmd_export)
