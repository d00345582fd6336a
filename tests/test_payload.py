"""Bad input: a clear 4xx JSON error naming the item and field, and nothing runs."""

from __future__ import annotations

import pytest
from django.test import Client

from test_project.articles.models import Article
from tests.helpers import BATCH_URL, post_batch

pytestmark = pytest.mark.django_db

CREATE = {"method": "post", "url": "/api/articles/", "body": {"title": "must not exist"}}


def _error(response, status: int = 400) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    (problem,) = response.json()["errors"]
    return problem


@pytest.mark.parametrize(("raw", "field", "words"), [
    (b"not json", "body", "not valid JSON"),
    (b"\xff\xfe", "body", "not valid JSON"),
    (b"[1, 2]", "batch", '"batch" list'),
    (b'{"requests": []}', "batch", '"batch" list'),
    (b'{"batch": {}}', "batch", "must be a list"),
    (b'{"batch": []}', "batch", "at least one"),
    (b'{"batch": [{"method": "get", "url": "/views/"}], "extra": 1}', "extra",
     "Unknown top-level"),
])
def test_bad_documents(client: Client, raw: bytes, field: str, words: str) -> None:
    response = client.post(BATCH_URL, raw, content_type="application/json")
    problem = _error(response)
    assert problem["index"] is None
    assert problem["field"] == field
    assert words in problem["message"]


@pytest.mark.parametrize(("item", "field", "words"), [
    ("GET /", None, "JSON object"),
    ({"url": "/views/"}, "method", "method is missing"),
    ({"method": "FETCH", "url": "/views/"}, "method", "'FETCH'"),
    ({"method": 1, "url": "/views/"}, "method", "use one of GET"),
    ({"method": "get"}, "url", "url is required"),
    ({"method": "get", "url": ""}, "url", "url is required"),
    ({"method": "get", "url": "views/"}, "url", "must be a path"),
    ({"method": "get", "url": "ftp://testserver/x"}, "url", "http or https"),
    ({"method": "get", "url": "http://evil.example.com/views/"}, "url", "ALLOWED_HOSTS"),
    ({"method": "get", "url": "/views/", "headers": ["a"]}, "headers", "object of strings"),
    ({"method": "get", "url": "/views/", "headers": {"X-A": 1}}, "headers.X-A", "string"),
    ({"method": "get", "url": "/views/", "headers": {"X-A": "a\r\nX-B: b"}}, "headers.X-A",
     "CR, LF"),
    ({"method": "get", "url": "/views/", "headers": {"Bad Name": "x"}}, "headers.Bad Name",
     "not a valid HTTP header name"),
    ({"method": "get", "url": "/views/", "headers": {"Cookie": "sessionid=x"}},
     "headers.Cookie", "may not set"),
    ({"method": "post", "url": "/views/", "body": 12}, "body", "not a number"),
    ({"method": "get", "url": "/views/", "nme": "x"}, "nme", "Unknown field"),
    ({"method": "post", "url": "/api/v1/batch/", "body": {"batch": []}}, "url", "nested"),
    ({"method": "post", "url": "http://testserver/api/v1/batch/"}, "url", "nested"),
])
def test_bad_items_name_index_and_field(client: Client, articles, item, field, words) -> None:
    response = post_batch(client, [CREATE, item])
    problem = _error(response)
    assert problem["index"] == 1
    assert problem["field"] == field
    assert words in problem["message"]
    assert not Article.objects.filter(title="must not exist").exists()


def test_every_bad_item_is_reported(client: Client) -> None:
    response = post_batch(client, [{"method": "get"}, {"url": "/"}, {"method": "get",
                                                                    "url": "/views/"}])
    assert response.status_code == 400
    assert [(p["index"], p["field"]) for p in response.json()["errors"]] == [(0, "url"),
                                                                             (1, "method")]


def test_more_than_max_limit(client: Client, settings) -> None:
    settings.BATCH_REQUESTS = {"MAX_LIMIT": 2}
    response = post_batch(client, [CREATE] * 3)
    problem = _error(response)
    assert problem["field"] == "batch" and "limit is 2" in problem["message"]
    assert not Article.objects.exists()


def test_too_large_body_is_413(client: Client, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = post_batch(client, [{"method": "post", "url": "/views/echo/", "body": "x" * 200}])
    assert _error(response, 413)["field"] == "body"


def test_absolute_url_to_an_allowed_host_runs(client: Client) -> None:
    response = post_batch(client, [{"method": "get", "url": "http://localhost/views/whoami/"}])
    assert response.status_code == 200
    assert '"host": "localhost"' in response.json()["batch"][0]["body"]


def test_unknown_url_is_a_404_item(client: Client) -> None:
    response = post_batch(client, [{"method": "get", "url": "/no/such/page/"}])
    assert response.json()["batch"][0]["status_code"] == 404
