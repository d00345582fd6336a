"""Hostile batch documents: a clear 400 naming index and field, never a 500, and nothing runs.

Each attack is sent beside a write (item 0, with alice's token) that must not happen.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from batch_requests.exceptions import BatchError, Problem
from batch_requests.payload import BatchSpec
from test_project.articles.models import Article
from tests.helpers import BATCH_URL, batch_items, post_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def write(alice_token: str) -> dict:
    """A write that runs if the batch does: an Article titled "x"."""
    return {"method": "post", "url": "/api/articles/", "body": {"title": "x"},
            "headers": {"Authorization": f"Token {alice_token}"}}


def _raw(client: Client, text: str):
    return client.post(BATCH_URL, text, content_type="application/json")


def _errors(response) -> list[dict]:
    assert response.status_code == 400, response.content
    return response.json()["errors"]


def _places(response) -> list[tuple[int | None, str | None]]:
    return [(e["index"], e["field"]) for e in _errors(response)]


def _nothing_ran() -> None:
    assert not Article.objects.filter(title="x").exists()


def _nested(levels: int, inner: str = "") -> str:
    return "[" * levels + inner + "]" * levels


def _document(*items: str, **fields: str) -> str:
    """A batch document written by hand from JSON texts (json.dumps could not write them)."""
    extra = "".join(f', "{key}": {value}' for key, value in fields.items())
    return '{"batch": [' + ", ".join(items) + "]" + extra + "}"


def _echo(body: str) -> str:
    return '{"method": "post", "url": "/views/echo/", "body": ' + body + "}"


# Item 6: timeout.

@pytest.mark.parametrize("timeout", ["NaN", "Infinity", "1e400", "1e18", "86401", "86400.5"])
def test_timeout_that_is_not_finite_or_is_absurd_is_refused(client: Client, write,
                                                            timeout: str) -> None:
    # Written by hand: 1e400 has no Python float that json.dumps would write back as such.
    response = _raw(client, _document(json.dumps(write), timeout=timeout))
    (error,) = _errors(response)
    assert (error["index"], error["field"]) == (None, "timeout")
    assert "finite number of seconds above 0 and at most 86400" in error["message"]
    _nothing_ran()


def test_timeout_of_a_day_is_accepted_and_capped_by_the_setting(client: Client,
                                                                 write) -> None:
    response = post_batch(client, {"batch": [write], "timeout": 86400})
    assert [i["status_code"] for i in response.json()["batch"]] == [201]
    assert BatchSpec([], timeout=86400).budget(30) == 30
    assert BatchSpec([], timeout=0.5).budget(30) == 0.5


# Item 10: JSON depth.

def test_json_nested_past_the_recursion_limit_is_a_400(client: Client, write) -> None:
    response = _raw(client, _document(json.dumps(write), _echo(_nested(100_000))))
    (error,) = _errors(response)
    assert (error["index"], error["field"]) == (None, "body")
    assert "nested too deeply" in error["message"]
    _nothing_ran()


@pytest.mark.parametrize("body", [
    _nested(98),  # the document: object, "batch", item, then 98 levels = 101
    # Deep enough for the reference scan to reach the recursion limit on the old code.
    _nested(900, '"{result=a:$.id}"'),
])
def test_item_nested_deeper_than_max_json_depth_names_index_and_body(client: Client, write,
                                                                     body: str) -> None:
    response = _raw(client, _document(json.dumps({**write, "name": "a"}), _echo(body)))
    (error,) = _errors(response)
    assert (error["index"], error["field"]) == (1, "body")
    assert "nested too deeply" in error["message"] and "100 levels" in error["message"]
    _nothing_ran()


def test_top_level_field_nested_too_deeply_names_the_field(client: Client, write) -> None:
    response = _raw(client, _document(json.dumps(write), atomic=_nested(100)))
    assert _places(response) == [(None, "atomic")]
    assert "nested too deeply" in _errors(response)[0]["message"]
    _nothing_ran()


def test_item_at_max_json_depth_runs(client: Client) -> None:
    # 3 levels (document, "batch", item) + 97 = 100: allowed.
    body = json.loads(_nested(97))
    (item,) = batch_items(client, [{"method": "post", "url": "/views/echo/", "body": body}])
    assert item["status_code"] == 200


# Item 10: lone surrogates.

@pytest.mark.parametrize(("item", "field"), [
    ({"method": "get", "url": "/views/\ud800"}, "url"),
    ({"method": "post", "url": "/views/echo/", "body": "a\ud800"}, "body"),
    ({"method": "post", "url": "/api/articles/", "body": {"title": "\udc00"}}, "body"),
    ({"method": "post", "url": "/views/echo/", "body": [{"\ud800": 1}]}, "body"),
    ({"method": "get", "url": "/api/me/", "headers": {"Authorization": "Token \ud800"}},
     "headers.Authorization"),
    ({"method": "get", "url": "/views/", "headers": {"X-\ud800": "1"}}, "headers.X-\\ud800"),
    ({"method": "get", "url": "/views/", "name": "a\ud800"}, "name"),
])
def test_lone_surrogate_is_a_400(client: Client, write, item: dict, field: str) -> None:
    # json.dumps writes a lone surrogate as the escape "\ud800", which json.loads accepts.
    response = post_batch(client, [write, item])
    (error,) = _errors(response)
    assert (error["index"], error["field"]) == (1, field)
    assert "lone surrogate" in error["message"] and "not valid Unicode" in error["message"]
    _nothing_ran()


def test_surrogate_pairs_are_ordinary_text(client: Client) -> None:
    # json.dumps escapes an emoji as a pair of surrogates: a character like any other.
    (item,) = batch_items(client, [{"method": "post", "url": "/views/echo/",
                                    "body": {"text": "snow \u2603 smile \U0001f600"}}])
    assert item["status_code"] == 200
    sent = json.loads(json.loads(item["body"])["body"])  # echo answers the raw body
    assert sent == {"text": "snow \u2603 smile \U0001f600"}


# Item 10: whole-string patterns.

@pytest.mark.parametrize(("extra", "field"), [
    ({"headers": {"Cookie\n": "sessionid=x"}}, "headers.Cookie\n"),
    ({"name": "a\n"}, "name"),
])
def test_names_ending_in_a_newline_are_refused(client: Client, write, extra: dict,
                                               field: str) -> None:
    response = post_batch(client, [write, {"method": "get", "url": "/views/", **extra}])
    assert _places(response) == [(1, field)]
    _nothing_ran()


# Item 10: headers per item and header bytes.

@pytest.mark.parametrize("count", [101, 50_000])
def test_more_headers_than_max_headers_is_refused(client: Client, write, count: int) -> None:
    headers = {f"X-H{n}": "1" for n in range(count)}
    response = post_batch(client, [write, {"method": "get", "url": "/views/",
                                           "headers": headers}])
    (error,) = _errors(response)
    assert (error["index"], error["field"]) == (1, "headers")
    assert f"holds {count} headers; the limit is 100 (MAX_HEADERS)" in error["message"]
    _nothing_ran()


def test_header_larger_than_max_header_size_counts_utf8_bytes(client: Client, write) -> None:
    # 5 bytes of name + 4093 two-byte characters = 8191 bytes, though only 4098 characters.
    response = post_batch(client, [write, {"method": "get", "url": "/views/",
                                           "headers": {"X-Big": "\u00e9" * 4093}}])
    (error,) = _errors(response)
    assert (error["index"], error["field"]) == (1, "headers.X-Big")
    assert "8191 bytes" in error["message"] and "8190 (MAX_HEADER_SIZE)" in error["message"]
    _nothing_ran()


def test_header_with_a_huge_name_is_refused_with_a_short_field(client: Client, write) -> None:
    name = "X-" + "n" * 10_000
    response = post_batch(client, [write, {"method": "get", "url": "/views/",
                                           "headers": {name: "1"}}])
    (error,) = _errors(response)
    assert error["index"] == 1
    assert error["field"] == "headers." + name[:60] + "..."
    assert "MAX_HEADER_SIZE" in error["message"] and len(error["message"]) < 250
    _nothing_ran()


def test_headers_at_the_limits_run(client: Client) -> None:
    headers = {f"X-H{n}": "1" for n in range(99)}
    headers["X-Big"] = "\u00e9" * 4092 + "a"  # 5 + 8184 + 1 = 8190 bytes
    (item,) = batch_items(client, [{"method": "get", "url": "/views/", "headers": headers}])
    assert item["status_code"] == 200


def test_header_limits_follow_the_settings(client: Client, write, settings) -> None:
    # The write's "Authorization: Token <40 characters>" is 59 bytes.
    settings.BATCH_REQUESTS = {"MAX_HEADERS": 2, "MAX_HEADER_SIZE": 60}
    response = post_batch(client, [write,
                                   {"method": "get", "url": "/views/",
                                    "headers": {"A": "1", "B": "2", "C": "3"}},
                                   {"method": "get", "url": "/views/",
                                    "headers": {"X-Big": "a" * 56}}])
    assert _places(response) == [(1, "headers"), (2, "headers.X-Big")]
    assert "61 bytes" in _errors(response)[1]["message"]
    _nothing_ran()


# Item 10: non-latin-1 header values are legal input.

def test_non_latin1_header_value_answers_as_the_same_bytes_sent_directly(
        client: Client) -> None:
    # A server hands the UTF-8 bytes of "Token ☃" to Django as latin-1 text; DRF refuses the
    # token (403, since the first authenticator, SessionAuthentication, sends no
    # WWW-Authenticate). The item must answer exactly that (it needs the WSGI conversion in
    # subrequest.py).
    direct = client.get("/api/me/",
                        HTTP_AUTHORIZATION="Token \u2603".encode().decode("latin-1"))
    assert direct.status_code == 403
    assert direct.json() == {"detail": "Invalid token."}
    (item,) = batch_items(client, [{"method": "get", "url": "/api/me/",
                                    "headers": {"Authorization": "Token \u2603"}}])
    assert item["status_code"] == direct.status_code
    assert json.loads(item["body"]) == direct.json()


# Item 10: every problem at once.

def test_unknown_top_level_field_does_not_hide_item_problems(client: Client, write) -> None:
    response = post_batch(client, {"batch": [write, {"method": "get"}], "extra": 1,
                                   "on_error": "retry"})
    assert _places(response) == [(None, "extra"), (None, "on_error"), (1, "url")]
    _nothing_ran()


# Bounded error bodies.

def test_error_body_lists_at_most_twenty_problems(client: Client, write) -> None:
    response = post_batch(client, [write] + [{"method": "get"}] * 25)
    body = response.json()
    assert [(e["index"], e["field"]) for e in _errors(response)] == [
        (n, "url") for n in range(1, 21)]
    assert body["more_errors"] == 5
    _nothing_ran()


@pytest.mark.parametrize(("item", "field"), [
    ({"method": "get", "url": "views/" + "a" * 10_000}, "url"),
    ({"method": "X" * 10_000, "url": "/views/"}, "method"),
    ({"method": "get", "url": "/views/", "name": "a" * 10_000}, "name"),
    ({"method": "get", "url": "/views/", "headers": {"Bad Name" + "a" * 10_000: "1"}},
     "headers.Bad Name" + "a" * 52 + "..."),
    ({"method": "get", "url": "/views/", "a" * 10_000: 1}, "a" * 60 + "..."),
])
def test_messages_quote_only_an_excerpt_of_the_input(client: Client, write, item: dict,
                                                     field: str) -> None:
    (error,) = _errors(post_batch(client, [write, item]))
    assert (error["index"], error["field"]) == (1, field)
    assert len(error["message"]) < 250 and "a" * 61 not in error["message"]
    _nothing_ran()


def test_error_messages_and_fields_are_capped(client: Client, write) -> None:
    # graph.py quotes an unknown depends_on name whole: the error body cuts it.
    response = post_batch(client, [write, {"method": "get", "url": "/views/",
                                           "depends_on": "d" * 10_000}])
    (error,) = _errors(response)
    assert (error["index"], error["field"]) == (1, "depends_on")
    assert len(error["message"]) == 500 and error["message"].endswith("...")
    _nothing_ran()
    body = BatchError([Problem("m" * 1000, 3, "f" * 1000)]).as_json()
    assert body == {"errors": [{"message": "m" * 497 + "...", "index": 3,
                                "field": "f" * 117 + "..."}]}
