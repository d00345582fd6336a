"""The batch endpoint's contract: request and response shapes, ordering, timing headers."""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client

from test_project.articles.models import Article
from tests.helpers import BATCH_URL, batch_items, post_batch

pytestmark = pytest.mark.django_db


def test_items_answer_in_request_order(client: Client, articles) -> None:
    items = batch_items(client, [
        {"method": "get", "url": "/views/"},
        {"method": "GET", "url": f"/views/articles/{articles[2].pk}/"},
        {"method": "get", "url": "/views/articles/999999/"},
    ])
    assert [i["status_code"] for i in items] == [200, 200, 404]
    assert items[0]["body"] == "Success!"
    assert json.loads(items[1]["body"])["title"] == "Bob only"
    assert items[2]["reason_phrase"] == "Not Found"


def test_item_shape(client: Client) -> None:
    (item,) = batch_items(client, [{"method": "get", "url": "/api/ping/"}])
    assert set(item) == {"status_code", "reason_phrase", "headers", "body"}
    assert item["reason_phrase"] == "OK"
    assert item["headers"]["Content-Type"] == "application/json"
    assert json.loads(item["body"]) == {"pong": True}


def test_post_with_object_body_and_token(client: Client, alice, alice_token) -> None:
    items = batch_items(
        client,
        [
            {"method": "post", "url": "/api/articles/", "body": {"title": "From a batch"}},
            {"method": "get", "url": "/api/articles/?search=batch"},
        ],
        HTTP_AUTHORIZATION=f"Token {alice_token}",
    )
    assert items[0]["status_code"] == 201, items[0]
    assert Article.objects.get(title="From a batch").author == alice
    assert [a["title"] for a in json.loads(items[1]["body"])] == ["From a batch"]


def test_string_body_is_sent_as_is_with_its_content_type(client: Client) -> None:
    (item,) = batch_items(client, [{
        "method": "post", "url": "/views/echo/", "body": "a=1&b=two",
        "headers": {"Content-Type": "application/x-www-form-urlencoded", "X-Custom": "yes"},
    }])
    echoed = json.loads(item["body"])
    assert echoed["content_type"] == "application/x-www-form-urlencoded"
    assert echoed["post"] == {"a": ["1"], "b": ["two"]}
    assert echoed["x_custom"] == "yes"


def test_body_without_content_type_gets_the_default(client: Client, settings) -> None:
    settings.BATCH_REQUESTS = {"DEFAULT_CONTENT_TYPE": "text/plain"}
    (item,) = batch_items(client, [{"method": "post", "url": "/views/echo/", "body": "hi"}])
    assert json.loads(item["body"])["content_type"] == "text/plain"


def test_item_headers_belong_to_their_item(client: Client, alice_token) -> None:
    items = batch_items(client, [
        {"method": "get", "url": "/api/me/",
         "headers": {"Authorization": f"Token {alice_token}", "X-Custom": "first"}},
        {"method": "get", "url": "/api/me/"},
        {"method": "get", "url": "/views/whoami/"},
    ])
    assert items[0]["status_code"] == 200
    assert json.loads(items[0]["body"])["username"] == "alice"
    assert items[1]["status_code"] in (401, 403)
    assert json.loads(items[2]["body"])["x_custom"] is None


def test_duration_headers_and_server_timing(client: Client) -> None:
    response = post_batch(client, [{"method": "get", "url": "/views/"},
                                   {"method": "get", "url": "/api/ping/"}])
    total = response["batch_requests.duration"]
    assert float(total) > 0 and len(total.split(".")[1]) == 6
    timing = response["Server-Timing"]
    assert timing.startswith("batch;dur=") and "sub0;dur=" in timing and "sub1;dur=" in timing
    for item in response.json()["batch"]:
        assert 0 < float(item["headers"]["batch_requests.duration"]) <= float(total)


def test_duration_header_can_be_renamed_or_turned_off(client: Client, settings) -> None:
    settings.BATCH_REQUESTS = {"DURATION_HEADER_NAME": "X-Took"}
    response = post_batch(client, [{"method": "get", "url": "/views/"}])
    assert "X-Took" in response and "X-Took" in response.json()["batch"][0]["headers"]
    settings.BATCH_REQUESTS = {"ADD_DURATION_HEADER": False, "SERVER_TIMING": False}
    response = post_batch(client, [{"method": "get", "url": "/views/"}])
    assert "X-Took" not in response and "batch_requests.duration" not in response
    assert "Server-Timing" not in response
    assert "batch_requests.duration" not in response.json()["batch"][0]["headers"]


def test_deserialize_responses(client: Client, settings) -> None:
    settings.BATCH_REQUESTS = {"DESERIALIZE_RESPONSES": True}
    items = batch_items(client, [{"method": "get", "url": "/api/ping/"},
                                 {"method": "get", "url": "/views/"}])
    assert items[0]["body"] == {"pong": True}
    assert items[1]["body"] == "Success!"


def test_get_is_405_with_allow(client: Client) -> None:
    response = client.get(BATCH_URL)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["errors"][0]["message"].startswith("Method GET is not allowed")


@pytest.mark.parametrize(("url", "expected_body", "encoding"), [
    ("/views/binary/", bytes(range(256)), "base64"),
    ("/views/file/", b"file-content-\x00\x01", "base64"),
    ("/views/stream/", b"".join(b"chunk-%d\n" % i for i in range(5)), None),
    ("/views/latin1/", "café olé".encode(), None),
])
def test_bodies_of_every_kind_serialize(client: Client, url, expected_body, encoding) -> None:
    (item,) = batch_items(client, [{"method": "get", "url": url}])
    assert item["status_code"] == 200
    assert item.get("body_encoding") == encoding
    body = base64.b64decode(item["body"]) if encoding else item["body"].encode()
    assert body == expected_body


def test_template_response_is_rendered(client: Client, alice) -> None:
    client.force_login(alice)
    (item,) = batch_items(client, [{"method": "get", "url": "/views/template/"}])
    assert item["status_code"] == 200
    assert "Hello, alice!" in item["body"]


def test_head_has_no_body(client: Client) -> None:
    (item,) = batch_items(client, [{"method": "head", "url": "/views/"}])
    assert item["status_code"] == 200 and item["body"] == ""


def test_sub_response_cookies_reach_the_client(client: Client) -> None:
    response = post_batch(client, [{"method": "get", "url": "/views/set-cookie/"}])
    assert response.cookies["flavour"].value == "chocolate"
    assert response.cookies["flavour"]["httponly"] is True
    assert "Set-Cookie" not in response.json()["batch"][0]["headers"]


@pytest.mark.parametrize("executor", [None, "batch_requests.concurrent.executor.AsyncExecutor"])
def test_too_large_sub_responses_become_error_items(client: Client, settings, executor) -> None:
    settings.BATCH_REQUESTS = {"MAX_RESPONSE_SIZE": 20} | (
        {"EXECUTE_PARALLEL": True, "CONCURRENT_EXECUTOR": executor} if executor else {})
    items = batch_items(client, [
        {"method": "get", "url": "/views/"},          # 8 bytes
        {"method": "get", "url": "/views/stream/"},   # 40 bytes, streamed
        {"method": "get", "url": "/views/binary/"},   # 256 bytes
    ])
    assert [i["status_code"] for i in items] == [200, 502, 502]
    assert "MAX_RESPONSE_SIZE (20 bytes)" in items[1]["body"]


@pytest.mark.parametrize("parallel", [False, True])
def test_the_batch_requests_urlconf_is_kept(settings, parallel) -> None:
    # Each item's handler sets the urlconf (ROOT_URLCONF, or what a middleware chose); once
    # the batch has run, the batch request's own is back for the rest of its response.
    from django.test import RequestFactory
    from django.urls import get_urlconf, set_urlconf

    from batch_requests.views import handle_batch_requests

    settings.BATCH_REQUESTS = {"EXECUTE_PARALLEL": parallel}
    request = RequestFactory().post("/api/v1/batch/", json.dumps({"batch": [
        {"method": "get", "url": "/views/whoami/"}] * 3}), content_type="application/json")
    set_urlconf("tests.legacy.urls")  # as a middleware setting request.urlconf would
    try:
        response = handle_batch_requests(request)
        assert get_urlconf() == "tests.legacy.urls"
    finally:
        set_urlconf(None)
    assert [i["status_code"] for i in json.loads(response.content)["batch"]] == [200] * 3
