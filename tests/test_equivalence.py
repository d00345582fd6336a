"""EQUIVALENCE: a batched sub-request answers exactly like the same request sent on its own.

Every case of ``CORPUS`` is sent twice from identical starting states:

1. directly, through Django's test client, with some credentials;
2. as an item of ``POST /api/v1/batch/``, the batch request carrying the same credentials
   (session cookie, CSRF cookie + header, ``Authorization`` on the batch or on the item,
   Host, Referer, scheme, REMOTE_ADDR).

Then status code, reason phrase, every response header, the body (byte for byte) and the
cookies set must match. Only what truly differs between two runs is normalised:

* the ``batch_requests.duration`` header, which only batch items carry;
* ``created`` timestamps (``auto_now_add``) in the JSON bodies of write requests, which
  are stamped at the moment each run creates its row; and with them ``Content-Length``,
  which is then checked against each side's own body instead of across;
* the *value* of a ``csrftoken`` cookie (random on every rotation) and any cookie's
  ``expires`` attribute (a wall-clock time).

A write is first sent directly inside ``transaction.atomic()`` + ``set_rollback(True)``;
the rollback also resets SQLite's AUTOINCREMENT counter, so the batched run that follows
starts from the same rows and gets the same ids.

Both comparison modes run with the sequential executor and with the thread and async
executors. The parallel variants use ``django_db(transaction=True)``: their workers open
their own connections to the shared-cache in-memory SQLite DB and only see committed rows.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpResponseBase
from django.test import Client
from django.utils.encoding import iri_to_uri

from test_project.articles.models import Article, Comment

BATCH_URL = "/api/v1/batch/"
JSONAPI = "application/vnd.api+json"
FORM = "application/x-www-form-urlencoded"
DURATION_HEADER = "batch_requests.duration"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# A valid CSRF secret (32 characters from the token alphabet), planted as the csrftoken
# cookie and sent back as X-CSRFToken, on the direct request and on the batch alike.
CSRF_TOKEN = "EquivalenceCsrfToken0123456789ab"
# Safe cases are put this many times into one batch, so parallel executors run copies of
# the same request at the same time on several workers.
SAFE_REPEAT = 3


# --- the corpus -----------------------------------------------------------------------------

# Credentials (``Case.auth``). The same recipe builds the direct client and the batch client.
ANON = "anon"  # Client(): no cookies, no Authorization; CSRF checks off (test-client default)
CSRF_ANON = "csrf-anon"  # Client(enforce_csrf_checks=True), no cookie, no token
SESSION_ALICE = "session:alice"  # force_login(alice); CSRF checks off
CSRF_SESSION_ALICE = "csrf-session:alice"  # force_login + enforced CSRF + cookie + X-CSRFToken
TOKEN_ALICE = "token:alice"  # Authorization: Token <key> on the direct / the *batch* request
TOKEN_BOB = "token:bob"
TOKEN_INVALID = "token:invalid"
ITEM_TOKEN_ALICE = "item-token:alice"  # Authorization only on the *item*; batch is anonymous
ITEM_OVER_BATCH = "item-over-batch:alice"  # batch sends bob's token, the item alice's: alice
BASIC_ALICE = "basic:alice"  # Authorization: Basic alice:alice-password
BASIC_WRONG = "basic:wrong"

# Connection of the request (``Case.conn``): applied to the direct request and to the batch
# request; "settings" are put in place for the test. Behind a reverse proxy, the proxy sets
# the X-Forwarded-* headers, overwriting whatever the client sent.
PROXY_SETTINGS = {
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
    "USE_X_FORWARDED_HOST": True,
}
CONNECTIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "proxy": {"headers": {"Host": "localhost:8000"}, "extra": {"REMOTE_ADDR": "10.1.2.3"}},
    "https": {"secure": True, "headers": {"Referer": "https://testserver/views/"}},
    "tls-proxy": {"settings": PROXY_SETTINGS, "headers": {
        "X-Forwarded-Proto": "https", "X-Forwarded-Host": "localhost:8000"}},
    "http-proxy": {"settings": PROXY_SETTINGS, "headers": {
        "X-Forwarded-Proto": "http", "X-Forwarded-Host": "testserver"}},
}


@dataclass(frozen=True)
class Case:
    """One request. ``{a0}``, ``{a1}``, ``{a2}`` and ``{c0}`` in the url or body are the pks
    of the ``articles`` fixture's three articles and of its comment."""

    id: str
    method: str
    url: str
    auth: str = ANON
    body: str | dict[str, Any] | list[Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    conn: str = "default"

    @property
    def safe(self) -> bool:
        return self.method in SAFE_METHODS


def _jsonapi_headers(**extra: str) -> dict[str, str]:
    return {"Content-Type": JSONAPI, "Accept": JSONAPI, **extra}


CORPUS: list[Case] = [
    # --- plain Django views ---
    Case("views-index", "GET", "/views/"),
    Case("views-index-head", "HEAD", "/views/"),
    Case("views-index-post-raw-body", "POST", "/views/", SESSION_ALICE, "raw ✓ text",
         {"Content-Type": "text/plain; charset=utf-8"}),
    Case("views-index-disallowed-method", "PUT", "/views/"),
    Case("views-list", "GET", "/views/articles/"),
    Case("views-list-filter", "GET", "/views/articles/?q=alice&author=alice"),
    Case("views-list-percent-encoded", "GET", "/views/articles/?q=Alice%20first"),
    Case("views-detail", "GET", "/views/articles/{a0}/", SESSION_ALICE),
    Case("views-detail-404", "GET", "/views/articles/999999/"),
    Case("views-login-required-anon-302", "GET", "/views/login-required/"),
    Case("views-login-required-session", "GET", "/views/login-required/", SESSION_ALICE),
    Case("views-login-required-basic-302", "GET", "/views/login-required/", BASIC_ALICE),
    Case("views-template-anon", "GET", "/views/template/"),
    Case("views-template-session", "GET", "/views/template/", SESSION_ALICE),
    Case("views-redirect", "GET", "/views/redirect/"),
    Case("views-binary", "GET", "/views/binary/"),
    Case("views-latin1", "GET", "/views/latin1/"),
    Case("views-stream", "GET", "/views/stream/"),
    Case("views-file", "GET", "/views/file/"),
    Case("views-set-cookie", "GET", "/views/set-cookie/"),
    Case("views-error-500", "GET", "/views/error/"),
    Case("views-create-form", "POST", "/views/articles/create/", SESSION_ALICE,
         "title=Form+article&body=caf%C3%A9+%26+cr%C3%A8me", {"Content-Type": FORM}),
    Case("views-create-json-csrf", "POST", "/views/articles/create/", CSRF_SESSION_ALICE,
         {"title": "JSON article", "body": "with a CSRF token"}),
    Case("views-create-missing-title-400", "POST", "/views/articles/create/", SESSION_ALICE,
         {"body": "no title"}),
    Case("views-create-anon-302", "POST", "/views/articles/create/", ANON, {"title": "x"}),
    Case("views-csrf-protected-no-token-403", "POST", "/views/csrf-protected/", CSRF_ANON),
    Case("views-csrf-protected-token", "POST", "/views/csrf-protected/", CSRF_SESSION_ALICE),
    Case("views-csrf-protected-https-referer", "POST", "/views/csrf-protected/",
         CSRF_SESSION_ALICE, conn="https"),
    Case("whoami-anon", "GET", "/views/whoami/"),
    Case("whoami-session-headers", "GET", "/views/whoami/", SESSION_ALICE,
         headers={"User-Agent": "Equivalence/1.0", "X-Custom": "custom value"}),
    Case("whoami-basic", "GET", "/views/whoami/", BASIC_ALICE),
    Case("whoami-item-token", "GET", "/views/whoami/", ITEM_TOKEN_ALICE),
    Case("whoami-query-percent-encoded", "GET",
         "/views/whoami/?q=caf%C3%A9&tag=a%2Bb&tag=c%20d&plus=x+y&empty="),
    Case("whoami-query-non-ascii", "GET", "/views/whoami/?q=café&city=Zürich&emoji=😀"),
    Case("whoami-host-remote-addr", "GET", "/views/whoami/?via=proxy", conn="proxy"),
    Case("whoami-https", "GET", "/views/whoami/", conn="https"),
    Case("whoami-behind-tls-proxy", "GET", "/views/whoami/", conn="tls-proxy"),
    Case("whoami-item-forwarded-headers-behind-proxy", "GET", "/views/whoami/",
         headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "localhost"},
         conn="http-proxy"),
    Case("whoami-post-json", "POST", "/views/whoami/", TOKEN_ALICE, {"ignored": True}),
    Case("echo-form", "POST", "/views/echo/", ANON, "a=1&a=2&b=%C3%BC+x", {"Content-Type": FORM}),
    Case("echo-json-default-content-type", "PUT", "/views/echo/", ANON,
         {"nested": {"list": [1, 2.5, None, "ü"]}}, {"X-Custom": "echoed"}),
    Case("echo-json-array", "PATCH", "/views/echo/", ANON, [1, "two", {"three": 3}]),
    # --- DRF ---
    Case("api-ping", "GET", "/api/ping/"),
    Case("api-me-anon-403", "GET", "/api/me/"),
    Case("api-me-session", "GET", "/api/me/", SESSION_ALICE),
    Case("api-me-token", "GET", "/api/me/", TOKEN_ALICE),
    Case("api-me-item-token", "GET", "/api/me/", ITEM_TOKEN_ALICE),
    Case("api-me-item-token-over-batch-token", "GET", "/api/me/", ITEM_OVER_BATCH),
    Case("api-me-basic", "GET", "/api/me/", BASIC_ALICE),
    Case("api-me-basic-wrong-password", "GET", "/api/me/", BASIC_WRONG),
    Case("api-me-invalid-token", "GET", "/api/me/", TOKEN_INVALID),
    Case("api-throttled", "GET", "/api/throttled/"),
    Case("api-articles-list", "GET", "/api/articles/"),
    Case("api-articles-list-head", "HEAD", "/api/articles/", TOKEN_ALICE),
    Case("api-articles-search", "GET", "/api/articles/?search=second", TOKEN_BOB),
    Case("api-articles-search-non-ascii", "GET", "/api/articles/?search=Zürich%20ü"),
    Case("api-articles-format-json", "GET", "/api/articles/?format=json"),
    Case("api-articles-accept-json-indent", "GET", "/api/articles/",
         headers={"Accept": "application/json; indent=2"}),
    Case("api-articles-accept-unsupported-406", "GET", "/api/articles/",
         headers={"Accept": "application/xml"}),
    Case("api-articles-detail", "GET", "/api/articles/{a2}/", SESSION_ALICE),
    Case("api-articles-detail-404", "GET", "/api/articles/999999/"),
    Case("api-articles-options-anon", "OPTIONS", "/api/articles/"),
    Case("api-articles-options-author", "OPTIONS", "/api/articles/{a0}/", TOKEN_ALICE),
    Case("api-articles-create-token", "POST", "/api/articles/", TOKEN_ALICE,
         {"title": "Created by token", "body": "ü ✓", "published": False}),
    Case("api-articles-create-item-token", "POST", "/api/articles/", ITEM_TOKEN_ALICE,
         {"title": "Created with the item's token"}),
    Case("api-articles-create-basic", "POST", "/api/articles/", BASIC_ALICE,
         {"title": "Created with basic auth"}),
    Case("api-articles-create-form", "POST", "/api/articles/", TOKEN_BOB,
         "title=Form+encoded&body=b%C3%B6dy", {"Content-Type": FORM}),
    Case("api-articles-create-csrf-session", "POST", "/api/articles/", CSRF_SESSION_ALICE,
         {"title": "Session + CSRF"}),
    Case("api-articles-create-invalid-400", "POST", "/api/articles/", TOKEN_ALICE,
         {"body": "no title", "published": "not a boolean"}),
    Case("api-articles-create-malformed-json-400", "POST", "/api/articles/", TOKEN_ALICE,
         '{"title": ', {"Content-Type": "application/json"}),
    Case("api-articles-create-unsupported-415", "POST", "/api/articles/", TOKEN_ALICE,
         "title", {"Content-Type": "text/plain"}),
    Case("api-articles-create-anon-403", "POST", "/api/articles/", ANON, {"title": "anon"}),
    Case("api-articles-put", "PUT", "/api/articles/{a0}/", TOKEN_ALICE,
         {"title": "Replaced", "body": "Replaced body", "published": True}),
    Case("api-articles-patch-session", "PATCH", "/api/articles/{a1}/", SESSION_ALICE,
         {"title": "Patched"}),
    Case("api-articles-patch-non-author-403", "PATCH", "/api/articles/{a0}/", TOKEN_BOB,
         {"title": "Not yours"}),
    Case("api-articles-delete", "DELETE", "/api/articles/{a1}/", TOKEN_ALICE),
    Case("api-articles-delete-non-author-403", "DELETE", "/api/articles/{a2}/", BASIC_ALICE),
    Case("api-articles-delete-404", "DELETE", "/api/articles/999999/", TOKEN_ALICE),
    Case("api-comments-list", "GET", "/api/comments/"),
    Case("api-comments-create", "POST", "/api/comments/", TOKEN_BOB,
         {"article": "{a0}", "text": "A comment from a batch"}),
    Case("api-comments-create-bad-article-400", "POST", "/api/comments/", TOKEN_BOB,
         {"article": 999999, "text": "orphan"}),
    # --- DRF JSON:API ---
    Case("jsonapi-articles-list", "GET", "/jsonapi/articles/", headers={"Accept": JSONAPI}),
    Case("jsonapi-articles-page-sort", "GET", "/jsonapi/articles/?sort=-title&page%5Bsize%5D=2",
         SESSION_ALICE, headers={"Accept": JSONAPI}),
    Case("jsonapi-articles-filter-raw-brackets", "GET",
         "/jsonapi/articles/?filter[search]=alice&include=comments"),
    Case("jsonapi-articles-bad-query-param-400", "GET", "/jsonapi/articles/?unknown=1",
         headers={"Accept": JSONAPI}),
    Case("jsonapi-articles-detail-include", "GET", "/jsonapi/articles/{a0}/?include=comments",
         TOKEN_ALICE, headers={"Accept": JSONAPI}),
    Case("jsonapi-articles-detail-404", "GET", "/jsonapi/articles/999999/",
         headers={"Accept": JSONAPI}),
    Case("jsonapi-articles-related", "GET", "/jsonapi/articles/{a0}/comments/"),
    Case("jsonapi-articles-relationship", "GET", "/jsonapi/articles/{a0}/relationships/comments/"),
    # Anonymous: as an authenticated user this OPTIONS answers 500 both ways (reported).
    Case("jsonapi-articles-options", "OPTIONS", "/jsonapi/articles/"),
    Case("jsonapi-articles-create", "POST", "/jsonapi/articles/", TOKEN_ALICE,
         {"data": {"type": "articles", "attributes": {"title": "JSON:API article",
                                                      "body": "résumé"}}},
         _jsonapi_headers()),
    Case("jsonapi-articles-create-invalid-400", "POST", "/jsonapi/articles/", TOKEN_ALICE,
         {"data": {"type": "articles", "attributes": {"body": "no title"}}}, _jsonapi_headers()),
    Case("jsonapi-articles-create-wrong-type-409", "POST", "/jsonapi/articles/", TOKEN_ALICE,
         {"data": {"type": "comments", "attributes": {"title": "x"}}}, _jsonapi_headers()),
    Case("jsonapi-articles-create-plain-json-415", "POST", "/jsonapi/articles/", TOKEN_ALICE,
         {"data": {"type": "articles", "attributes": {"title": "no media type"}}}),
    Case("jsonapi-articles-create-anon-403", "POST", "/jsonapi/articles/", ANON,
         {"data": {"type": "articles", "attributes": {"title": "anon"}}}, _jsonapi_headers()),
    Case("jsonapi-comments-create-relationship", "POST", "/jsonapi/comments/", ITEM_TOKEN_ALICE,
         {"data": {"type": "comments", "attributes": {"text": "Related via JSON:API"},
                   "relationships": {"article": {"data": {"type": "articles", "id": "{a2}"}}}}},
         _jsonapi_headers()),
    Case("jsonapi-articles-patch", "PATCH", "/jsonapi/articles/{a0}/", SESSION_ALICE,
         {"data": {"type": "articles", "id": "{a0}", "attributes": {"title": "Patched"}}},
         _jsonapi_headers()),
    Case("jsonapi-articles-patch-non-author-403", "PATCH", "/jsonapi/articles/{a0}/", TOKEN_BOB,
         {"data": {"type": "articles", "id": "{a0}", "attributes": {"title": "Not yours"}}},
         _jsonapi_headers()),
    Case("jsonapi-comments-delete", "DELETE", "/jsonapi/comments/{c0}/", TOKEN_BOB,
         headers={"Accept": JSONAPI}),
]

READ_ONLY_CORPUS = [case for case in CORPUS if case.safe and case.conn == "default"]
CORPUS_PARAMS = [pytest.param(case, id=case.id) for case in CORPUS]


# --- credentials ----------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """The fixture data the corpus refers to."""

    users: dict[str, User]
    tokens: dict[str, str]
    ids: dict[str, int]

    def fill(self, value: Any) -> Any:
        """Put the fixture pks into ``{a0}``-style placeholders, in a url or a body."""
        if isinstance(value, str):
            return re.sub(r"\{([ac]\d)\}", lambda m: str(self.ids[m.group(1)]), value)
        if isinstance(value, dict):
            return {key: self.fill(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.fill(item) for item in value]
        return value


@dataclass
class Credentials:
    """One client plus the headers that carry its credentials, direct and batched."""

    client: Client
    direct_headers: dict[str, str]  # on the direct request
    batch_headers: dict[str, str]  # on the batch request
    item_headers: dict[str, str]  # on each batch item


@pytest.fixture
def world(alice: User, bob: User, alice_token: str, bob_token: str,
          articles: list[Article]) -> World:
    comment = Comment.objects.get(article=articles[0])
    ids = {f"a{n}": article.pk for n, article in enumerate(articles)} | {"c0": comment.pk}
    return World({"alice": alice, "bob": bob}, {"alice": alice_token, "bob": bob_token}, ids)


def credentials(auth: str, world: World) -> Credentials:
    """A fresh client for ``auth``; called once for the direct and once for the batch side."""
    kind, _, name = auth.partition(":")
    client = Client(enforce_csrf_checks=kind.startswith("csrf-"), raise_request_exception=False)
    creds = Credentials(client, {}, {}, {})
    if kind in ("session", "csrf-session"):
        client.force_login(world.users[name])
    if kind == "csrf-session":
        client.cookies["csrftoken"] = CSRF_TOKEN
        creds.direct_headers = creds.batch_headers = {"X-CSRFToken": CSRF_TOKEN}
    if kind in ("token", "item-token", "item-over-batch"):
        key = world.tokens.get(name, "0" * 40)
        creds.direct_headers = {"Authorization": f"Token {key}"}
        if kind == "token":
            creds.batch_headers = creds.direct_headers
        else:
            creds.item_headers = creds.direct_headers
        if kind == "item-over-batch":
            creds.batch_headers = {"Authorization": f"Token {world.tokens['bob']}"}
    if kind == "basic":
        password = "wrong-password" if name == "wrong" else f"{name}-password"
        user = "alice" if name == "wrong" else name
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        creds.direct_headers = creds.batch_headers = {"Authorization": f"Basic {basic}"}
    return creds


# --- sending both ways ----------------------------------------------------------------------


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def direct_request(case: Case, world: World, creds: Credentials) -> HttpResponseBase:
    """The request on its own, as the batch spec defines it: an object/array body is the
    compact JSON the batch view sends, with ``application/json`` unless a Content-Type is
    given.

    A non-ASCII url is sent percent-encoded (UTF-8), as every HTTP client does: a request
    target is ASCII. (Django's test client would instead pass the raw UTF-8 bytes through
    a latin-1 WSGI string; ``request.GET`` is the same, but ``get_full_path()`` then shows
    mojibake such as ``caf%C3%83%C2%A9`` where the batch, like a real client, has
    ``caf%C3%A9``.)
    """
    body = world.fill(case.body)
    if isinstance(body, (dict, list)):
        body = json.dumps(body, separators=(",", ":"))
    content_type = _header(case.headers, "Content-Type") or "application/json"
    conn = CONNECTIONS[case.conn]
    headers = {k: v for k, v in case.headers.items() if k.lower() != "content-type"}
    # The connection's headers win: a reverse proxy overwrites the client's X-Forwarded-*.
    headers |= conn.get("headers", {}) | creds.direct_headers
    return creds.client.generic(
        case.method, iri_to_uri(world.fill(case.url)), (body or "").encode(), content_type,
        secure=conn.get("secure", False), headers=headers, **conn.get("extra", {}),
    )


def batch_item(case: Case, world: World, creds: Credentials) -> dict[str, Any]:
    item: dict[str, Any] = {"method": case.method.lower(), "url": world.fill(case.url)}
    if case.body is not None:
        item["body"] = world.fill(case.body)
    headers = case.headers | creds.item_headers
    if headers:
        item["headers"] = headers
    return item


def batch_request(items: list[dict[str, Any]], creds: Credentials,
                  conn: str = "default") -> tuple[list[dict[str, Any]], HttpResponseBase]:
    options = CONNECTIONS[conn]
    response = creds.client.post(
        BATCH_URL, json.dumps({"batch": items}), "application/json",
        secure=options.get("secure", False),
        headers=options.get("headers", {}) | creds.batch_headers, **options.get("extra", {}),
    )
    assert response.status_code == 200, response.content
    answers = json.loads(response.content)["batch"]
    assert len(answers) == len(items)
    return answers, response


# --- comparing ------------------------------------------------------------------------------


@dataclass
class Answer:
    status_code: int
    reason_phrase: str
    headers: dict[str, str]  # lower-case names
    body: bytes


def direct_answer(response: HttpResponseBase) -> Answer:
    headers = {k.lower(): v for k, v in response.items()}
    assert DURATION_HEADER not in headers
    return Answer(response.status_code, response.reason_phrase, headers, response.getvalue())


def batched_answer(item: dict[str, Any]) -> Answer:
    headers = {k.lower(): v for k, v in item["headers"].items()}
    # Only batch items carry the duration header: not part of the sub-request's answer.
    assert headers.pop(DURATION_HEADER.lower(), None) is not None
    if item.get("body_encoding") == "base64":
        body = base64.b64decode(item["body"])
    else:
        assert "body_encoding" not in item, item
        charset = re.search(r"charset=([\w-]+)", headers.get("content-type", ""), re.I)
        body = item["body"].encode(charset.group(1) if charset else "utf-8")
    return Answer(item["status_code"], item["reason_phrase"], headers, body)


def _without_created(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "<created>" if k == "created" else _without_created(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_without_created(v) for v in value]
    return value


def normalised(answer: Answer, case: Case) -> Answer:
    """Mask what differs between two runs of a write: its ``created`` timestamps."""
    if case.safe or not answer.body or "json" not in answer.headers.get("content-type", ""):
        return answer
    try:
        data = json.loads(answer.body)
    except ValueError:
        return answer
    masked = json.dumps(_without_created(data), sort_keys=True).encode()
    if masked == json.dumps(data, sort_keys=True).encode():
        return answer
    headers = dict(answer.headers)
    # Timestamps may differ in length (e.g. no microseconds): compare Content-Length to the
    # side's own body rather than across.
    if "content-length" in headers:
        assert headers.pop("content-length") == str(len(answer.body))
    return Answer(answer.status_code, answer.reason_phrase, headers, masked)


def assert_equivalent(case: Case, direct: Answer, batched: Answer) -> None:
    direct, batched = normalised(direct, case), normalised(batched, case)
    where = f"{case.id}: {case.method} {case.url}"
    assert batched.status_code == direct.status_code, (where, direct.body, batched.body)
    assert batched.reason_phrase == direct.reason_phrase, where
    assert batched.headers == direct.headers, where
    assert batched.body == direct.body, where


def cookie_view(cookies: SimpleCookie) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Cookies set by a response; a csrftoken's value and any ``expires`` are run-specific."""
    return {
        name: ("<csrf>" if name == "csrftoken" else morsel.value,
               sorted((k, str(v)) for k, v in morsel.items() if v and k != "expires"))
        for name, morsel in cookies.items()
    }


# --- the tests ------------------------------------------------------------------------------

PARALLEL = {
    "EXECUTE_PARALLEL": True,
    "CONCURRENT_EXECUTOR": "batch_requests.concurrent.executor.ThreadBasedExecutor",
}
ASYNC = {
    "EXECUTE_PARALLEL": True,
    "CONCURRENT_EXECUTOR": "batch_requests.concurrent.executor.AsyncExecutor",
}
PROCESSES = {
    "EXECUTE_PARALLEL": True,
    "CONCURRENT_EXECUTOR": "batch_requests.concurrent.executor.ProcessBasedExecutor",
    "NUM_WORKERS": 2,
}
EXECUTORS = [
    pytest.param({}, id="sequential", marks=pytest.mark.django_db),
    # Worker threads use their own DB connections: they must see committed fixture rows.
    pytest.param(PARALLEL, id="threads", marks=pytest.mark.django_db(transaction=True)),
    pytest.param(ASYNC, id="async", marks=pytest.mark.django_db(transaction=True)),
    # Worker processes reach the test DB because it is an SQLite file (test_project.settings).
    pytest.param(PROCESSES, id="processes", marks=pytest.mark.django_db(transaction=True)),
]


@pytest.fixture
def use_executor(request: pytest.FixtureRequest, settings: Any) -> Iterator[None]:
    # MAX_LIMIT is raised because the whole read-only corpus (over 50 items) is ONE batch.
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, **request.param, "MAX_LIMIT": 500}
    yield


def isolated(case: Case, run: Callable[[], Any]) -> Any:
    """Run a write and roll it back, so the next run starts from the same rows and ids."""
    if case.safe:
        return run()
    with transaction.atomic():
        result = run()
        transaction.set_rollback(True)
    return result


def test_corpus_is_big_and_ids_are_unique() -> None:
    assert len(CORPUS) >= 35
    assert len({case.id for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("use_executor", EXECUTORS, indirect=True)
@pytest.mark.parametrize("case", CORPUS_PARAMS)
def test_sub_request_answers_like_direct_request(case: Case, world: World, use_executor: None,
                                                  settings: Any) -> None:
    for name, value in CONNECTIONS[case.conn].get("settings", {}).items():
        setattr(settings, name, value)
    direct_creds, batch_creds = credentials(case.auth, world), credentials(case.auth, world)
    response = isolated(case, lambda: direct_request(case, world, direct_creds))
    direct = direct_answer(response)  # reads a streaming body, once
    copies = SAFE_REPEAT if case.safe else 1
    items = [batch_item(case, world, batch_creds)] * copies
    # The direct write was rolled back, so the batch starts from the same rows and ids. (It
    # is not wrapped itself: a thread executor runs it on a worker's own DB connection.)
    answers, batch_response = batch_request(items, batch_creds, case.conn)

    for answer in answers:
        assert_equivalent(case, direct, batched_answer(answer))
    assert cookie_view(batch_response.cookies) == cookie_view(response.cookies), case.id


@pytest.mark.parametrize("use_executor", EXECUTORS, indirect=True)
@pytest.mark.parametrize("auth", [ANON, SESSION_ALICE, CSRF_SESSION_ALICE, TOKEN_ALICE,
                                  ITEM_TOKEN_ALICE, BASIC_ALICE])
def test_whole_read_only_corpus_in_one_batch(auth: str, world: World,
                                             use_executor: None) -> None:
    """Every safe case (under one set of credentials) in ONE batch, answered in order."""
    creds = credentials(auth, world)
    direct = [direct_answer(direct_request(case, world, creds)) for case in READ_ONLY_CORPUS]
    batch_creds = credentials(auth, world)
    items = [batch_item(case, world, batch_creds) for case in READ_ONLY_CORPUS]
    answers, _ = batch_request(items, batch_creds)
    for case, expected, answer in zip(READ_ONLY_CORPUS, direct, answers, strict=True):
        assert_equivalent(case, expected, batched_answer(answer))


# --- the comparison can fail ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("case_id", "batch_auth"), [
    ("api-me-token", ANON),  # the batch lost the Authorization header
    ("whoami-session-headers", ANON),  # the sub-request ran as anonymous
    ("api-articles-options-author", TOKEN_BOB),  # another user's permissions
    ("views-template-session", TOKEN_ALICE),  # token is not a Django session
])
def test_comparison_notices_other_credentials(case_id: str, batch_auth: str,
                                              world: World) -> None:
    case = next(case for case in CORPUS if case.id == case_id)
    direct = direct_answer(direct_request(case, world, credentials(case.auth, world)))
    creds = credentials(batch_auth, world)
    answers, _ = batch_request([batch_item(case, world, creds)], creds)
    with pytest.raises(AssertionError):
        assert_equivalent(case, direct, batched_answer(answers[0]))


@pytest.mark.django_db
def test_comparison_notices_a_mis_parsed_jsonapi_body(world: World) -> None:
    """The same JSON:API document sent as application/json is refused (415)."""
    case = next(case for case in CORPUS if case.id == "jsonapi-articles-create")
    direct = isolated(case, lambda: direct_request(case, world, credentials(case.auth, world)))
    creds = credentials(case.auth, world)
    item = batch_item(case, world, creds)
    item["headers"] = {**item["headers"], "Content-Type": "application/json"}
    answers, _ = batch_request([item], creds)
    with pytest.raises(AssertionError):
        assert_equivalent(case, direct_answer(direct), batched_answer(answers[0]))
