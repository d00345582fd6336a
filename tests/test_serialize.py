"""The batch response's encoding: compact UTF-8 JSON, the same bytes with or without orjson.

orjson encodes the answer when it is installed (a dependency on CPython); the standard
library's json is the fallback, and what orjson refuses (integers beyond 64 bits) goes
through it. These tests run each batch twice, once on each encoder, and compare the bytes.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from batch_requests import serialize
from tests.helpers import BATCH_URL, post_batch

MIXED = [
    {"method": "get", "url": "/views/", "name": "plain"},
    {"method": "get", "url": "/api/ping/"},
    {"method": "get", "url": "/views/latin1/"},
    {"method": "get", "url": "/views/binary/"},
    {"method": "get", "url": "/attack/big-text/?size=300&byte=1"},
    {"method": "get", "url": "/attack/big-text/?size=20000&byte=34"},
    {"method": "get", "url": "/attack/big-text/?size=20000&byte=97"},
    {"method": "post", "url": "/views/echo/", "body": "\u4e2d\u6587 \U0001f600 \u2028 \x7f\"\\"},
    {"method": "get", "url": "/no/such/page/"},
    {"method": "get", "url": "/views/", "omit_response_on_success": True},
]


def both_encoders(client: Client, monkeypatch, document, **extra) -> tuple[bytes, bytes]:
    """The batch response's bytes with orjson, then with the standard library's json."""
    assert serialize.orjson is not None, "orjson is a dependency on CPython"
    def post():  # the document as it is: a bare list is the 2015 format
        return client.post(BATCH_URL, json.dumps(document), content_type="application/json",
                           **extra)

    fast = post()
    monkeypatch.setattr(serialize, "orjson", None)
    slow = post()
    monkeypatch.undo()
    assert fast.status_code == slow.status_code == 200, (fast.content, slow.content)
    return fast.content, slow.content


@pytest.fixture
def fixed_durations(settings):
    """No duration header, so two runs of a batch write the same bytes."""
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "ADD_DURATION_HEADER": False}


@pytest.mark.django_db
@pytest.mark.parametrize("deserialize", [False, True])
def test_orjson_and_the_standard_library_write_the_same_bytes(client, settings, monkeypatch,
                                                              fixed_durations, deserialize):
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "DESERIALIZE_RESPONSES": deserialize}
    fast, slow = both_encoders(client, monkeypatch, {"batch": MIXED})
    assert fast == slow
    items = json.loads(fast)["batch"]
    assert len(items) == len(MIXED) and items[0]["name"] == "plain"
    assert items[3]["body_encoding"] == "base64" and items[4]["body_encoding"] == "base64"
    assert items[6]["body"] == "a" * 20000
    assert items[8]["status_code"] == 404 and "body" not in items[9]


@pytest.mark.django_db
def test_atomic_and_2015_answers_are_the_same_bytes_too(client, settings, monkeypatch,
                                                        fixed_durations, alice_token):
    atomic = {"batch": [{"method": "get", "url": "/api/ping/"}], "atomic": True}
    fast, slow = both_encoders(client, monkeypatch, atomic,
                               HTTP_AUTHORIZATION=f"Token {alice_token}")
    assert fast == slow
    assert json.loads(fast)["atomic"] == {"committed": True, "failed_index": None}
    legacy = [{"method": "get", "url": "/views/", "body": "", "headers": {}}]
    fast, slow = both_encoders(client, monkeypatch, legacy)
    assert fast == slow and fast.startswith(b"[{") and fast.endswith(b"}]")


def test_the_answer_is_compact_utf8_json(client):
    response = post_batch(client, [{"method": "get", "url": "/views/latin1/"}])
    assert response["Content-Type"] == "application/json"
    assert response.content.startswith(b'{"batch":[{"status_code":200,"reason_phrase":"OK",')
    assert "caf\u00e9".encode() in response.content  # not \u00e9
    assert b'", "' not in response.content and b'": ' not in response.content


@pytest.mark.parametrize("body", ["[NaN]", '{"x": Infinity}', "-Infinity"])
def test_a_body_that_is_not_json_is_sent_as_text_not_as_a_value(client, settings, body):
    """``json.loads`` reads NaN and Infinity; they are not JSON, so the body stays text
    (as a value, one encoder would write null and the other an invalid NaN)."""
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "DESERIALIZE_RESPONSES": True}
    response = post_batch(client, [{"method": "post", "url": "/attack/raw-json/",
                                    "body": body, "headers": {"Content-Type": "text/plain"}}])
    (item,) = json.loads(response.content, parse_constant=pytest.fail)["batch"]
    assert item["status_code"] == 200 and item["body"] == body


def test_integers_beyond_64_bits_come_back_exactly(client, settings, monkeypatch):
    """orjson refuses them; the standard library writes them (same bytes as the fallback)."""
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "DESERIALIZE_RESPONSES": True,
                               "ADD_DURATION_HEADER": False}
    big = 2**70 + 1
    document = [{"method": "post", "url": "/attack/raw-json/", "body": f'{{"n": {big}}}',
                 "headers": {"Content-Type": "text/plain"}}]
    fast, slow = both_encoders(client, monkeypatch, {"batch": document})
    assert fast == slow
    (item,) = json.loads(fast)["batch"]
    assert item["body"] == {"n": big}
