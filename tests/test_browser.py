"""The demo page and batch.js in real headless Chromium against gunicorn.

Why a real browser: the JS client's promises, `Response` objects, cookies and CSRF only mean
something where a browser enforces them. Chromium comes from Debian (`chromium`), driven by
Playwright's Python package; a missing browser fails the test, because CI installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.live import ROOT, LiveSite, serve

pytestmark = pytest.mark.server

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOT = ROOT / "docs" / "demo.png"
BATCH_PATH = "/api/v1/batch/"
# Without the background-networking flags Chromium dials out at start, which the closed
# network refuses; a fresh profile keeps runs independent.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    with serve("gunicorn", tmp_path_factory.mktemp("browser")) as live:
        yield live


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium "
                    "chromium-driver (or set CHROMIUM_PATH)", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser test needs Playwright's Python package: pip install "
                    "playwright (never `playwright install`: Chromium comes from Debian)",
                    pytrace=False)
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1000})
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def page(browser: Any, site: LiveSite) -> Any:
    """The demo page, logged in as demo through the admin login form."""
    page = browser.new_page()
    page.goto(f"{site.url}/")
    page.click("#login-link")
    page.fill("#id_username", "demo")
    page.fill("#id_password", "demo")
    page.click("input[type=submit]")
    page.wait_for_url(f"{site.url}/")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector("body[data-ran='1']")  # the page runs both modes once on load
    assert page.text_content("#username") == "demo"
    return page


def _run(page: Any, mode: str) -> list[str]:
    """Click one mode's Run button; return the paths of the HTTP requests it made."""
    paths: list[str] = []

    def record(request: Any) -> None:
        paths.append(urlsplit(request.url).path + (f"?{urlsplit(request.url).query}"
                                                    if urlsplit(request.url).query else ""))

    page.on("request", record)
    try:
        page.click(f"#mode-{mode} button.run")
        page.wait_for_selector(f"#mode-{mode}[data-state='done']")
    finally:
        page.remove_listener("request", record)
    return paths


def _get(page: Any, path: str) -> Any:
    """GET ``path`` directly (not batched), with the browser's cookies (the demo session)."""
    parts = urlsplit(page.url)
    return page.context.request.get(f"{parts.scheme}://{parts.netloc}{path}")


def _shown(value: Any) -> str:
    """What JavaScript's String(value) shows for a JSON value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _pick(data: Any, field: str) -> Any:
    for key in field.split("."):
        data = len(data) if key == "length" else data[key]
    return data


def test_batched_mode_makes_one_request_where_direct_makes_30(page: Any) -> None:
    widget_urls = page.eval_on_selector_all("#mode-direct .widget",
                                            "els => els.map(e => e.dataset.url)")
    assert len(widget_urls) == 30

    direct = _run(page, "direct")
    assert sorted(p for p in direct if p in widget_urls) == sorted(widget_urls)
    assert len(direct) == 30 and BATCH_PATH not in direct

    batched = _run(page, "batched")
    assert batched == [BATCH_PATH]

    assert page.text_content("#mode-direct .requests") == "30"
    assert page.text_content("#mode-batched .requests") == "1"
    assert page.text_content("#mode-batched .done") == "30/30"
    # The timeline shows the batch request plus one bar per sub-request (Server-Timing).
    assert page.locator("#mode-batched .tl-bar.sub").count() == 30
    assert page.locator("#mode-direct .tl-bar").count() == 30


def test_every_widget_shows_the_logged_in_users_data(page: Any) -> None:
    widgets = page.eval_on_selector_all(
        ".widget", "els => els.map(e => ({mode: e.closest('.mode').dataset.mode, "
        "url: e.dataset.url, field: e.dataset.field, cls: e.className, "
        "value: e.querySelector('.value').textContent}))")
    assert len(widgets) == 60
    expected: dict[str, str] = {}
    for widget in widgets:
        if widget["url"] not in expected:  # the same call made directly, with the session
            answer = _get(page, widget["url"])
            assert answer.status == 200, (widget["url"], answer.text())
            expected[widget["url"]] = _shown(_pick(answer.json(), widget["field"]))
        assert widget["cls"] == "widget ok", widget
        assert widget["value"] == expected[widget["url"]], widget
    by_url = {w["url"]: w["value"] for w in widgets if w["mode"] == "batched"}
    assert by_url["/api/me/"] == by_url["/views/whoami/"] == "demo"
    assert by_url["/views/login-required/"] == "demo"
    assert by_url["/views/articles/?author=demo"] == "2"


def test_csrf_protected_posts_through_the_batcher(page: Any) -> None:
    paths: list[str] = []

    def record(request: Any) -> None:
        paths.append(urlsplit(request.url).path)

    page.on("request", record)
    try:
        page.click("#write")
        page.wait_for_selector("#write-results li:nth-child(2)")
    finally:
        page.remove_listener("request", record)
    statuses = page.eval_on_selector_all(
        "#write-results li", "els => els.map(e => [e.dataset.url, e.dataset.status])")
    assert statuses == [["/views/csrf-protected/", "200"], ["/api/articles/", "201"]], \
        page.text_content("#write-results")
    assert paths == [BATCH_PATH]
    created = _get(page, "/api/articles/?search=Written+through").json()
    assert [a["author"] for a in created] == ["demo"]


def test_batcher_api_in_the_page(page: Any) -> None:
    """Per-item refusals (a bad method, a failed CSRF check), whole-batch refusals, base64
    bodies and splitting by maxBatchSize."""
    result = page.evaluate("""async () => {
      const {createBatcher, BatchError, BatchItemError} =
        await import("/static/batch_requests/batch.js");
      let sent = 0;
      const counting = (url, init) => { sent += 1; return fetch(url, init); };
      const b = createBatcher({maxBatchSize: 3, fetch: counting});
      const many = await Promise.all(Array.from({length: 7}, () => b("/api/ping/")));
      const splits = sent;
      const [binary, bad, good] = await Promise.allSettled([
        b("/views/binary/"), b("/views/whoami/", {method: "FETCH"}), b("/views/whoami/?x=1")]);
      const bytes = new Uint8Array(await binary.value.arrayBuffer());
      // A wrong CSRF token fails the writing item alone, as it would directly.
      const wrongToken = createBatcher({csrfToken: "wrong"});
      const csrfItem = await wrongToken("/views/csrf-protected/", {method: "POST", body: "{}"});
      // A batch refused as a whole (here a bad top-level "timeout") rejects every caller.
      const spoiled = (url, init) => fetch(url, {
        ...init, body: init.body.replace('{"batch"', '{"timeout": "soon", "batch"')});
      const refused = createBatcher({fetch: spoiled});
      const whole = await Promise.allSettled([refused("/api/ping/"), refused("/api/me/")]);
      return {
        splits, statuses: many.map((r) => r.status),
        binaryLength: bytes.length, binaryLast: bytes[255],
        binaryType: binary.value.headers.get("content-type"),
        badIsItemError: bad.reason instanceof BatchItemError,
        badField: bad.reason.errors[0].field,
        goodUser: (await good.value.json()).user,
        csrfItemStatus: csrfItem.status,
        whole: whole.map((w) => [w.status, w.reason instanceof BatchError, w.reason?.status,
                                 w.reason?.errors?.length > 0]),
      };
    }""")
    assert result["splits"] == 3  # 7 calls, 3 per batch
    assert result["statuses"] == [200] * 7
    assert (result["binaryLength"], result["binaryLast"]) == (256, 255)
    assert result["binaryType"] == "application/octet-stream"
    assert result["badIsItemError"] and result["badField"] == "method"
    assert result["goodUser"] == "demo"
    assert result["csrfItemStatus"] == 403
    assert result["whole"] == [["rejected", True, 400, True]] * 2


def test_screenshot(page: Any) -> None:
    """Save the page for the README: always in the temp folder, in docs/ on request."""
    page.click("#run-both")
    page.wait_for_selector("body[data-ran='2']")
    png = page.screenshot(full_page=True)
    assert len(png) > 10_000
    if os.environ.get("UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists():
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(png)
