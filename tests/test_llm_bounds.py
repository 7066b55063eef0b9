"""Every LLM answer is bounded: a whole-answer deadline and a reply-size cap, over real HTTP.

The servers here misbehave the way real ones do: a generation that never ends, a reply
of 8 MB, a body that trickles forever. Each test asserts what a person sees (the answer
ends, the coaching shown so far is kept, a plain notice says why) and that the server
saw the client go. The only timing asserted is a generous outer limit, so that a bug
fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.answer import CoachingAnswer, CoachRequest
from app.engines.fake import FakeEngine
from app.engines.llm import LLMEngine
from app.errors import LLMError
from app.settings import PROJECT_ROOT, Settings
from tests.coach_env import seed_models
from tests.openai_server import DEFAULT_REPLY, OpenAIServer, forever, reply, status, trickle

OUTER_LIMIT = 60.0  # seconds; far above any deadline set here, only so a hang fails
SITUATION = "Nobody knows who owns which task, so our deadlines slip every week."
OPENING = DEFAULT_REPLY.rsplit("\n---\n", 1)[0] + "\n"  # header and coaching, no trailer
EIGHT_MB = 8 * 1024 * 1024
OFFLINE = CoachingAnswer(
    verdict="management",
    confidence=0.6,
    focus=["M2"],
    coaching="Name one owner per task.",
    meta={"engine": "offline", "model": "local-classifier"},
)


def engine_for(server: OpenAIServer, fallback: FakeEngine | None = None, **values) -> LLMEngine:
    settings = Settings(
        llm_base_url=server.base_url, llm_model="m", llm_api_key="sk-test", **values
    )
    engine = LLMEngine(settings, fallback=fallback, retry_base_delay=0.01, sleep=lambda _: None)
    engine.warm_up()  # importing the client is not part of any answer's time here
    return engine


def within(limit: float, work: Callable[[], Any]) -> Any:
    """Run ``work`` in a thread; fail (instead of hanging) if it has not ended by ``limit``."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = work()
        except BaseException as exc:  # handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still running after {limit:g} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


def answer_of(engine: LLMEngine) -> tuple[str, CoachingAnswer]:
    *chunks, answer = list(engine.run(CoachRequest(situation=SITUATION)))
    assert isinstance(answer, CoachingAnswer)
    return "".join(chunks), answer


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return check()


# ------------------------------------------------------------------------- the deadline


def test_a_generation_that_never_ends_stops_at_the_deadline_and_keeps_what_was_shown(
    openai_server: OpenAIServer,
):
    openai_server.enqueue(forever(OPENING, filler="and more ", interval=0.01))
    engine = engine_for(openai_server, fallback=FakeEngine(default=OFFLINE), llm_deadline=1.5)

    shown, answer = within(OUTER_LIMIT, lambda: answer_of(engine))

    assert answer.verdict == "management" and answer.focus == ["M1", "M2"]
    assert answer.coaching == shown.strip()
    assert answer.coaching.startswith("This is mostly **management**")
    assert "and more and more" in answer.coaching  # the runaway part that was shown is kept
    assert answer.meta.cut_off == "deadline" and not answer.meta.fallback
    (notice,) = answer.notices
    assert "1.5 s" in notice and "COACH_LLM_DEADLINE" in notice
    assert eventually(lambda: openai_server.client_gone == 1), "the server kept generating"


def test_a_deadline_before_any_coaching_falls_back_and_says_why(openai_server: OpenAIServer):
    # The FOCUS line never ends, so the header is never complete and nothing is shown.
    openai_server.enqueue(forever("VERDICT: management\nFOCUS: M1", filler=" ", interval=0.02))
    engine = engine_for(openai_server, fallback=FakeEngine(default=OFFLINE), llm_deadline=1.0)

    shown, answer = within(OUTER_LIMIT, lambda: answer_of(engine))

    assert answer.meta.fallback and answer.coaching == OFFLINE.coaching
    assert shown == OFFLINE.coaching  # only the fallback's own text was streamed
    assert any("COACH_LLM_DEADLINE" in n and "offline engine" in n for n in answer.notices)
    assert eventually(lambda: openai_server.client_gone == 1)


def test_without_a_fallback_the_deadline_is_a_plain_error(openai_server: OpenAIServer):
    openai_server.enqueue(forever("VERDICT: management\nFOCUS: M1", filler=" ", interval=0.02))
    engine = engine_for(openai_server, llm_deadline=1.0)

    with pytest.raises(LLMError, match=r"after 1 s.*COACH_LLM_DEADLINE") as caught:
        within(OUTER_LIMIT, lambda: answer_of(engine))
    assert "Traceback" not in str(caught.value)


def test_a_silent_server_is_bounded_by_the_deadline_not_only_the_read_timeout(
    openai_server: OpenAIServer,
):
    # Each read may wait 60 s, but the whole answer may take only 1 s.
    openai_server.enqueue(reply(delay=30))
    engine = engine_for(
        openai_server, fallback=FakeEngine(default=OFFLINE), llm_deadline=1.0, llm_timeout=60
    )

    _, answer = within(OUTER_LIMIT, lambda: answer_of(engine))

    assert answer.meta.fallback
    assert any("COACH_LLM_DEADLINE" in n for n in answer.notices)


def test_no_retry_is_started_that_the_deadline_cannot_wait_for(openai_server: OpenAIServer):
    openai_server.enqueue(status(503, headers={"Retry-After": "30"}))
    engine = engine_for(openai_server, llm_deadline=2.0, llm_max_attempts=3)

    with pytest.raises(LLMError) as caught:
        within(OUTER_LIMIT, lambda: answer_of(engine))

    message = str(caught.value)
    assert "failed with error 503" in message and "COACH_LLM_DEADLINE" in message
    assert len(openai_server.chat_requests) == 1


def test_bytes_that_never_complete_an_event_are_bounded_too(openai_server: OpenAIServer):
    # No chunk ever reaches the engine: only the hooks on the HTTP body can stop this.
    openai_server.enqueue(trickle(filler="x", interval=0.01))
    engine = engine_for(openai_server, fallback=FakeEngine(default=OFFLINE), llm_deadline=1.0)

    _, answer = within(OUTER_LIMIT, lambda: answer_of(engine))

    assert answer.meta.fallback
    assert any("COACH_LLM_DEADLINE" in n for n in answer.notices)
    assert eventually(lambda: openai_server.client_gone == 1)


def test_the_judge_call_is_bounded_too(openai_server: OpenAIServer):
    # A non-streamed body that never ends: only the hooks on the HTTP body can stop it.
    openai_server.enqueue(trickle(filler="x", interval=0.01))
    engine = engine_for(openai_server, llm_deadline=1.0)

    with pytest.raises(LLMError, match=r"did not finish its reply within 1 s"):
        within(OUTER_LIMIT, lambda: engine.complete("rubric", "answer"))
    assert eventually(lambda: openai_server.client_gone == 1)


# ---------------------------------------------------------------------------- the size cap


def test_an_8_mb_reply_is_cut_at_the_cap_and_the_connection_closed(openai_server: OpenAIServer):
    big = OPENING + ("All work and no play. " * (EIGHT_MB // 22))
    openai_server.enqueue(reply(big, piece_chars=4096))
    engine = engine_for(openai_server, fallback=FakeEngine(default=OFFLINE))
    cap = engine.settings.llm_max_reply_chars

    shown, answer = within(OUTER_LIMIT, lambda: answer_of(engine))

    assert cap == 24_000  # the default
    assert answer.meta.cut_off == "size" and not answer.meta.fallback
    assert answer.coaching == shown.strip()
    assert cap - 5_000 < len(answer.coaching) <= cap
    assert answer.verdict == "management"
    (notice,) = answer.notices
    assert "24,000 characters" in notice and "COACH_LLM_MAX_REPLY_CHARS" in notice
    # (Whether the server notices depends on how much of the 8 MB the socket buffers took.)


def test_a_runaway_stream_stops_at_a_smaller_cap_and_the_server_stops(
    openai_server: OpenAIServer,
):
    openai_server.enqueue(forever(OPENING, filler="word ", interval=0.001))
    engine = engine_for(openai_server, llm_max_reply_chars=2_000)

    _, answer = within(OUTER_LIMIT, lambda: answer_of(engine))

    assert answer.meta.cut_off == "size" and len(answer.coaching) <= 2_000
    assert "2,000 characters" in answer.notices[0]
    assert eventually(lambda: openai_server.client_gone == 1), "the server kept generating"


def test_an_8_mb_judge_reply_is_refused_plainly(openai_server: OpenAIServer):
    openai_server.enqueue(reply("SCORE: 5\n" + "y" * EIGHT_MB))
    engine = engine_for(openai_server)

    with pytest.raises(LLMError, match=r"within 24,000 characters \(COACH_LLM_MAX_REPLY_CHARS\)"):
        within(OUTER_LIMIT, lambda: engine.complete("rubric", "answer"))


def test_normal_answers_are_not_touched_by_the_bounds(openai_server: OpenAIServer):
    engine = engine_for(openai_server, llm_deadline=30, llm_max_reply_chars=len(DEFAULT_REPLY))
    _, answer = answer_of(engine)
    assert answer.meta.cut_off is None and answer.notices == []
    assert answer.summary  # the trailer was read: nothing was cut


# ------------------------------------------------------------------------------ the CLI


def cli_with_rss(tmp_path: Path, server: OpenAIServer, **env: str) -> tuple[int, str, str, int]:
    """``coach ask --engine llm`` in its own process: exit code, stdout, stderr, peak RSS (KB)."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    seed_models(data)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COACH_", "OPENAI_"))}
    clean |= {"COACH_DATA_DIR": str(data), "COACH_LLM_BASE_URL": server.base_url, **env}
    # The peak is VmHWM, this program's own high-water mark: ru_maxrss would also count the
    # test process, whose memory the child had until it started Python.
    script = (
        "import re, sys\n"
        "from pathlib import Path\n"
        "from app.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "status = Path('/proc/self/status').read_text()\n"
        "peak = int(re.search(r'VmHWM:\\s*(\\d+) kB', status)[1])\n"
        "print(json.dumps({'peak_kb': peak}), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import json\n" + script, "ask", "--engine", "llm", SITUATION],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=clean,
        timeout=300,
    )
    *err_lines, last = done.stderr.strip().splitlines() or [""]
    peak = json.loads(last)["peak_kb"] if last.startswith("{") else -1
    return done.returncode, done.stdout, "\n".join(err_lines), peak


@pytest.mark.parametrize(
    ("behaviour", "env", "notice"),
    [
        (
            forever(OPENING, filler="and more ", interval=0.01),
            {"COACH_LLM_DEADLINE": "3"},
            "was still writing after 3 s",
        ),
        (
            reply(OPENING + "All work and no play. " * (EIGHT_MB // 22), piece_chars=4096),
            {},
            "passed 24,000 characters",
        ),
    ],
    ids=["streams-forever", "8-mb-reply"],
)
def test_the_cli_ends_with_the_partial_answer_and_a_plain_note(
    tmp_path: Path, openai_server: OpenAIServer, behaviour, env: dict[str, str], notice: str
):
    openai_server.enqueue(behaviour)
    code, out, err, peak_kb = cli_with_rss(tmp_path, openai_server, **env)

    assert code == 0, err
    assert "Traceback" not in err
    assert "This is mostly **management**" in out or "This is mostly management" in out
    assert notice in out
    assert 0 < peak_kb < 800 * 1024, f"peak memory {peak_kb / 1024:.0f} MB"
    if behaviour.kind == "forever":  # a finite reply may sit whole in the socket buffers
        assert eventually(lambda: openai_server.client_gone == 1), "the server kept generating"
