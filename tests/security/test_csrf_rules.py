"""The CSRF rules of a batch (issue 11, item 8) and the scheme of its items (item 9).

A. A batch without references passes no batch-level gate: each item meets
   ``CsrfViewMiddleware`` and DRF's ``SessionAuthentication`` with the batch request's cookie,
   Origin, Referer and CSRF header, and answers what the same request sent directly answers.
B. A batch that uses references and carries any cookie must pass Django's CSRF check itself
   before anything runs; otherwise one item could read the victim's CSRF token and the next
   could send it (a cross-site page cannot read responses, but a reference can).
C. An item's absolute URL cannot claim a scheme other than the batch's own.

Every case uses real components: Django's test client with ``enforce_csrf_checks=True`` and
real cookies, and for the end-to-end attack a real gunicorn over plain HTTP.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client

from test_project.articles.models import Article
from tests.helpers import BATCH_URL, post_batch
from tests.live import LiveSite, serve

pytestmark = pytest.mark.django_db

CSRF_COOKIE = django_settings.CSRF_COOKIE_NAME
SESSION_COOKIE = django_settings.SESSION_COOKIE_NAME
CSRF_SECRET = "s3cr3tCsrfS3cr3tCsrfS3cr3tCsrf12"  # 32 characters: a valid cookie and token
SAME_ORIGIN = "http://testserver"
EVIL_ORIGIN = "https://evil.example.com"
FORM = "application/x-www-form-urlencoded"

WHOAMI = {"method": "get", "url": "/views/whoami/"}
ME = {"method": "get", "url": "/api/me/"}
SET_COOKIE = {"method": "get", "url": "/views/set-cookie/"}
PLAIN_WRITE = {"method": "post", "url": "/views/csrf-protected/", "body": {}}
DRF_WRITE = {"method": "post", "url": "/api/articles/", "body": {"title": "csrf rules"}}

# The attack: item "t" reads the victim's CSRF token, the next item sends it.
STEAL = {"name": "t", "method": "get", "url": "/attack/csrf-token/"}
FORGED_HEADER = {"method": "post", "url": "/views/csrf-protected/",
                 "headers": {"X-CSRFToken": "{result=t:$.token}"}, "body": {}}
FORGED_FORM = {"method": "post", "url": "/views/csrf-protected/",
               "headers": {"Content-Type": FORM},
               "body": "csrfmiddlewaretoken={result=t:$.token}"}
STAFF_PASSWORD = "staff-password"


def admin_login(username: str, password: str) -> dict[str, Any]:
    return {"method": "post", "url": "/admin/login/", "headers": {"Content-Type": FORM},
            "body": f"csrfmiddlewaretoken={{result=t:$.token}}&username={username}"
                    f"&password={password}&next=/admin/"}


def post_text(client: Client, items: list[dict[str, Any]], **extra: Any):
    """POST a batch as ``text/plain``, as a cross-site HTML form or ``fetch`` may, unpreflighted."""
    return client.post(BATCH_URL, json.dumps({"batch": items}), content_type="text/plain",
                       **extra)


def statuses(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [item["status_code"] for item in response.json()["batch"]]


def direct(client: Client, item: dict[str, Any], **extra: Any):
    """Send ``item`` on its own, by the same client, with the same batch-level headers."""
    headers = dict(item.get("headers", {}))
    content_type = headers.pop("Content-Type", "application/json")
    body = item.get("body", "")
    if not isinstance(body, str):
        body = json.dumps(body)
    return client.generic(item["method"].upper(), item["url"], body,
                          content_type=content_type, headers=headers, **extra)


def direct_statuses(client: Client, items: list[dict[str, Any]], **extra: Any) -> list[int]:
    return [direct(client, item, **extra).status_code for item in items]


@dataclass
class Tripwire:
    """An item whose running leaves a mark that a test reads afterwards (/attack/release/)."""

    item: dict[str, Any]
    name: str

    def fired(self) -> bool:
        # /attack/hold/ with seconds=0 answers at once whether the name was released.
        answer = Client().get(f"/attack/hold/?name={self.name}&seconds=0")
        assert answer.status_code == 200
        return answer.json()["released"]


@pytest.fixture
def tripwire() -> Tripwire:
    name = f"csrf-{uuid.uuid4().hex}"
    return Tripwire({"method": "get", "url": f"/attack/release/?name={name}"}, name)


@pytest.fixture
def browser(alice: User) -> Client:
    """alice's logged-in browser, holding a CSRF cookie, enforcing CSRF like a real one."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.cookies[CSRF_COOKIE] = CSRF_SECRET
    return client


@pytest.fixture
def victim() -> Client:
    """An anonymous browser that holds only a CSRF cookie (it visited a page with a form)."""
    client = Client(enforce_csrf_checks=True)
    client.cookies[CSRF_COOKIE] = CSRF_SECRET
    return client


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user("staff", "staff@example.com", STAFF_PASSWORD,
                                    is_staff=True, is_superuser=True)


# --- A. Without references: no batch gate, every item judged as directly -----------------


def test_session_batch_of_gets_needs_no_csrf_token_or_cookie(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert CSRF_COOKIE not in client.cookies
    items = [WHOAMI, ME, {"method": "get", "url": "/api/articles/"}]
    response = post_batch(client, items)
    assert statuses(response) == [200, 200, 200]
    batch = response.json()["batch"]
    assert json.loads(batch[0]["body"])["user"] == "alice"
    assert json.loads(batch[1]["body"])["username"] == "alice"
    assert direct_statuses(client, items) == [200, 200, 200]


@pytest.mark.parametrize(("token", "expected"), [(CSRF_SECRET, 200), ("x" * 32, 403)],
                         ids=["right-token", "wrong-token"])
def test_form_item_is_judged_by_its_own_csrfmiddlewaretoken(browser: Client, token: str,
                                                             expected: int) -> None:
    item = {"method": "post", "url": "/views/csrf-protected/",
            "headers": {"Content-Type": FORM}, "body": f"csrfmiddlewaretoken={token}"}
    response = post_batch(browser, [item])  # the cookie, but no X-CSRFToken header
    assert statuses(response) == [expected]
    if expected == 200:
        assert json.loads(response.json()["batch"][0]["body"]) == {"ok": True, "user": "alice"}
    assert direct(browser, item).status_code == expected


def test_item_refused_by_csrf_gets_its_own_403_and_the_others_run(browser: Client) -> None:
    items = [WHOAMI, PLAIN_WRITE, DRF_WRITE, SET_COOKIE]
    response = post_batch(browser, items)
    assert statuses(response) == [200, 403, 403, 200]
    assert json.loads(response.json()["batch"][0]["body"])["user"] == "alice"
    assert response.cookies["flavour"].value == "chocolate"  # the last item ran
    assert not Article.objects.filter(title="csrf rules").exists()
    assert direct_statuses(browser, items) == [200, 403, 403, 200]
    assert not Article.objects.filter(title="csrf rules").exists()


def test_cross_origin_batch_items_meet_the_origin_check(browser: Client) -> None:
    items = [WHOAMI, PLAIN_WRITE, DRF_WRITE]
    evil = {"HTTP_ORIGIN": EVIL_ORIGIN, "HTTP_X_CSRFTOKEN": CSRF_SECRET}
    assert statuses(post_batch(browser, items, **evil)) == [200, 403, 403]
    assert not Article.objects.filter(title="csrf rules").exists()
    assert direct_statuses(browser, items, **evil) == [200, 403, 403]
    assert not Article.objects.filter(title="csrf rules").exists()
    # The same with the site's own Origin: the 403s above came from the Origin check.
    same = {"HTTP_ORIGIN": SAME_ORIGIN, "HTTP_X_CSRFTOKEN": CSRF_SECRET}
    assert statuses(post_batch(browser, items, **same)) == [200, 200, 201]


def test_test_client_without_csrf_checks_is_honoured(alice: User) -> None:
    client = Client()  # enforce_csrf_checks=False, Django's default
    client.force_login(alice)
    items = [PLAIN_WRITE, DRF_WRITE]
    assert statuses(post_batch(client, items)) == [200, 201]
    assert direct_statuses(client, items) == [200, 201]
    assert Article.objects.filter(title="csrf rules", author=alice).count() == 2


def test_token_client_without_cookies_needs_no_csrf_token_for_drf(alice_token: str,
                                                                  articles) -> None:
    client = Client(enforce_csrf_checks=True)
    auth = {"HTTP_AUTHORIZATION": f"Token {alice_token}"}
    items = [DRF_WRITE, {"method": "patch", "url": f"/api/articles/{articles[0].pk}/",
                         "body": {"title": "patched by token"}}, ME]
    assert statuses(post_batch(client, items, **auth)) == [201, 200, 200]
    assert not client.cookies
    assert direct_statuses(client, items, **auth) == [201, 200, 200]
    articles[0].refresh_from_db()
    assert articles[0].title == "patched by token"


# --- B. With references and a cookie: the batch passes Django's CSRF check first ----------


@pytest.mark.parametrize("forged", [FORGED_HEADER, FORGED_FORM], ids=["header", "form-field"])
@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "logged-in"])
def test_reference_batch_cannot_steal_and_send_the_csrf_token(
        victim: Client, alice: User, tripwire: Tripwire, forged: dict, logged_in: bool) -> None:
    if logged_in:
        victim.force_login(alice)
    # Cross-site: text/plain, no Origin, no Referer, no token, plain HTTP.
    response = post_text(victim, [tripwire.item, STEAL, forged])
    assert response.status_code == 403, response.content
    assert "CSRF" in response.content.decode()
    assert not tripwire.fired()
    assert not response.cookies


@pytest.mark.parametrize("forged", [FORGED_HEADER, FORGED_FORM], ids=["header", "form-field"])
@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "logged-in"])
def test_same_origin_reference_batch_with_token_runs(
        victim: Client, alice: User, tripwire: Tripwire, forged: dict, logged_in: bool) -> None:
    if logged_in:
        victim.force_login(alice)
    response = post_text(victim, [tripwire.item, STEAL, forged],
                         HTTP_X_CSRFTOKEN=CSRF_SECRET, HTTP_ORIGIN=SAME_ORIGIN)
    assert statuses(response) == [200, 200, 200]
    assert json.loads(response.json()["batch"][2]["body"]) == {
        "ok": True, "user": "alice" if logged_in else None}
    assert tripwire.fired()


def test_login_csrf_through_a_reference_batch_is_refused(victim: Client, staff: User,
                                                         tripwire: Tripwire) -> None:
    response = post_text(victim, [tripwire.item, STEAL, admin_login("staff", STAFF_PASSWORD)])
    assert response.status_code == 403, response.content
    assert SESSION_COOKIE not in response.cookies
    assert SESSION_COOKIE not in victim.cookies
    assert victim.get("/views/whoami/").json()["user"] is None
    staff.refresh_from_db()
    assert staff.last_login is None
    assert not tripwire.fired()


def test_same_origin_login_through_a_reference_batch_works(victim: Client,
                                                           staff: User) -> None:
    """The control for the test above: the same items log in once the batch proves origin."""
    response = post_text(victim, [STEAL, admin_login("staff", STAFF_PASSWORD)],
                         HTTP_X_CSRFTOKEN=CSRF_SECRET, HTTP_ORIGIN=SAME_ORIGIN)
    assert statuses(response) == [200, 302]
    assert response.cookies[SESSION_COOKIE].value
    assert victim.get("/views/whoami/").json()["user"] == "staff"


@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "logged-in"])
def test_cross_origin_reference_batch_is_refused_even_with_a_token(
        victim: Client, alice: User, tripwire: Tripwire, logged_in: bool) -> None:
    if logged_in:
        victim.force_login(alice)
    response = post_text(victim, [tripwire.item, STEAL, FORGED_HEADER],
                         HTTP_X_CSRFTOKEN=CSRF_SECRET, HTTP_ORIGIN=EVIL_ORIGIN)
    assert response.status_code == 403, response.content
    # The message names the real reason (the Origin), not a missing token: one was sent.
    message = response.json()["errors"][0]["message"]
    assert "Origin checking failed" in message and "token" not in message.split(".")[0]
    assert not tripwire.fired()


def test_https_reference_batch_needs_a_good_referer(victim: Client,
                                                    tripwire: Tripwire) -> None:
    items = [tripwire.item, STEAL, FORGED_HEADER]
    # Over HTTPS without Origin, Django's check wants a same-site Referer.
    response = post_text(victim, items, secure=True, HTTP_X_CSRFTOKEN=CSRF_SECRET)
    assert response.status_code == 403, response.content
    assert not tripwire.fired()
    response = post_text(victim, items, secure=True, HTTP_X_CSRFTOKEN=CSRF_SECRET,
                         HTTP_REFERER="https://evil.example.com/page")
    assert response.status_code == 403, response.content
    assert not tripwire.fired()
    response = post_text(victim, items, secure=True, HTTP_X_CSRFTOKEN=CSRF_SECRET,
                         HTTP_REFERER="https://testserver/page")
    assert statuses(response) == [200, 200, 200]
    assert tripwire.fired()


@pytest.mark.parametrize("with_token", [False, True], ids=["anonymous", "token-client"])
def test_any_cookie_puts_a_reference_batch_behind_the_csrf_check(
        alice_token: str, tripwire: Tripwire, with_token: bool) -> None:
    client = Client(enforce_csrf_checks=True)
    client.cookies["theme"] = "dark"  # not a session, not a CSRF cookie: still a cookie
    extra = {"HTTP_AUTHORIZATION": f"Token {alice_token}"} if with_token else {}
    items = [tripwire.item, {"name": "who", "method": "get", "url": "/views/whoami/"},
             {"method": "get", "url": "/views/whoami/?method={result=who:$.method}"}]
    response = post_text(client, items, **extra)
    assert response.status_code == 403, response.content
    assert not tripwire.fired()


def test_reference_batch_without_cookies_needs_no_csrf_token(alice_token: str,
                                                            alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    items = [{"name": "me", "method": "get", "url": "/api/me/"},
             {"method": "post", "url": "/api/articles/",
              "body": {"title": "by {result=me:$.username}"}}]
    response = post_batch(client, items, HTTP_AUTHORIZATION=f"Token {alice_token}")
    assert statuses(response) == [200, 201]
    assert Article.objects.get(title="by alice").author == alice


BASIC_ALICE = "Basic " + base64.b64encode(b"alice:alice-password").decode()
READ_THEN_WRITE = [{"name": "me", "method": "get", "url": "/api/me/"},
                   {"method": "post", "url": "/api/articles/",
                    "body": {"title": "basic {result=me:$.username}"}}]


@pytest.mark.parametrize("content_type", ["text/plain", FORM, ""])
def test_a_reference_batch_with_browser_cached_basic_auth_must_be_json(
        alice: User, tripwire: Tripwire, content_type: str) -> None:
    # A browser sends cached Basic credentials by itself, cross-site too, like a cookie; with
    # no cookie to hold a CSRF secret, only a content type a cross-site page cannot send
    # without a CORS preflight proves the batch is not forged.
    client = Client(enforce_csrf_checks=True)
    response = client.post(BATCH_URL, json.dumps({"batch": [tripwire.item, *READ_THEN_WRITE]}),
                           content_type=content_type, HTTP_AUTHORIZATION=BASIC_ALICE)
    assert response.status_code == 403, response.content
    assert "application/json" in response.json()["errors"][0]["message"]
    assert not tripwire.fired() and not Article.objects.exists()
    json_batch = post_batch(client, READ_THEN_WRITE, HTTP_AUTHORIZATION=BASIC_ALICE)
    assert statuses(json_batch) == [200, 201]
    assert Article.objects.get(title="basic alice").author == alice


def test_basic_auth_without_references_has_no_batch_gate(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    items = [ME, {"method": "post", "url": "/api/articles/", "body": {"title": "basic"}}]
    # Each item answers as the same request sent directly with Basic auth (DRF does not ask
    # Basic clients for a CSRF token).
    assert statuses(post_text(client, items, HTTP_AUTHORIZATION=BASIC_ALICE)) == [200, 201]
    assert direct_statuses(client, [ME], HTTP_AUTHORIZATION=BASIC_ALICE) == [200]


def test_a_token_reference_batch_may_be_sent_as_text(alice: User, alice_token: str) -> None:
    # A token is never added by a browser: a cross-site page cannot send it.
    client = Client(enforce_csrf_checks=True)
    response = post_text(client, READ_THEN_WRITE, HTTP_AUTHORIZATION=f"Token {alice_token}")
    assert statuses(response) == [200, 201]


def test_reference_batch_honours_the_test_clients_csrf_switch(alice: User) -> None:
    client = Client()  # enforce_csrf_checks=False: Django's CSRF check lets it pass
    client.force_login(alice)
    response = post_batch(client, [STEAL, FORGED_HEADER])
    assert statuses(response) == [200, 200]


# --- C. The scheme of an item's absolute URL ----------------------------------------------


def test_absolute_url_cannot_claim_https_in_an_http_batch(tripwire: Tripwire) -> None:
    response = post_batch(Client(), [tripwire.item,
                                     {"method": "get", "url": "https://testserver/views/whoami/"}])
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert any(e["index"] == 1 and e["field"] == "url" for e in errors), errors
    assert not tripwire.fired()


def test_absolute_url_cannot_claim_http_in_an_https_batch(tripwire: Tripwire) -> None:
    """The downgrade: an https sub-request that said http would skip the Referer check."""
    response = post_batch(Client(), [tripwire.item,
                                     {"method": "get", "url": "http://testserver/views/whoami/"}],
                          secure=True)
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert any(e["index"] == 1 and e["field"] == "url" for e in errors), errors
    assert not tripwire.fired()


@pytest.mark.parametrize(("secure", "scheme"), [(False, "http"), (True, "https")])
def test_absolute_url_with_the_batchs_own_scheme_works(secure: bool, scheme: str) -> None:
    response = post_batch(Client(), [
        {"method": "get", "url": f"{scheme}://testserver/views/whoami/?x=1"}], secure=secure)
    assert statuses(response) == [200]
    who = json.loads(response.json()["batch"][0]["body"])
    assert (who["scheme"], who["is_secure"], who["full_path"]) == (
        scheme, secure, "/views/whoami/?x=1")


def test_use_https_runs_sub_requests_as_https(settings) -> None:
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "USE_HTTPS": True}
    response = post_batch(Client(), [WHOAMI])
    assert statuses(response) == [200]
    who = json.loads(response.json()["batch"][0]["body"])
    assert (who["scheme"], who["is_secure"]) == ("https", True)


# --- The attack end to end: a real gunicorn over plain HTTP --------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> LiveSite:
    with serve("gunicorn", tmp_path_factory.mktemp("csrf-gunicorn")) as live:
        yield live


def _live_victim(site: LiveSite) -> requests.Session:
    """An anonymous browser session that got a CSRF cookie from the site itself."""
    http = requests.Session()
    answer = http.get(f"{site.url}/attack/csrf-token/", timeout=30)
    assert answer.status_code == 200 and http.cookies.get(CSRF_COOKIE)
    return http


def _live_fired(site: LiveSite, name: str) -> bool:
    answer = requests.get(f"{site.url}/attack/hold/?name={name}&seconds=0", timeout=30)
    assert answer.status_code == 200
    return answer.json()["released"]


@pytest.mark.server
@pytest.mark.parametrize("forged", [FORGED_HEADER, FORGED_FORM, admin_login("demo", "demo")],
                         ids=["header", "form-field", "admin-login"])
def test_live_cross_site_text_plain_reference_batch_is_refused(site: LiveSite,
                                                               forged: dict) -> None:
    name = f"live-{uuid.uuid4().hex}"
    items = [{"method": "get", "url": f"/attack/release/?name={name}"}, STEAL, forged]
    with _live_victim(site) as http:
        # What a cross-site page can make a browser send: text/plain, the site's cookies,
        # no Origin or Referer (as some browsers and privacy settings send).
        response = http.post(f"{site.url}{BATCH_URL}", data=json.dumps({"batch": items}),
                             headers={"Content-Type": "text/plain"}, timeout=30)
        assert response.status_code == 403, response.text
        assert SESSION_COOKIE not in response.cookies
        assert http.get(f"{site.url}/views/whoami/", timeout=30).json()["user"] is None
    assert not _live_fired(site, name)
