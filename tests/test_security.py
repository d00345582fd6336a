"""CSRF, privilege, limits and error hygiene: a batch is never a way around a rule."""

from __future__ import annotations

import json
import logging

import django
import pytest
from django.conf import settings as django_settings
from django.test import Client

from test_project.articles.models import Article
from tests.helpers import batch_items, post_batch

pytestmark = pytest.mark.django_db

CSRF_SECRET = "a" * 32
WRITE = {"method": "post", "url": "/api/articles/", "body": {"title": "csrf test"}}
PLAIN_WRITE = {"method": "post", "url": "/views/csrf-protected/", "body": {}}
SIDE_EFFECT_GET = {"method": "get", "url": "/views/set-cookie/"}


@pytest.fixture
def browser(alice) -> Client:
    """A logged-in browser session that enforces CSRF like a real one."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.cookies[django_settings.CSRF_COOKIE_NAME] = CSRF_SECRET
    return client


def test_cross_site_batch_with_session_cookie_writes_nothing(browser: Client) -> None:
    # No references, so no batch-level gate: each item meets CsrfViewMiddleware as directly.
    # The safe GET runs, as a direct cross-site GET would; the unsafe items get their own 403.
    response = post_batch(browser, [SIDE_EFFECT_GET, WRITE, PLAIN_WRITE])
    assert response.status_code == 200, response.content
    items = response.json()["batch"]
    assert [i["status_code"] for i in items] == [200, 403, 403]
    assert all("CSRF" in i["body"] for i in items[1:])
    assert response.cookies["flavour"].value == "chocolate"
    assert not Article.objects.filter(title="csrf test").exists()


def test_cross_origin_batch_items_are_refused_even_with_a_token(browser: Client) -> None:
    items = batch_items(browser, [SIDE_EFFECT_GET, WRITE, PLAIN_WRITE],
                        HTTP_X_CSRFTOKEN=CSRF_SECRET, HTTP_ORIGIN="https://evil.example.com")
    # The Origin check refuses each unsafe item, as it would refuse the direct request.
    assert [i["status_code"] for i in items] == [200, 403, 403]
    assert not Article.objects.filter(title="csrf test").exists()


def test_same_site_batch_with_csrf_token_can_write(browser: Client, alice) -> None:
    items = batch_items(browser, [WRITE, PLAIN_WRITE], HTTP_X_CSRFTOKEN=CSRF_SECRET)
    assert [i["status_code"] for i in items] == [201, 200]
    assert json.loads(items[1]["body"]) == {"ok": True, "user": "alice"}
    assert Article.objects.get(title="csrf test").author == alice


def test_token_client_needs_no_csrf_token_for_drf(alice_token) -> None:
    client = Client(enforce_csrf_checks=True)
    items = batch_items(client, [WRITE, PLAIN_WRITE], HTTP_AUTHORIZATION=f"Token {alice_token}")
    # DRF views take the token without CSRF, as directly; a plain CSRF-protected Django view
    # refuses the cookie-less POST, as directly.
    assert [i["status_code"] for i in items] == [201, 403]
    direct = client.post("/views/csrf-protected/", "{}", content_type="application/json",
                         HTTP_AUTHORIZATION=f"Token {alice_token}")
    assert direct.status_code == 403


def test_anonymous_batch_stays_anonymous(client: Client, articles) -> None:
    items = batch_items(client, [
        {"method": "get", "url": "/views/whoami/"},
        {"method": "get", "url": "/api/me/"},
        {"method": "delete", "url": f"/api/articles/{articles[0].pk}/"},
    ])
    assert json.loads(items[0]["body"])["user"] is None
    assert items[1]["status_code"] in (401, 403)
    assert items[2]["status_code"] in (401, 403)
    assert Article.objects.filter(pk=articles[0].pk).exists()


def test_user_a_cannot_act_as_user_b(client: Client, articles, alice_token) -> None:
    bobs = articles[2]
    items = batch_items(client, [
        {"method": "patch", "url": f"/api/articles/{bobs.pk}/", "body": {"title": "hacked"}},
        {"method": "get", "url": "/api/me/"},
    ], HTTP_AUTHORIZATION=f"Token {alice_token}")
    assert items[0]["status_code"] == 403
    assert json.loads(items[1]["body"])["username"] == "alice"
    bobs.refresh_from_db()
    assert bobs.title == "Bob only"


def test_throttles_count_every_sub_request(client: Client) -> None:
    items = batch_items(client, [{"method": "get", "url": "/api/throttled/"}] * 8)
    assert [i["status_code"] for i in items] == [200] * 5 + [429] * 3
    assert client.get("/api/throttled/").status_code == 429


def test_view_error_is_a_500_item_without_details(client: Client, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="django.request")
    items = batch_items(Client(raise_request_exception=False), [
        {"method": "get", "url": "/views/error/"}, {"method": "get", "url": "/views/"}])
    assert [i["status_code"] for i in items] == [500, 200]
    assert "secret-detail-xyz" not in json.dumps(items)
    assert any("/views/error/" in r.getMessage() for r in caplog.records
               if r.name == "django.request")


def test_view_error_details_only_with_debug(settings) -> None:
    settings.DEBUG = True
    items = batch_items(Client(raise_request_exception=False),
                        [{"method": "get", "url": "/views/error/"}])
    assert items[0]["status_code"] == 500
    assert "secret-detail-xyz" in items[0]["body"]


def test_host_and_address_are_the_batch_requests(settings) -> None:
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["api.example.com"]
    client = Client(HTTP_HOST="api.example.com", REMOTE_ADDR="10.1.2.3")
    (item,) = batch_items(client, [{"method": "get", "url": "/views/whoami/?x=1&x=2",
                                    "headers": {"Host": "evil.example.com"}}])
    who = json.loads(item["body"])
    assert (who["host"], who["remote_addr"], who["query"]) == (
        "api.example.com", "10.1.2.3", {"x": ["1", "2"]})


def test_https_batch_gives_https_sub_requests(settings) -> None:
    (item,) = batch_items(Client(), [{"method": "get", "url": "/views/whoami/"}], secure=True)
    assert json.loads(item["body"])["scheme"] == "https"
    settings.BATCH_REQUESTS = {"USE_HTTPS": True}
    (item,) = batch_items(Client(), [{"method": "get", "url": "/views/whoami/"}])
    assert json.loads(item["body"])["is_secure"] is True


@pytest.mark.skipif(django.VERSION < (5, 1), reason="LoginRequiredMiddleware is Django 5.1+")
def test_login_required_middleware(settings, alice_token) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE,
                           "django.contrib.auth.middleware.LoginRequiredMiddleware"]
    items = batch_items(Client(), [{"method": "get", "url": "/api/me/"},
                                   {"method": "get", "url": "/views/whoami/"}],
                        HTTP_AUTHORIZATION=f"Token {alice_token}")
    assert items[0]["status_code"] == 200
    assert items[1]["status_code"] == 302  # as directly: the plain view wants a session login
    assert items[1]["headers"]["Location"].startswith(settings.LOGIN_URL)
