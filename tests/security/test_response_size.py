"""The batch response is bounded by MAX_BATCH_RESPONSE_SIZE, whatever JSON escaping does.

A body of control bytes takes 6 bytes a byte as JSON text (``\\u0001``); such a body goes as
base64, and items that do not fit in the limit answer a 502 item that says the request ran.
"""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client

from test_project.articles.models import Article
from tests.helpers import post_batch

LIMIT = 1_000_000


def big_text(size: int, byte: int, name: str | None = None) -> dict:
    item = {"method": "get", "url": f"/attack/big-text/?size={size}&byte={byte}"}
    return item | ({"name": name} if name else {})


@pytest.fixture
def limit(settings) -> int:
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "MAX_BATCH_RESPONSE_SIZE": LIMIT}
    return LIMIT


def assert_left_out(item: dict, status: int, limit: int) -> None:
    """A 502 item whose JSON body says the request ran, with its status, and why it is out."""
    assert item["status_code"] == 502 and item["reason_phrase"] == "Bad Gateway"
    assert "body_encoding" not in item
    body = item["body"]  # a JSON value with DESERIALIZE_RESPONSES, like any JSON body
    error = body if isinstance(body, dict) else json.loads(body)
    assert error["ran"] is True and error["original_status_code"] == status
    assert f"ran and answered {status}" in error["error"]
    assert f"MAX_BATCH_RESPONSE_SIZE ({limit} bytes)" in error["error"]


@pytest.mark.django_db
@pytest.mark.parametrize("atomic", [False, True])
def test_control_byte_bodies_cannot_multiply_the_response(client: Client, settings, limit,
                                                          atomic) -> None:
    # Six bodies of 300 kB of 0x01: 1.8 MB each as JSON text (10.8 MB in all), 400 kB as
    # base64; two fit in the 1 MB limit, the rest are left out.
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "ALLOW_ANONYMOUS_ATOMIC": True}
    items = [big_text(300_000, 1, name=f"part-{i}") for i in range(6)]
    response = post_batch(client, {"batch": items, "atomic": atomic} if atomic else items)
    assert response.status_code == 200
    assert len(response.content) <= limit
    body = response.json()
    answered = body["batch"]
    assert [i["name"] for i in answered] == [f"part-{i}" for i in range(6)]
    assert [i["status_code"] for i in answered] == [200, 200, 502, 502, 502, 502]
    for item in answered[:2]:
        assert item["body_encoding"] == "base64"
        assert base64.b64decode(item["body"]) == b"\x01" * 300_000
    for item in answered[2:]:
        assert_left_out(item, 200, limit)
    if atomic:  # the requests ran and were committed; only their responses are left out
        assert body["atomic"] == {"committed": True, "failed_index": None}


@pytest.mark.parametrize("byte", [0, 1, 0x1F])
def test_a_control_byte_body_comes_back_base64(client: Client, byte: int) -> None:
    response = post_batch(client, [big_text(10_000, byte)])
    (item,) = response.json()["batch"]
    assert item["status_code"] == 200 and item["body_encoding"] == "base64"
    assert base64.b64decode(item["body"]) == bytes([byte]) * 10_000
    assert len(response.content) < 10_000 * 4 // 3 + 1_000  # not 60 kB of "\u0001"


@pytest.mark.django_db
def test_ordinary_text_and_json_stay_text(client: Client, articles) -> None:
    items = post_batch(client, [
        {"method": "get", "url": "/views/"},
        {"method": "get", "url": "/api/ping/"},
        {"method": "get", "url": "/api/articles/"},
        big_text(10_000, ord("a")),
        big_text(3, 1),  # a short body: JSON text is no larger than base64 with its field
        big_text(3_000, 2),
    ]).json()["batch"]
    assert [i.get("body_encoding") for i in items] == [None] * 5 + ["base64"]
    assert items[0]["body"] == "Success!"
    assert json.loads(items[1]["body"]) == {"pong": True}
    assert [a["title"] for a in json.loads(items[2]["body"])] == [a.title for a in articles]
    assert items[3]["body"] == "a" * 10_000
    assert items[4]["body"] == "\x01" * 3
    assert base64.b64decode(items[5]["body"]) == b"\x02" * 3_000


@pytest.mark.django_db
def test_non_ascii_text_stays_text_at_its_utf8_size(client: Client, alice) -> None:
    text = "\u4e2d\u6587 caf\u00e9 \U0001f600 " * 300
    article = Article.objects.create(title="\u00e9t\u00e9", body=text, author=alice)
    response = post_batch(client, [{"method": "get", "url": f"/api/articles/{article.pk}/"},
                                   {"method": "get", "url": "/views/latin1/"}])
    drf, latin1 = response.json()["batch"]
    assert "body_encoding" not in drf and "body_encoding" not in latin1
    assert json.loads(drf["body"])["body"] == text
    assert latin1["body"] == "caf\u00e9 ol\u00e9"
    # Written as UTF-8, not as \uXXXX escapes (6 or 12 bytes a character).
    assert text.encode() in response.content and "caf\u00e9 ol\u00e9".encode() in response.content
    assert len(response.content) < len(text.encode()) + 2_000


def _exact_limit_cases():
    return [
        pytest.param(big_text(5_000, ord("a")), False, id="text"),
        pytest.param(big_text(5_000, 1), False, id="base64"),
        pytest.param(big_text(5_000, ord('"')), False, id="quotes"),
        pytest.param(big_text(5_000, ord("\n")), False, id="newlines"),
        pytest.param(big_text(5_000, 0xFF), False, id="not-utf-8"),
        pytest.param({"method": "post", "url": "/views/echo/", "body": "\u00e9\"\x01" * 900},
                     False, id="json-text"),
        pytest.param({"method": "post", "url": "/views/echo/", "body": "\u00e9\"\x01" * 900},
                     True, id="json-value"),
        # Longer than serialize._SHORT_TEXT: counted on the bytes, not escaped.
        pytest.param(big_text(40_000, ord("a")), False, id="long-text"),
        pytest.param({"method": "post", "url": "/views/echo/", "body": "\u00e9\"\x01" * 9000},
                     False, id="long-json-text"),
    ]


@pytest.mark.parametrize(("last", "deserialize"), _exact_limit_cases())
def test_the_limit_is_exact(client: Client, settings, last: dict, deserialize: bool) -> None:
    """An item fits when the whole response is at most the limit, not a byte more: the sizes
    counted for headers, text, base64 and JSON values are those of the encoded response."""
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "DESERIALIZE_RESPONSES": deserialize}
    items = [{"method": "get", "url": "/views/", "name": "first"}, last | {"name": "last"}]
    whole = post_batch(client, items)
    size = len(whole.content)
    assert [i["status_code"] for i in whole.json()["batch"]] == [200, 200]

    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "MAX_BATCH_RESPONSE_SIZE": size}
    same = post_batch(client, items)
    assert [i["status_code"] for i in same.json()["batch"]] == [200, 200]
    assert len(same.content) == size

    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "MAX_BATCH_RESPONSE_SIZE": size - 1}
    short = post_batch(client, items)
    first, left_out = short.json()["batch"]
    assert first["status_code"] == 200 and first["body"] == "Success!"
    assert left_out["name"] == "last"
    assert_left_out(left_out, 200, size - 1)
    assert len(short.content) <= size - 1


@pytest.mark.django_db
def test_a_left_out_write_ran(client: Client, limit, alice_token) -> None:
    """The response of a write that does not fit is left out, the write is not undone, and
    the item says so (status 201): a client must not send it again blindly."""
    items = post_batch(client, [
        {"method": "post", "url": "/api/articles/", "name": "create",
         "body": {"title": "long", "body": "x" * (LIMIT + 1)}},
        {"method": "get", "url": "/api/ping/", "name": "ping"},
    ], HTTP_AUTHORIZATION=f"Token {alice_token}").json()["batch"]
    assert items[0]["name"] == "create"
    assert_left_out(items[0], 201, limit)
    assert Article.objects.filter(title="long").count() == 1
    # A later item no larger than the error item that would replace it is still sent.
    assert items[1]["status_code"] == 200 and json.loads(items[1]["body"]) == {"pong": True}


def test_every_later_large_item_is_left_out(client: Client, limit) -> None:
    response = post_batch(client, [big_text(600_000, ord("a")), big_text(600_000, ord("b")),
                                   big_text(100_000, ord("c"))])
    assert len(response.content) <= limit
    items = response.json()["batch"]
    assert [i["status_code"] for i in items] == [200, 502, 502]
    assert items[0]["body"] == "a" * 600_000
    assert_left_out(items[1], 200, limit)
    assert_left_out(items[2], 200, limit)
