"""The LLM judge: rates an answer 1 to 5 with the ``judge`` prompt, through the LLM seam."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from app.answer import CoachingAnswer, Usage
from app.evals.scorers import Score
from app.passages import FOCUS_NAMES

JUDGE_PROMPT = "judge@v1"


def parse_judgement(text: str) -> Score:
    """Read the judge's ``SCORE: n`` and ``REASON: ...`` lines; the value is n scaled to 0..1."""
    score = re.search(r"^\W*SCORE\W*:?\s*\**\s*([1-5])\b", text, re.IGNORECASE | re.MULTILINE)
    reason = re.search(r"^\W*REASON\W*:?\s*(.+)$", text, re.IGNORECASE | re.MULTILINE)
    if not score:
        raise ValueError(f"the judge's reply has no SCORE line: {text.strip()[:120]!r}")
    rating = int(score.group(1))
    why = reason.group(1).strip().strip("*").strip() if reason else "(no reason given)"
    return Score((rating - 1) / 4, f"{rating}/5: {why}")


def judge_answer_text(answer: CoachingAnswer) -> str:
    """The answer as the judge reads it: verdict line, focus, summary, coaching, questions."""
    verdict = answer.verdict or "no verdict (asks for more detail or declines)"
    lines = [f"Verdict: {verdict}"]
    if answer.focus:
        lines.append("Focus: " + ", ".join(f"{c} {FOCUS_NAMES[c]}" for c in answer.focus))
    lines += [f"Summary: {answer.summary}", "", answer.coaching]
    if answer.follow_up_questions:
        lines += ["", "Questions:", *(f"- {q}" for q in answer.follow_up_questions)]
    return "\n".join(lines)


Completer = Callable[[str, str], tuple[str, Usage | None]]


class Judge:
    """LLM-as-judge: rates an answer 1 to 5 with the ``judge`` prompt, through the LLM seam."""

    def __init__(self, prompt: Any, complete: Completer, model: str) -> None:
        self.prompt = prompt  # an app.prompts.Prompt
        self.complete = complete
        self.model = model

    def describe(self) -> dict[str, str]:
        return {"prompt": self.prompt.ref, "sha256": self.prompt.sha256, "model": self.model}

    def ask(self, situation: str, answer: CoachingAnswer) -> str:
        """The judge's raw reply (cacheable); ``parse_judgement`` turns it into a Score."""
        system, user = self.prompt.render(situation=situation, answer=judge_answer_text(answer))
        text, _usage = self.complete(system, user)
        return text


def llm_judge(settings: Any, ref: str = JUDGE_PROMPT) -> Judge:
    """A judge on the configured LLM; a ConfigError when none is configured."""
    from app.errors import ConfigError
    from app.prompts import load_prompt

    if not settings.llm_configured():
        raise ConfigError(
            "The judge needs an LLM: set OPENAI_API_KEY or COACH_LLM_BASE_URL, "
            "or run without --judge."
        )
    from app.engines.llm import LLMEngine

    engine = LLMEngine(settings)
    prompt = load_prompt(ref, settings.prompts_dir)
    return Judge(prompt, engine.complete, engine.model)
