"""The LLM judge: rates an answer 1 to 5 with the ``judge`` prompt, through the LLM seam.

The judge has its own model (``COACH_JUDGE_MODEL``, on ``COACH_JUDGE_BASE_URL`` with
``COACH_JUDGE_API_KEY``), because a model grading its own answers is a lenient judge.
Without one it falls back to the coaching model and prints a warning that says how to
set one. The coaching key goes only to the coaching server: a judge on another server
gets ``COACH_JUDGE_API_KEY`` or no key. The run record names the judge's model and its
server's address (without credentials or query).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from functools import cache
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

    def __init__(
        self, prompt: Any, complete: Completer, model: str, url: str | None = None
    ) -> None:
        self.prompt = prompt  # an app.prompts.Prompt
        self.complete = complete
        self.model = model
        self.url = url  # the server's address for the record, already without credentials

    def describe(self) -> dict[str, str]:
        described = {"prompt": self.prompt.ref, "sha256": self.prompt.sha256, "model": self.model}
        if self.url:
            described["url"] = self.url
        return described

    def ask(self, situation: str, answer: CoachingAnswer) -> str:
        """The judge's raw reply (cacheable); ``parse_judgement`` turns it into a Score."""
        system, user = self.prompt.render(situation=situation, answer=judge_answer_text(answer))
        text, _usage = self.complete(system, user)
        return text


def llm_judge(settings: Any, ref: str = JUDGE_PROMPT) -> Judge:
    """A judge on the judge's own model, or on the coaching model with a warning on stderr;
    a ConfigError when neither is configured."""
    from pydantic import SecretStr

    from app.errors import ConfigError
    from app.prompts import load_prompt
    from app.urls import display_url

    own = bool(settings.judge_model or settings.judge_base_url)
    base_url = settings.judge_base_url or settings.llm_base_url
    model = settings.judge_model or settings.llm_model
    if settings.judge_api_key is not None:
        key = settings.judge_api_key.get_secret_value()
    elif base_url == settings.llm_base_url:
        key = settings.api_key() or ""
    else:
        key = ""  # the coaching key is never sent to another server
    if not key and not base_url:
        raise ConfigError(
            "The judge needs an LLM: set COACH_JUDGE_MODEL and OPENAI_API_KEY (or "
            "COACH_JUDGE_BASE_URL for an OpenAI-compatible server), or run without --judge."
        )
    url = display_url(base_url)
    if not own:
        _warn_once(
            f"coach: warning: no judge model is set, so the judge grades with the coaching "
            f"model ({model} at {url}); a model grading its own answers is a lenient judge. "
            "Set COACH_JUDGE_MODEL (and COACH_JUDGE_BASE_URL and COACH_JUDGE_API_KEY for a "
            "model on another server) to give the judge its own model."
        )
    from app.engines.llm import LLMEngine

    judge_settings = settings.model_copy(
        update={"llm_model": model, "llm_base_url": base_url, "llm_api_key": SecretStr(key)}
    )
    engine = LLMEngine(judge_settings, settings_env="COACH_JUDGE" if own else "COACH_LLM")
    prompt = load_prompt(ref, settings.prompts_dir)
    return Judge(prompt, engine.complete, model, url)


@cache
def _warn_once(text: str) -> None:
    print(text, file=sys.stderr)
