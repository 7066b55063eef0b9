"""The app in a real browser: Debian's Chromium, driven by Playwright, against ``streamlit run``."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.coach_env import seed_models

# Setup builds the index and trains the classifier (about a minute), hence the longer timeout.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
SITUATION = (
    "Our releases keep slipping because nobody knows who owns which task, "
    "and two of my leads argue about priorities in every planning meeting."
)
UPLOADED = (
    "Since the merger, people on my team stopped sharing problems with me. "
    "They say decisions are made behind closed doors and they no longer trust what they hear."
)
BADGE = re.compile(r"(Management|Leadership|Both) · \d+%|Needs more detail")
WAIT_MS = 90_000  # the first answer waits for the coach to load

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, deadline_s: float = 60) -> None:
    """Poll Streamlit's health endpoint until the server answers (or fails to start)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    pytest.fail(f"streamlit did not start within {deadline_s:.0f} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory) -> Iterator[str]:
    if not os.access(CHROMIUM, os.X_OK):
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "Debian's chromium is not installed (make chromium)"
        )
    data = tmp_path_factory.mktemp("browser-data")
    seed_models(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COACH_", "OPENAI_"))}
    env.update(COACH_DATA_DIR=str(data), COACH_ENGINE="offline", PYTHONUNBUFFERED="1")
    # Build the index and train the classifier first, as `make run` does.
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
    url = f"http://127.0.0.1:{port}"
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
        wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser(app_url) -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def wait_idle(page) -> None:
    """Wait until the script run is over, so no element is about to be redrawn."""
    expect(page.get_by_test_id("stApp")).to_have_attribute(
        "data-test-script-state", "notRunning", timeout=WAIT_MS
    )


def article_text() -> str:
    return " ".join((ROOT / "knowledge" / "management-vs-leadership.md").read_text().split())


def test_chat_upload_and_reload_in_a_real_browser(app_url, browser, tmp_path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(app_url)
    main = page.get_by_test_id("stMainBlockContainer")
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("Offline mode")).to_be_visible(timeout=WAIT_MS)

    # Type a situation: the answer arrives with its verdict badge and quoted sources.
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(SITUATION)
    box.press("Enter")
    expect(main.get_by_text(BADGE)).to_have_count(1, timeout=WAIT_MS)
    wait_idle(page)
    # The person's message first; the answer quotes it again as the evidence for its verdict.
    expect(main.get_by_test_id("stChatMessage").filter(has_text=SITUATION).first).to_be_visible()
    evidence = main.get_by_test_id("stExpander").filter(has_text="Why this verdict: your words")
    expect(evidence).to_have_count(1)
    evidence.get_by_text("Why this verdict: your words").click()
    expect(
        evidence.get_by_text(re.compile(r"What I read as (management|leadership)")).first
    ).to_be_visible()
    sources = main.get_by_test_id("stExpander").filter(has_text=re.compile(r"Sources \(\d\)"))
    expect(sources).to_have_count(1)
    sources.get_by_text(re.compile(r"Sources \(\d\)")).click()
    quotes = sources.locator("blockquote")
    expect(quotes.first).to_be_visible()
    expect(sources.get_by_text("Siddhraj Thaker").first).to_be_visible()
    article = article_text()
    for quote in quotes.all_inner_texts():
        assert " ".join(quote.split()) in article  # quoted exactly from the article

    # Upload a .txt situation: previewed with its length, then coached.
    upload_file = tmp_path / "situation.txt"
    upload_file.write_text(UPLOADED, encoding="utf-8")
    main.get_by_text("Upload a situation").click()
    expect(main.get_by_text("up to 5 MB")).to_be_visible()
    main.locator("input[type=file]").set_input_files(str(upload_file))
    wait_idle(page)
    expect(main.get_by_text(f"{len(UPLOADED)} characters")).to_be_visible()
    expect(main.get_by_label("Preview of the extracted text")).to_have_value(UPLOADED)
    main.get_by_role("button", name="Coach this situation").click()
    expect(main.get_by_text(BADGE)).to_have_count(2, timeout=WAIT_MS)
    expect(main.get_by_text("From situation.txt")).to_be_visible()
    wait_idle(page)

    # The Markdown download holds both turns, with verdicts and sources.
    with page.expect_download() as download:
        sidebar.get_by_role("button", name="Download as Markdown").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert f"> {SITUATION}" in exported and f"> {UPLOADED}" in exported
    assert exported.count("Verdict: ") == 2 and "Sources:" in exported

    # Reload: the conversation is still there, in the sidebar and on the page.
    page.reload()
    expect(
        sidebar.get_by_role("button", name=re.compile("Our releases keep slipping"))
    ).to_be_visible(timeout=WAIT_MS)
    expect(main.get_by_text(BADGE)).to_have_count(2, timeout=WAIT_MS)
    expect(main.get_by_test_id("stChatMessage").filter(has_text=SITUATION).first).to_be_visible()

    # A fresh tab starts empty but lists the stored conversation.
    fresh = browser.new_page(viewport={"width": 1280, "height": 1000})
    fresh.goto(app_url)
    expect(
        fresh.get_by_test_id("stSidebar").get_by_role(
            "button", name=re.compile("Our releases keep slipping")
        )
    ).to_be_visible(timeout=WAIT_MS)
    expect(fresh.get_by_test_id("stMainBlockContainer").get_by_text(BADGE)).to_have_count(0)
    fresh.close()

    # Screenshots: a test artifact, and the one in the README.
    main.get_by_test_id("stChatMessage").first.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "chat.png"
    page.screenshot(path=str(shot))
    if os.environ.get("COACH_UPDATE_SCREENSHOT"):  # refresh the README's picture on demand
        docs = ROOT / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copyfile(shot, docs / "screenshot.png")
    page.close()


FOLLOW_SITUATION = (
    "I coordinate volunteers at a food bank, about thirty people across three weekday "
    "shifts. The Tuesday crew packs boxes their own way and ignores the checklist the other "
    "shifts use, so families get boxes with missing items. I've already reminded them about "
    "the checklist twice in our group chat. How do I get the Tuesday crew on board?"
)


def test_follow_ups_in_a_real_browser(app_url, browser) -> None:
    """A typed follow-up is answered as one, and a suggested question is sent as theirs."""
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(app_url)
    main = page.get_by_test_id("stMainBlockContainer")
    box = page.get_by_test_id("stChatInputTextArea")
    expect(box).to_be_editable(timeout=WAIT_MS)
    box.fill(FOLLOW_SITUATION)
    box.press("Enter")
    expect(main.get_by_text(BADGE)).to_have_count(1, timeout=WAIT_MS)
    wait_idle(page)
    expect(main.get_by_text("How do I get the Tuesday crew on board?").first).to_be_visible()

    # A follow-up question, typed: the answer is about it, without the verdict's reasons again.
    follow = "What do I say to the Tuesday shift lead first?"
    box.fill(follow)
    box.press("Enter")
    expect(main.get_by_text(BADGE)).to_have_count(2, timeout=WAIT_MS)
    wait_idle(page)
    answers = main.get_by_test_id("stChatMessage").filter(has=page.get_by_text(BADGE))
    expect(answers.nth(1).get_by_text(f'You asked: "{follow}"')).to_be_visible()

    # A suggested question: clicking it sends it as the person's next message.
    suggested = answers.nth(1).get_by_role("button").filter(has_text=re.compile(r"\?$"))
    label = suggested.last.inner_text().strip().splitlines()[-1]  # after the icon's name
    suggested.last.click()
    expect(main.get_by_text(BADGE)).to_have_count(3, timeout=WAIT_MS)
    wait_idle(page)
    users = main.get_by_test_id("stChatMessage").filter(has_not=page.get_by_text(BADGE))
    expect(users.filter(has_text=label).first).to_be_visible()
    page.close()
