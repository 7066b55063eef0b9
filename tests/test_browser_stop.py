"""Stopping an answer in a real browser, against an LLM server that would never finish.

The app runs with ``COACH_ENGINE=llm`` against the test server on 127.0.0.1, which
streams the coaching slowly and then keeps going forever. A person clicks Stop: the
text shown so far stays, marked as a stopped partial answer, the server sees the
connection close, and the input works again at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.coach_env import seed_models
from tests.openai_server import DEFAULT_REPLY, OpenAIServer, forever, reply
from tests.test_browser import ROOT, WAIT_MS, free_port, wait_healthy, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

SITUATION = (
    "Our releases keep slipping because nobody knows who owns which task, "
    "and two of my leads argue about priorities in every planning meeting."
)
SECOND = "Two teams keep building the same feature because nobody assigns the work."
OPENING = DEFAULT_REPLY.rsplit("\n---\n", 1)[0] + "\n"  # header and coaching, no trailer
STOPPED = "Stopped — partial answer"

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


@pytest.fixture(scope="module")
def llm_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer(model_name="test-model")
    server.default_behaviour = forever(OPENING, filler="and more ", interval=0.2)
    with server:
        yield server


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, llm_server: OpenAIServer) -> Iterator[str]:
    if not os.access(CHROMIUM, os.X_OK):
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "Debian's chromium is not installed (make chromium)"
        )
    data = tmp_path_factory.mktemp("browser-stop-data")
    seed_models(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COACH_", "OPENAI_"))}
    env.update(
        COACH_DATA_DIR=str(data),
        COACH_ENGINE="llm",
        COACH_LLM_BASE_URL=llm_server.base_url,
        COACH_LLM_MODEL="test-model",
        PYTHONUNBUFFERED="1",
    )
    built = subprocess.run(
        [sys.executable, "-m", "app.cli", "index"],
        cwd=ROOT,
        env=env,
        timeout=600,
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        pytest.fail(f"coach index failed:\n{built.stdout}\n{built.stderr}")
    port = free_port()
    log = data / "streamlit.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "streamlit_app.py",
                "--server.address=127.0.0.1",
                f"--server.port={port}",
                "--server.headless=true",
                "--server.fileWatcherType=none",
                "--browser.gatherUsageStats=false",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_stop_keeps_the_partial_answer_and_frees_the_input(app_url, llm_server) -> None:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = chromium.new_page(viewport={"width": 1280, "height": 1000})
        try:
            page.goto(app_url)
            main = page.get_by_test_id("stMainBlockContainer")
            box = page.get_by_test_id("stChatInputTextArea")
            box.fill(SITUATION)
            box.press("Enter")

            # The coaching streams, and keeps streaming: the Stop button is there meanwhile.
            stop = main.get_by_role("button", name="Stop")
            expect(stop).to_be_visible(timeout=WAIT_MS)
            expect(main.get_by_text("This is mostly").first).to_be_visible(timeout=WAIT_MS)
            expect(main.get_by_text("and more and more").first).to_be_visible(timeout=WAIT_MS)
            expect(box).to_be_disabled()  # the input waits while the coach writes
            stop.click()

            # The partial answer stays, marked as stopped; the input is free again.
            expect(main.get_by_text(STOPPED).first).to_be_visible(timeout=WAIT_MS)
            wait_idle(page)
            expect(main.get_by_role("button", name="Stop")).to_have_count(0)
            answer = main.get_by_test_id("stChatMessage").filter(has_text=STOPPED)
            expect(answer.get_by_text("This is mostly").first).to_be_visible()
            expect(box).to_be_enabled()
            deadline = time.monotonic() + 30
            while llm_server.client_gone < 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert llm_server.client_gone == 1, "the LLM server was never told to stop"

            # The input works at once: the next message gets a whole answer.
            llm_server.default_behaviour = reply()
            box.fill(SECOND)
            box.press("Enter")
            expect(main.get_by_text("Management · 82%")).to_have_count(1, timeout=WAIT_MS)
            wait_idle(page)

            # The stopped answer was stored: it is still there after a reload.
            page.reload()
            expect(main.get_by_text(STOPPED).first).to_be_visible(timeout=WAIT_MS)
            expect(main.get_by_text("Management · 82%")).to_have_count(1, timeout=WAIT_MS)
        except Exception:
            artifacts = ROOT / "tests" / "artifacts"
            artifacts.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(artifacts / "browser-stop.png"), full_page=True)
            raise
        finally:
            chromium.close()
