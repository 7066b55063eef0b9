"""In a real browser, nothing the page draws reaches out: no request leaves the machine, no
dialog opens, however hostile the typed or uploaded situation is (issue 9)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.test_browser import (  # noqa: F401 (app_url and browser are fixtures)
    ARTIFACTS,
    BADGE,
    WAIT_MS,
    app_url,
    browser,
    sync_api,
    wait_idle,
)
from tests.test_safe_text import rendered_problems

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

expect = sync_api.expect
# 198.51.100.0/24 is TEST-NET-2: documentation only, never routed. Nothing may even try it.
BEACON_HOST = "198.51.100.7"
HOSTILE = (
    f"![x](http://{BEACON_HOST}/beacon.png) "
    f"<img src=http://{BEACON_HOST}/a.png onerror=alert(1)> "
    "[click](javascript:alert(1))"
)
# The offline coach quotes these words back, so its answer carries the payload too.
SITUATION = (
    f"Our releases keep slipping because nobody knows who owns which task {HOSTILE} "
    "and two of my leads argue about priorities in every planning meeting."
)
# The first answer waits for the coach to load in the background, slow on a busy machine.
FIRST_ANSWER_MS = 4 * WAIT_MS
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
IN_PAGE_SCHEMES = {"data", "blob", "about"}  # drawn from the page itself; nothing is fetched


def stays_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in IN_PAGE_SCHEMES or parts.hostname in LOCAL_HOSTS


def test_hostile_situations_typed_and_uploaded_reach_nothing_outside(
    app_url,  # noqa: F811 (the fixture imported above)
    browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    outside: list[str] = []  # every request that would have left the machine (aborted)
    seen: list[str] = []  # every request and WebSocket the page opened
    dialogs: list[str] = []

    def only_local(route) -> None:
        if stays_local(route.request.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)  # so nothing leaves even if the test fails
    context.on("request", lambda request: seen.append(request.url))
    page = context.new_page()
    page.on("websocket", lambda ws: seen.append(ws.url))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("popup", lambda popup: outside.append(f"popup {popup.url}"))

    try:
        page.goto(app_url)
        main = page.get_by_test_id("stMainBlockContainer")
        expect(page.get_by_test_id("stSidebar").get_by_text("Offline mode")).to_be_visible(
            timeout=WAIT_MS
        )

        # Typed: the situation is shown exactly as written, and answered.
        box = page.get_by_test_id("stChatInputTextArea")
        box.fill(SITUATION)
        box.press("Enter")
        expect(main.get_by_text(BADGE)).to_have_count(1, timeout=FIRST_ANSWER_MS)
        wait_idle(page)
        messages = main.get_by_test_id("stChatMessage")
        expect(messages.filter(has_text=HOSTILE).first).to_be_visible()  # the user's, as written
        expect(messages.filter(has_text="[image: x]").first).to_be_visible()  # the coach's quote

        # Uploaded: the same text in a .txt file, previewed, then coached.
        upload_file = tmp_path / "notes.txt"
        upload_file.write_text(SITUATION, encoding="utf-8")
        main.get_by_text("Upload a situation").click()
        main.locator("input[type=file]").set_input_files(str(upload_file))
        wait_idle(page)
        expect(main.get_by_label("Preview of the extracted text")).to_have_value(SITUATION)
        main.get_by_role("button", name="Coach this situation").click()
        expect(main.get_by_text(BADGE)).to_have_count(2, timeout=WAIT_MS)
        expect(main.get_by_text("From notes.txt")).to_be_visible()
        wait_idle(page)

        # The Markdown download holds the text, inert.
        sidebar = page.get_by_test_id("stSidebar")
        with page.expect_download() as download:
            sidebar.get_by_role("button", name="Download as Markdown").click()
        exported = Path(download.value.path()).read_text(encoding="utf-8")
        assert exported.count(BEACON_HOST) >= 2
        assert rendered_problems(exported) == []

        page.wait_for_timeout(1_000)  # time for anything lazy (an image, a font) to be requested
        assert page.locator(f"img[src*='{BEACON_HOST}']").count() == 0
        assert page.locator("a[href^='javascript:' i], a[href^='data:' i]").count() == 0
        icons = page.locator("link[rel~='icon']")
        assert icons.count() >= 1
        assert all(stays_local(icon.evaluate("(link) => link.href")) for icon in icons.all())
        assert outside == [] and [u for u in seen if not stays_local(u)] == []
        assert dialogs == []
        assert any(urlsplit(u).hostname in LOCAL_HOSTS for u in seen)  # the recorder did record
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser-safety.png"), full_page=True)
        raise
    finally:
        context.close()
