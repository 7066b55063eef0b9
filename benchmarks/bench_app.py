"""The Streamlit app: time from ``streamlit run`` to the page's first answer, and peak memory.

A headless Debian Chromium, driven by Playwright, opens the page as soon as the
server answers its health check, types a situation and waits for the stored
answer (its ``offline · local-classifier · … s`` line). The clock starts just
before ``streamlit run`` is launched; the browser is already running, since a
person's browser is too. Each start gets a fresh copy of the built index and
classifier, like a checkout after ``make index``. After the first start, the
same page asks ``questions`` questions in all and the server's peak resident
memory (VmHWM) is read from /proc.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks import synthetic
from benchmarks.coach_data import copy_data
from benchmarks.figures import Section
from benchmarks.processes import PROJECT_ROOT, child_env, free_port, memory_mb
from tests.chromium import CHROMIUM, CHROMIUM_ARGS

ANSWERED = re.compile(r"local-classifier · [0-9.]+ s")
START_TIMEOUT = 180.0
ANSWER_TIMEOUT = 120.0


def streamlit_command(port: int) -> list[str]:
    script = Path(sys.executable).parent / "streamlit"
    runner = [str(script)] if script.exists() else [sys.executable, "-m", "streamlit"]
    return [
        *runner,
        "run",
        "streamlit_app.py",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]


def _wait_healthy(url: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError("streamlit did not become healthy in time")
        time.sleep(0.05)


def ask(page: Any, text: str, number: int, timeout: float = ANSWER_TIMEOUT) -> float:
    """Type ``text`` into the chat, wait for answer ``number`` to be shown; seconds taken."""
    box = page.get_by_test_id("stChatInputTextArea")
    deadline = time.monotonic() + timeout
    while not box.is_enabled():  # the input is disabled while the previous answer runs
        if time.monotonic() > deadline:
            raise RuntimeError("the chat input stayed disabled")
        time.sleep(0.02)
    started = time.perf_counter()
    box.fill(text)
    box.press("Enter")
    remaining = max(deadline - time.monotonic(), 1.0)
    page.get_by_text(ANSWERED).nth(number - 1).wait_for(state="visible", timeout=remaining * 1000)
    return time.perf_counter() - started


def run(base_data: Path, starts: int, questions: int) -> Section:
    """``starts`` cold starts of the app; the first one goes on to ``questions`` questions."""
    from playwright.sync_api import sync_playwright

    section = Section("app")
    texts = synthetic.situations(max(questions, 1), seed=37)
    first_answers: list[float] = []
    healthy: list[float] = []
    answer_times: list[float] = []
    memory: dict[str, float] = {}
    logs = Path(tempfile.mkdtemp(prefix="coach-bench-app-"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            for number in range(starts):
                folder = copy_data(base_data)
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                log = (logs / f"streamlit-{number}.log").open("wb")
                started = time.perf_counter()
                process = subprocess.Popen(
                    streamlit_command(port),
                    cwd=PROJECT_ROOT,
                    env=child_env(folder),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                page = None
                try:
                    _wait_healthy(url, process, time.monotonic() + START_TIMEOUT)
                    healthy.append(time.perf_counter() - started)
                    page = browser.new_page()
                    page.goto(url, wait_until="domcontentloaded")
                    ask(page, texts[0], 1, timeout=START_TIMEOUT)
                    first_answers.append(time.perf_counter() - started)
                    if number == 0:
                        for i in range(1, questions):
                            answer_times.append(ask(page, texts[i], i + 1))
                        memory = memory_mb(process.pid)
                except Exception as exc:
                    tail = (logs / f"streamlit-{number}.log").read_text(errors="replace")[-800:]
                    raise RuntimeError(f"{exc}; streamlit's log ends: {tail}") from exc
                finally:
                    if page is not None:
                        page.close()
                    process.terminate()
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
                    log.close()
                    shutil.rmtree(folder, ignore_errors=True)
        finally:
            browser.close()
            shutil.rmtree(logs, ignore_errors=True)
    section.add(
        "first_answer_s",
        "Page's first answer after `streamlit run`",
        "s",
        first_answers,
        note="fresh data folder copy each start; browser already running",
    )
    section.add("healthy_s", "  of which until the server is up", "s", healthy)
    section.add("answer_s", "Page answer, later questions (typed to shown)", "s", answer_times)
    if memory:
        section.add(
            "peak_rss_mb",
            f"App server peak RSS after {questions} questions",
            "MB",
            [memory["VmHWM"]],
            note="VmHWM of the streamlit process",
        )
    section.details.update(
        {
            "starts": starts,
            "questions": questions,
            "rss_after_mb": round(memory.get("VmRSS", 0.0), 1),
            "browser": CHROMIUM,
        }
    )
    return section
