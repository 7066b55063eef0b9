"""Sign-in in a real browser against a real OpenID Connect provider, both on this machine.

The provider is oauth2-mock-server (tests/oidc, installed by `make test` with `npm ci`) with a
login page in front, run by Node; the app is `streamlit run` with a temporary secrets file
whose [auth] section points at it; Debian's Chromium signs two people in, each in their own
browser context (own cookies), as two people on two computers would.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from app.settings import Settings
from app.store import open_store
from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.coach_env import seed_models

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

from tests.test_browser import BADGE, WAIT_MS, free_port, wait_healthy, wait_idle  # noqa: E402

# The first answer also waits for the coach to load, on a machine other test runs share.
FIRST_ANSWER_MS = 4 * WAIT_MS

ROOT = Path(__file__).resolve().parent.parent
OIDC = ROOT / "tests" / "oidc"
ALICE_SITUATION = (
    "Since the merger two of my senior engineers stopped talking to each other, and they both "
    "come to me separately to complain about the other one's code reviews."
)
BOB_SITUATION = (
    "Our quarterly planning always overruns: nobody owns the backlog, estimates are guesses, "
    "and the same three tasks have slipped for two sprints in a row."
)
ALICE_TITLE = re.compile("Since the merger two of my senior")
BOB_TITLE = re.compile("Our quarterly planning always")
OPEN_WARNING = "can be reached from other machines and has no sign-in"


def missing(reason: str) -> None:
    """Fail in CI, where `make test` installs everything; skip on a partial setup."""
    (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)


def child_env(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COACH_", "OPENAI_"))}
    env.update(COACH_DATA_DIR=str(data), COACH_ENGINE="offline", PYTHONUNBUFFERED="1", **extra)
    return env


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A data folder with the index built and the classifier trained, as `make run` does."""
    if not os.access(CHROMIUM, os.X_OK):
        missing("Debian's chromium is not installed (make chromium)")
    data = tmp_path_factory.mktemp("auth-data")
    seed_models(data)
    built = subprocess.run(
        [sys.executable, "-m", "app.cli", "index"],
        cwd=ROOT,
        env=child_env(data),
        timeout=600,
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        pytest.fail(f"coach index failed:\n{built.stdout}\n{built.stderr}")
    return data


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """The OpenID Connect provider on 127.0.0.1 (a free port); yields its issuer URL."""
    node = shutil.which("node")
    if node is None:
        missing("Node is not installed (make test installs it)")
    if not (OIDC / "node_modules" / "oauth2-mock-server").is_dir():
        missing("The test provider is not installed: run `make test` (npm ci in tests/oidc)")
    proc = subprocess.Popen(
        [node, "provider.mjs", "0"],
        cwd=OIDC,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=30)
    try:
        if not first or not first[0].startswith("{"):
            stop(proc)
            pytest.fail(f"the test provider did not start: {''.join(first)}{proc.stdout.read()}")
        yield json.loads(first[0])["issuer"]
    finally:
        stop(proc)


def start_app(
    data: Path, address: str, secrets_file: Path, port: int | None = None, **env: str
) -> tuple[str, subprocess.Popen]:
    """`streamlit run` on ``address`` with ``secrets_file`` as its only secrets; (url, process)."""
    port = port or free_port()
    url = f"http://{address}:{port}"
    log = data / f"streamlit-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "streamlit_app.py",
                f"--server.address={address}",
                f"--server.port={port}",
                "--server.headless=true",
                "--server.fileWatcherType=none",
                "--browser.gatherUsageStats=false",
                f"--secrets.files={secrets_file}",
            ],
            cwd=ROOT,
            env=child_env(data, **env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(url, proc, log)
    except BaseException:
        stop(proc)
        raise
    return url, proc


@pytest.fixture(scope="module")
def app_url(data_dir, provider, tmp_path_factory) -> Iterator[str]:
    """The app with sign-in: [auth] in a temporary secrets file, pointing at the provider."""
    port = free_port()
    folder = tmp_path_factory.mktemp("auth-secrets")
    secrets_file = folder / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        'client_id = "leadership-coach"\n'
        'client_secret = "test-client-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n',
        encoding="utf-8",
    )
    url, proc = start_app(data_dir, "127.0.0.1", secrets_file, port=port)
    try:
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser(data_dir) -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


# ---------------------------------------------------------------- what a person does


def expect_only_sign_in(page) -> None:
    """The sign-in screen and nothing else: no sidebar, no chat input, no conversation."""
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT_MS)
    wait_idle(page)
    expect(page.get_by_test_id("stSidebar")).to_have_count(0)
    expect(page.get_by_test_id("stChatInput")).to_have_count(0)
    expect(page.get_by_test_id("stChatMessage")).to_have_count(0)


def sign_in(page, app_url: str, username: str) -> None:
    """From the app's sign-in screen through the provider's login page and back, signed in."""
    page.goto(app_url)
    expect_only_sign_in(page)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Username").fill(username)  # the provider's own page
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("stSidebar").get_by_text("Signed in as")).to_be_visible(
        timeout=WAIT_MS
    )
    expect(
        page.get_by_test_id("stSidebar").get_by_text(username.title(), exact=True)
    ).to_be_visible()
    wait_idle(page)


def ask(page, situation: str, timeout: int = WAIT_MS) -> str:
    """Send a situation, wait for the answer; the id of the conversation it went into."""
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(situation)
    box.press("Enter")
    main = page.get_by_test_id("stMainBlockContainer")
    expect(main.get_by_text(BADGE)).to_have_count(1, timeout=timeout)
    wait_idle(page)
    return parse_qs(urlparse(page.url).query)["c"][0]


def conversation_button(page, title: re.Pattern):
    return page.get_by_test_id("stSidebar").get_by_role("button", name=title)


def page_text(page) -> str:
    return page.get_by_test_id("stApp").inner_text()


def test_two_people_never_see_each_others_conversations(
    app_url, browser, provider, data_dir
) -> None:
    alice = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    bob = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()

    # Alice signs in with the provider and asks about her situation.
    sign_in(alice, app_url, "alice")
    alice_id = ask(alice, ALICE_SITUATION, timeout=FIRST_ANSWER_MS)
    expect(conversation_button(alice, ALICE_TITLE)).to_be_visible()

    # Bob signs in in his own browser: none of Alice's conversations are listed.
    sign_in(bob, app_url, "bob")
    expect(bob.get_by_test_id("stSidebar").get_by_text("None yet")).to_be_visible()
    expect(conversation_button(bob, ALICE_TITLE)).to_have_count(0)

    # Alice's conversation link opens nothing of hers for Bob.
    bob.goto(f"{app_url}/?c={alice_id}")
    expect(bob.get_by_test_id("stSidebar").get_by_text("Signed in as")).to_be_visible(
        timeout=WAIT_MS
    )
    wait_idle(bob)
    assert "senior engineers" not in page_text(bob)
    assert alice_id not in bob.url

    # Bob's own conversation: listed for him, downloaded with only his words, then deleted.
    bob_id = ask(bob, BOB_SITUATION)
    assert bob_id != alice_id
    expect(conversation_button(bob, BOB_TITLE)).to_be_visible()
    expect(conversation_button(bob, ALICE_TITLE)).to_have_count(0)
    with bob.expect_download() as download:
        bob.get_by_test_id("stSidebar").get_by_role("button", name="Download as Markdown").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert f"> {BOB_SITUATION}" in exported and "senior engineers" not in exported
    sidebar = bob.get_by_test_id("stSidebar")
    sidebar.get_by_role("button", name=re.compile("Delete$")).click()
    bob.get_by_role("button", name="Delete for good").click()
    expect(sidebar.get_by_text("None yet")).to_be_visible(timeout=WAIT_MS)

    # Alice's conversation is untouched, and Bob's never appeared in her list.
    alice.reload()
    expect(conversation_button(alice, ALICE_TITLE)).to_be_visible(timeout=WAIT_MS)
    expect(alice.get_by_test_id("stMainBlockContainer").get_by_text(BADGE)).to_have_count(
        1, timeout=WAIT_MS
    )
    expect(conversation_button(alice, BOB_TITLE)).to_have_count(0)

    # Sign-out returns to the sign-in screen; her link then shows nothing but that screen.
    alice.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
    expect_only_sign_in(alice)
    alice.goto(f"{app_url}/?c={alice_id}")
    expect_only_sign_in(alice)
    assert "senior engineers" not in page_text(alice)

    # Signing in again (the provider asks again: its session ended too) finds her conversation.
    sign_in(alice, app_url, "alice")
    expect(conversation_button(alice, ALICE_TITLE)).to_be_visible(timeout=WAIT_MS)
    alice.context.close()
    bob.context.close()

    # Stored under the provider's issuer and Alice's subject, and under no one else.
    store = open_store(Settings(data_dir=data_dir, database_url=None))
    assert [c.id for c in store.list_conversations(owner=f"{provider} user-alice")] == [alice_id]
    assert store.list_conversations(owner=f"{provider} user-bob") == []
    assert alice_id not in [c.id for c in store.list_conversations(owner="local")]


# ---------------------------------------------------------------- an app others can reach


def non_loopback_address() -> str | None:
    """An address of this machine other than loopback that a server can bind, if any."""
    found: set[str] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, suppress(OSError):
        probe.connect(("192.0.2.1", 9))  # UDP connect sends nothing; it picks a route
        found.add(probe.getsockname()[0])
    with suppress(OSError):
        found |= {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)}
    for address in sorted(found):
        ip = ipaddress.ip_address(address)
        if ip.is_loopback or ip.is_unspecified or ip.version != 4:
            continue
        with socket.socket() as s:
            try:
                s.bind((address, 0))
            except OSError:
                continue
        return address
    return None


def test_an_open_address_without_sign_in_shows_only_the_warning(
    data_dir, browser, tmp_path
) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip(
            "this machine has no non-loopback address to serve on; test_auth.py tests "
            "the decision (reachable_from_network) directly"
        )
    open_store(Settings(data_dir=data_dir, database_url=None)).create_conversation(
        "A private note about my report's health."
    )
    no_secrets = tmp_path / "no-secrets.toml"  # never created: no [auth], whatever ~/.streamlit has
    page = browser.new_page(viewport={"width": 1280, "height": 1000})

    url, proc = start_app(data_dir, address, no_secrets)
    try:
        page.goto(url)
        expect(page.get_by_text(OPEN_WARNING)).to_be_visible(timeout=WAIT_MS)
        wait_idle(page)
        expect(page.get_by_test_id("stSidebar")).to_have_count(0)
        expect(page.get_by_test_id("stChatInput")).to_have_count(0)
        assert "private note" not in page_text(page)
    finally:
        stop(proc)

    # COACH_ALLOW_OPEN=1: the single-user app, which says in the sidebar who can read what.
    url, proc = start_app(data_dir, address, no_secrets, COACH_ALLOW_OPEN="1")
    try:
        page.goto(url)
        sidebar = page.get_by_test_id("stSidebar")
        expect(
            sidebar.get_by_text("Single-user mode: anyone who can open this page")
        ).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_test_id("stChatInput")).to_have_count(1)
        expect(page.get_by_text(OPEN_WARNING)).to_have_count(0)
        expect(sidebar.get_by_role("button", name=re.compile("A private note"))).to_be_visible()
    finally:
        stop(proc)
        page.close()


def test_two_app_servers_share_one_postgres_and_one_chroma_server(
    browser, provider, postgres, chroma_server, tmp_path_factory
) -> None:
    """Two Streamlit servers, each with its own data folder (as on two machines), on one
    PostgreSQL database and one Chroma server: two people, one on each, each see their own
    conversation on both servers, never the other's, and every message is stored."""
    database = postgres.create_database("two_servers")
    shared = {"COACH_DATABASE_URL": database, "COACH_CHROMA_URL": chroma_server.url,
              "COACH_COLLECTION": "two-servers"}  # fmt: skip
    urls, procs = [], []
    cookie = secrets.token_hex(32)  # one secret for every replica, as the README says
    try:
        for name in ("first", "second"):
            data = tmp_path_factory.mktemp(f"replica-{name}")
            seed_models(data)
            built = subprocess.run(
                [sys.executable, "-m", "app.cli", "index"],
                cwd=ROOT,
                env=child_env(data, **shared),
                timeout=600,
                capture_output=True,
                text=True,
            )
            assert built.returncode == 0, built.stderr
            port = free_port()
            secrets_file = data / "secrets.toml"
            secrets_file.write_text(
                "[auth]\n"
                f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
                f'cookie_secret = "{cookie}"\n'
                'client_id = "leadership-coach"\n'
                'client_secret = "test-client-secret"\n'
                f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n',
                encoding="utf-8",
            )
            url, proc = start_app(data, "127.0.0.1", secrets_file, port=port, **shared)
            urls.append(url)
            procs.append(proc)

        alice = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        bob = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        sign_in(alice, urls[0], "alice")
        alice_id = ask(alice, ALICE_SITUATION, timeout=FIRST_ANSWER_MS)
        sign_in(bob, urls[1], "bob")
        bob_id = ask(bob, BOB_SITUATION, timeout=FIRST_ANSWER_MS)
        assert alice_id != bob_id

        # Each person on the other server (a fresh browser, so the provider asks again):
        # their own conversation is there, and not the other's.
        for page in (alice, bob):
            page.context.close()
        alice = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        bob = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        sign_in(alice, urls[1], "alice")
        expect(conversation_button(alice, ALICE_TITLE)).to_be_visible(timeout=WAIT_MS)
        expect(conversation_button(alice, BOB_TITLE)).to_have_count(0)
        sign_in(bob, urls[0], "bob")
        expect(conversation_button(bob, BOB_TITLE)).to_be_visible(timeout=WAIT_MS)
        expect(conversation_button(bob, ALICE_TITLE)).to_have_count(0)
        alice.context.close()
        bob.context.close()

        store = open_store(Settings(database_url=database))
        for owner, conv_id in (
            (f"{provider} user-alice", alice_id),
            (f"{provider} user-bob", bob_id),
        ):
            (conversation,) = store.list_conversations(owner=owner)
            assert conversation.id == conv_id
            roles = [m.role for m in store.messages(conv_id, owner=owner)]
            assert roles == ["user", "assistant"]  # nothing lost, nothing mixed in
    finally:
        for proc in procs:
            stop(proc)
