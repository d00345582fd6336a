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
from urllib.parse import quote, urlsplit

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


@pytest.fixture
def anonymous_page(browser: Any, site: LiveSite) -> Iterator[Any]:
    """A new page of the demo without the session (the context's cookies are put back after)."""
    saved = browser.cookies()
    browser.clear_cookies()
    page = browser.new_page()
    try:
        page.goto(f"{site.url}/")
        page.wait_for_selector("body[data-ran='1']")
        yield page
    finally:
        page.close()
        browser.clear_cookies()
        if saved:
            browser.add_cookies(saved)


def test_login_required_widget_follows_the_redirect_like_the_direct_call(
        anonymous_page: Any, site: LiveSite) -> None:
    """Logged out, @login_required answers 302 to the login page: the batcher follows it as
    fetch does (final status, `redirected`, `url`), the follow-up riding in a second batch."""
    found = anonymous_page.eval_on_selector_all(
        ".widget[data-url='/views/login-required/']",
        "els => els.map(e => [e.closest('.mode').dataset.mode, e.dataset.status, "
        "e.dataset.redirected, e.dataset.finalUrl, e.className])")
    login = f"{site.url}/admin/login/?next=/views/login-required/"
    assert found == [["direct", "200", "true", login, "widget ok"],
                     ["batched", "200", "true", login, "widget ok"]]
    assert anonymous_page.get_attribute("#mode-batched", "data-requests") == "2"
    assert anonymous_page.text_content(
        "#mode-batched .widget[data-url='/views/login-required/'] .value") == "→ /admin/login/"


# Run in the page: the calls through a fresh batcher, then the same calls through fetch, each
# answer reduced to what a caller can see; a rejection becomes {rejected: the error's name}.
COMPARE_JS = """async (calls) => {
  const {createBatcher} = await import("/static/batch_requests/batch.js");
  let sent = 0;  // the HTTP requests the batcher made (batches, and plain fetches)
  const b = createBatcher({fetch: (url, init) => { sent += 1; return fetch(url, init); }});
  const seen = async (promise) => {
    try {
      const r = await promise;
      const text = await r.text();
      let json = null;
      try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
      return {status: r.status, ok: r.ok, type: r.type, url: r.url, redirected: r.redirected,
              headers: [...r.headers.keys()].length, text: json ? null : text,
              method: json?.method ?? null, body: json?.body ?? null,
              contentType: json?.content_type ?? null};
    } catch (error) {
      return {rejected: error.name};
    }
  };
  const batched = await Promise.all(calls.map(([url, init]) => seen(b(url, init))));
  const direct = await Promise.all(calls.map(([url, init]) => seen(fetch(url, init))));
  return {batched, direct, sent};
}"""

REDIRECT = "/test-pages/redirect/"


def _compare(page: Any, calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Run COMPARE_JS; each batched answer must be the direct one, but for the response type
    ("default" for a Response built by the batcher, "basic" from fetch) and the header count
    (the server adds Date, Server...), except where fetch's answer is an opaque redirect."""
    result = page.evaluate(COMPARE_JS, calls)
    for batched, direct, call in zip(result["batched"], result["direct"], calls, strict=True):
        if direct.get("type") != "opaqueredirect":
            for answer in (batched, direct):
                answer.pop("type", None)
                answer.pop("headers", None)
        assert batched == direct, call
    return result


def test_redirect_method_rules_follow_fetch(page: Any, site: LiveSite) -> None:
    """303 (and 301/302 for a POST) turn into a GET without body; 307/308 keep both. The
    follow-ups of one batch ride together in the next batch."""
    echo = f"{site.url}/views/echo/"
    body = {"body": "a=1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}
    calls = [
        (f"{REDIRECT}?status=303", {"method": "POST", **body}),
        (f"{REDIRECT}?status=302", {"method": "POST", **body}),
        (f"{REDIRECT}?status=301", {"method": "POST", **body}),
        (f"{REDIRECT}?status=303", {"method": "PUT", **body}),
        (f"{REDIRECT}?status=302", {"method": "PUT", **body}),
        (f"{REDIRECT}?status=307", {"method": "POST", **body}),
        (f"{REDIRECT}?status=308", {"method": "PATCH", **body}),
        (f"{REDIRECT}?status=303", {}),
    ]
    result = _compare(page, calls)
    seen = [(r["status"], r["method"], r["body"], r["contentType"], r["redirected"], r["url"])
            for r in result["batched"]]
    form = "application/x-www-form-urlencoded"
    assert seen == [
        (200, "GET", "", "", True, echo),
        (200, "GET", "", "", True, echo),
        (200, "GET", "", "", True, echo),
        (200, "GET", "", "", True, echo),
        (200, "PUT", "a=1", form, True, echo),
        (200, "POST", "a=1", form, True, echo),
        (200, "PATCH", "a=1", form, True, echo),
        (200, "GET", "", "", True, echo),
    ]
    assert result["sent"] == 2  # one batch for the calls, one for all their follow-ups


def test_redirect_manual_and_error_modes(page: Any) -> None:
    """`redirect: "manual"` answers fetch's opaque-redirect response (type "opaqueredirect",
    status 0, no headers, no body, the request's URL); `redirect: "error"` rejects with a
    TypeError."""
    result = _compare(page, [
        (f"{REDIRECT}?status=302", {"redirect": "manual"}),
        (f"{REDIRECT}?status=303", {"method": "POST", "body": "x", "redirect": "manual"}),
        (f"{REDIRECT}?status=302", {"redirect": "error"}),
        (f"{REDIRECT}?status=307", {"method": "POST", "body": "x", "redirect": "error"}),
    ])
    manual, manual_post, error, error_post = result["batched"]
    assert manual["type"] == "opaqueredirect"
    assert (manual["status"], manual["ok"], manual["headers"], manual["text"]) == (0, False, 0, "")
    assert manual["url"].endswith(f"{REDIRECT}?status=302") and not manual["redirected"]
    assert manual_post["type"] == "opaqueredirect"
    assert error == error_post == {"rejected": "TypeError"}
    assert result["sent"] == 1  # nothing followed


def test_redirect_limit_and_other_origin(page: Any, site: LiveSite) -> None:
    """20 redirects are followed, the 21st is a TypeError, as with fetch; a Location on
    another origin is handed to plain fetch (the page may read it: CORS allows it)."""
    other = site.url.replace("127.0.0.1", "localhost") + f"{REDIRECT}?hops=0"
    requests: list[str] = []

    def record(request: Any) -> None:
        requests.append(request.url)

    result = _compare(page, [(f"{REDIRECT}?hops=20", {}), (f"{REDIRECT}?hops=21", {})])
    page.on("request", record)
    try:
        cross = _compare(page, [(f"{REDIRECT}?to={quote(other, safe='')}", {})])
    finally:
        page.remove_listener("request", record)
    twenty, twenty_one = result["batched"]
    assert (twenty["status"], twenty["method"], twenty["redirected"]) == (200, "GET", True)
    assert twenty_one == {"rejected": "TypeError"}
    # Side by side: the two first requests, then 20 follow-ups each (the 21st is refused).
    assert result["sent"] == 21
    [answer] = cross["batched"]
    assert (answer["status"], answer["url"], answer["redirected"]) == (200, other, True)
    assert cross["sent"] == 2  # the batch, then plain fetch for the other origin
    assert requests.count(other) == 2  # once handed over by the batcher, once by fetch


def test_simulated_latency_is_paid_once_per_http_request(page: Any) -> None:
    """The latency knob costs each HTTP request its delay, on the server: 30 direct
    requests pay it 30 times, the batch request once, and no sub-request pays it."""
    page.select_option("#latency", "30")
    try:
        for mode, expected in (("direct", "30"), ("batched", "1")):
            _run(page, mode)
            section = f"#mode-{mode}"
            assert page.get_attribute(section, "data-latency") == "30"
            assert page.get_attribute(section, "data-requests") == expected
            assert page.get_attribute(section, "data-delays") == expected
        items = page.evaluate("""async () => {
          const {createBatcher} = await import("/static/batch_requests/batch.js");
          let paid = null;
          const b = createBatcher({headers: {"X-Demo-Latency": "30"},
                                   onBatch: ({response}) => {
                                     paid = response.headers.get("X-Demo-Latency"); }});
          const answers = await Promise.all([b("/api/ping/"), b("/views/whoami/")]);
          return {paid, items: answers.map((r) => r.headers.get("X-Demo-Latency"))};
        }""")
        assert items == {"paid": "30", "items": [None, None]}
    finally:
        page.select_option("#latency", "0")


def test_script_tag_reports_unserved_static_files(browser: Any, site: LiveSite) -> None:
    """{% batch_requests_script %} where batch.js answers 404 (static files not served): a
    console error names the URL and the fix, and `batch-requests:error` is dispatched."""
    script_url = f"{site.url}/static/batch_requests/batch.js"
    test_page = browser.new_page()
    errors: list[str] = []
    test_page.on("console", lambda message: message.type == "error" and errors.append(
        message.text))
    try:
        # Served: the ready event, and a later module sees window.batchFetch.
        test_page.goto(f"{site.url}/test-pages/batch-script/")
        test_page.wait_for_selector("body[data-ready='function'][data-later]", state="attached")
        assert test_page.get_attribute("body", "data-later") == "function"
        assert errors == []
        # Not served (as under gunicorn without WhiteNoise): batch.js answers 404.
        test_page.route(script_url, lambda route: route.fulfill(status=404, body="Not Found"))
        test_page.goto(f"{site.url}/test-pages/batch-script/?missing=1")
        test_page.wait_for_selector("body[data-error][data-later]", state="attached")
        assert test_page.get_attribute("body", "data-error") == script_url
        assert test_page.get_attribute("body", "data-later") == "undefined"
        assert test_page.get_attribute("body", "data-ready") is None
        ours = [e for e in errors if e.startswith("django-batch-requests:")]
        assert len(ours) == 1, errors
        assert f"could not load {script_url}, so window.batchFetch is not set" in ours[0]
        for fix in ("static files", "collectstatic", "WhiteNoise", "web server"):
            assert fix in ours[0], ours[0]
    finally:
        test_page.close()


def test_screenshot(page: Any) -> None:
    """Save the page for the README: always in the temp folder, in docs/ on request."""
    page.click("#run-both")
    page.wait_for_selector("body[data-ran='2']")
    png = page.screenshot(full_page=True)
    assert len(png) > 10_000
    if os.environ.get("UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists():
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(png)
