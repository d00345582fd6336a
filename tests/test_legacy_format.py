"""What the 2015 app's users and clients do keeps working (issue 13, section 1).

A. ``from batch_requests.settings import br_settings``: the 2015 settings object, read live,
   with an assignable ``executor`` that the batch view then uses.
B. A bare JSON list of requests (the 2015 wire format) is answered in the 2015 format: a bare
   list, the duration in whole seconds, the 2015 errors in its words. It is only another
   envelope: every check and limit of ``{"batch": [...]}`` applies to it.
C. Header names written with "_" (``content_type``, ``X_CUSTOM``) are the same headers with
   "-"; the headers an item may never set stay protected in every spelling.

The vendored 2015 suite itself runs in tests/legacy/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from batch_requests.concurrent.base import SequentialExecutor
from batch_requests.concurrent.executor import ThreadBasedExecutor, get_executor
from batch_requests.settings import br_settings
from test_project.articles.models import Article
from tests.helpers import BATCH_URL, post_batch

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
DURATION = "batch_requests.duration"
WHOAMI = {"method": "get", "url": "/views/whoami/"}


@pytest.fixture
def write(alice_token: str) -> dict:
    """A write that happens if the batch runs: an Article titled "legacy"."""
    return {"method": "post", "url": "/api/articles/", "body": {"title": "legacy"},
            "headers": {"Authorization": f"Token {alice_token}"}}


def post_list(client: Client, payload: Any, **extra: Any):
    """POST any JSON document as it is: a bare list is the 2015 format."""
    return client.post(BATCH_URL, json.dumps(payload), content_type="application/json",
                       **extra)


def _nothing_ran() -> None:
    assert not Article.objects.filter(title="legacy").exists()


def _text_error(response, status: int = 400) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    return response.content.decode()


# A. br_settings


def test_br_settings_reads_the_live_settings(settings) -> None:
    settings.BATCH_REQUESTS = {"MAX_LIMIT": 3, "DURATION_HEADER_NAME": "x-took"}
    assert br_settings.MAX_LIMIT == 3
    assert br_settings.DURATION_HEADER_NAME == "x-took"
    assert br_settings.DEFAULT_CONTENT_TYPE == "application/json"  # a default
    settings.BATCH_REQUESTS = {"MAX_LIMIT": 7}
    assert br_settings.MAX_LIMIT == 7
    assert br_settings.user_settings == {"MAX_LIMIT": 7}
    assert br_settings.defaults["MAX_LIMIT"] == 20


def test_br_settings_refuses_unknown_names_and_writes_to_keys() -> None:
    with pytest.raises(AttributeError, match="Invalid API setting: 'NOPE'"):
        br_settings.NOPE  # noqa: B018
    with pytest.raises(AttributeError, match="settings.BATCH_REQUESTS"):
        br_settings.MAX_LIMIT = 3


class Recording(SequentialExecutor):
    """Runs in order, in the request's thread, and counts the batches it ran."""

    def __init__(self, num_workers: int = 1) -> None:
        super().__init__(num_workers)
        self.batches = 0

    def execute(self, subrequests, run, timeout=None):
        self.batches += 1
        return super().execute(subrequests, run, timeout)


def test_an_assigned_executor_runs_the_batches(client: Client, settings) -> None:
    original = br_settings.executor
    assert original is get_executor()  # what the settings select
    recording = Recording()
    br_settings.executor = recording
    try:
        assert br_settings.executor is recording
        assert post_list(client, [WHOAMI]).status_code == 200
        assert post_batch(client, [WHOAMI]).status_code == 200
        assert recording.batches == 2
    finally:
        br_settings.executor = original  # what the 2015 suite's tearDown does
    # Restoring what was read leaves no assignment behind: the settings choose again.
    settings.BATCH_REQUESTS = {"EXECUTE_PARALLEL": True, "NUM_WORKERS": 2}
    assert isinstance(br_settings.executor, ThreadBasedExecutor)
    assert post_list(client, [WHOAMI]).status_code == 200
    assert recording.batches == 2


def test_an_assignment_can_be_deleted(settings) -> None:
    settings.BATCH_REQUESTS = {}
    br_settings.executor = Recording()
    del br_settings.executor
    assert isinstance(br_settings.executor, SequentialExecutor)
    assert not isinstance(br_settings.executor, Recording)


def test_only_an_executor_can_be_assigned() -> None:
    with pytest.raises(TypeError, match="BaseExecutor"):
        br_settings.executor = object()
    assert not isinstance(br_settings.executor, Recording)


def test_the_settings_module_imports_without_configured_settings() -> None:
    """Importing it touches no setting: it is only read when an attribute is."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = ("from batch_requests.settings import br_settings\n"
            "from django.conf import settings\n"
            "assert not settings.configured\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# B. The 2015 wire format


def test_a_bare_list_is_answered_with_a_bare_list(client: Client) -> None:
    response = post_list(client, [
        WHOAMI,
        {"method": "post", "url": "/views/echo/", "body": "hi",
         "headers": {"content_type": "text/plain"}},
    ])
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    items = response.json()
    assert isinstance(items, list) and len(items) == 2
    assert [item["status_code"] for item in items] == [200, 200]
    assert {"status_code", "reason_phrase", "headers", "body"} == set(items[0])
    assert json.loads(items[1]["body"])["body"] == "hi"
    # The duration in whole seconds, as 2015 sent it: a number in each item, the batch's
    # header a string of digits (its suite reads it with int()).
    assert all(type(item["headers"][DURATION]) is int for item in items)
    assert response[DURATION].isdigit()


def test_the_batch_envelope_keeps_its_own_format(client: Client) -> None:
    response = post_batch(client, [WHOAMI])
    assert response.status_code == 200
    (item,) = response.json()["batch"]
    assert isinstance(item["headers"][DURATION], str) and "." in item["headers"][DURATION]
    assert "." in response[DURATION]


def test_an_empty_bare_list_is_answered_with_an_empty_list(client: Client) -> None:
    response = post_list(client, [])
    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize(("payload", "text"), [
    ({"method": "get", "url": "/views/whoami/"},
     "The body of batch request should always be list!"),
    ([{"body": "/views"}], "Request definition should have url, method defined."),
    ([{"method": "get"}], "Request definition should have url, method defined."),
    ([{"url": "/views/whoami/"}], "Request definition should have url, method defined."),
    ([{"method": "select", "url": "/views/whoami/"}], "Invalid request method."),
    ([{"method": 7, "url": "/views/whoami/"}], "Invalid request method."),
    # The first request in error is the one answered, as in 2015.
    ([{"method": "select", "url": "/x/"}, {"method": "get"}], "Invalid request method."),
])
def test_the_2015_errors_keep_their_words(client: Client, write, payload, text) -> None:
    if isinstance(payload, list):
        payload = [write, *payload]
    assert _text_error(post_list(client, payload)) == text
    _nothing_ran()


def test_the_2015_max_limit_error(client: Client, settings, write) -> None:
    settings.BATCH_REQUESTS = {"MAX_LIMIT": 2}
    response = post_list(client, [write, WHOAMI, WHOAMI])
    assert _text_error(response) == "You can batch maximum of 2 requests."
    _nothing_ran()


def _deep(levels: int) -> Any:
    body: Any = []
    for _ in range(levels):
        body = [body]
    return body


@pytest.mark.parametrize(("item", "words"), [
    ({"method": "post", "url": "/api/v1/batch/", "body": [WHOAMI]}, "batches cannot be nested"),
    ({"method": "post", "url": "http://testserver/api/v1/batch/", "body": [WHOAMI]},
     "batches cannot be nested"),
    ({"method": "post", "url": "/api/v1/batch/", "body": {"batch": [WHOAMI]}},
     "batches cannot be nested"),
    ({**WHOAMI, "headers": {f"X-H{i}": "v" for i in range(101)}}, "(MAX_HEADERS)"),
    ({**WHOAMI, "headers": {"X_Big": "v" * 9000}}, "(MAX_HEADER_SIZE)"),
    ({**WHOAMI, "headers": {"COOKIE": "sessionid=x"}}, "may not set 'COOKIE'"),
    ({**WHOAMI, "headers": {"cookie": "sessionid=x"}}, "may not set 'cookie'"),
    ({"method": "post", "url": "/views/echo/", "body": _deep(100)}, "nested too deeply"),
    ({**WHOAMI, "url": "http://evil.example.com/views/whoami/"}, "ALLOWED_HOSTS"),
    ({**WHOAMI, "nme": "x"}, "Unknown field"),
])
def test_a_bare_list_keeps_every_limit(client: Client, write, item, words) -> None:
    text = _text_error(post_list(client, [write, item]))
    assert text.startswith("Request 1: ")
    assert words in text
    _nothing_ran()


def test_a_bare_list_keeps_the_reference_limit(client: Client, settings, write) -> None:
    settings.BATCH_REQUESTS = {"MAX_REFERENCES": 1}
    text = _text_error(post_list(client, [
        write, {**WHOAMI, "name": "a"},
        {**WHOAMI, "url": "/views/whoami/?h={result=a:$.host}&u={result=a:$.user}"}]))
    assert "MAX_REFERENCES" in text
    _nothing_ran()


def test_a_bare_list_keeps_the_response_size_limit(client: Client, settings) -> None:
    settings.BATCH_REQUESTS = {"MAX_BATCH_RESPONSE_SIZE": 8000}
    big = {"method": "post", "url": "/views/echo/", "body": "x" * 5000}
    response = post_list(client, [big, big])
    assert response.status_code == 200
    assert len(response.content) <= 8000
    assert [item["status_code"] for item in response.json()] == [200, 502]
    assert "MAX_BATCH_RESPONSE_SIZE" in response.json()[1]["body"]


def test_a_bare_list_keeps_the_batch_csrf_rule() -> None:
    """References and a cookie: the batch itself must pass Django's CSRF check."""
    client = Client(enforce_csrf_checks=True)
    client.cookies[django_settings.SESSION_COOKIE_NAME] = "anything"
    response = client.post(BATCH_URL, json.dumps([
        {**WHOAMI, "name": "t"}, {**WHOAMI, "url": "/views/whoami/?h={result=t:$.host}"}]),
        content_type="text/plain")
    assert _text_error(response, 403).startswith("CSRF verification failed")


def test_a_list_of_anything_but_requests_is_refused_as_before(client: Client) -> None:
    response = post_list(client, [WHOAMI, 5])
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "batch"


# C. Header names with "_"

ENVELOPES = {
    "batch": lambda client, items: post_batch(client, items),
    "bare list": post_list,
}


def _items(envelope: str, response) -> list[dict]:
    assert response.status_code == 200, response.content
    data = response.json()
    return data if envelope == "bare list" else data["batch"]


@pytest.mark.parametrize("envelope", ENVELOPES)
@pytest.mark.parametrize("name", ["content_type", "CONTENT_TYPE", "Content_Type"])
def test_an_underscore_is_read_as_a_dash(client: Client, envelope, name) -> None:
    response = ENVELOPES[envelope](client, [
        {"method": "post", "url": "/views/echo/", "body": "a=1",
         "headers": {name: "application/x-www-form-urlencoded", "X_CUSTOM": "custom value"}},
        {**WHOAMI, "headers": {"x_custom": "lower"}},
    ])
    echo, whoami = (json.loads(item["body"]) for item in _items(envelope, response))
    assert echo["content_type"] == "application/x-www-form-urlencoded"
    assert echo["post"] == {"a": ["1"]}
    assert echo["x_custom"] == "custom value"
    assert whoami["x_custom"] == "lower"


@pytest.mark.parametrize("name", ["COOKIE", "cookie", "Cookie"])
def test_cookie_stays_forbidden_in_every_spelling(client: Client, write, name) -> None:
    response = post_batch(client, [write, {**WHOAMI, "headers": {name: "sessionid=x"}}])
    assert response.status_code == 400
    (problem,) = response.json()["errors"]
    assert (problem["index"], problem["field"]) == (1, f"headers.{name}")
    assert "may not set" in problem["message"]
    _nothing_ran()


@pytest.mark.parametrize("envelope", ENVELOPES)
def test_connection_headers_stay_the_batch_requests(client: Client, settings,
                                                    envelope) -> None:
    """Host, X-Forwarded-*: the batch request's, however an item spells them."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.USE_X_FORWARDED_HOST = True
    response = ENVELOPES[envelope](client, [
        {**WHOAMI, "headers": {"X_FORWARDED_PROTO": "https", "HOST": "evil.example.com"}},
        {**WHOAMI, "headers": {"x_forwarded_host": "evil.example.com",
                               "Remote_Addr": "6.6.6.6"}},
    ])
    for item in _items(envelope, response):
        seen = json.loads(item["body"])
        assert (seen["scheme"], seen["host"], seen["remote_addr"]) == (
            "http", "testserver", "127.0.0.1")


@pytest.mark.parametrize(("headers", "field"), [
    ({"Content-Type": "text/plain", "content_type": "text/html"}, "headers.content_type"),
    ({"X_CUSTOM": "a", "x-custom": "b"}, "headers.x-custom"),
    ({"X-Custom": "a", "x-custom": "b"}, "headers.x-custom"),
])
def test_two_spellings_of_one_header_are_refused(client: Client, write, headers,
                                                 field) -> None:
    response = post_batch(client, [write, {**WHOAMI, "headers": headers}])
    assert response.status_code == 400
    (problem,) = response.json()["errors"]
    assert (problem["index"], problem["field"]) == (1, field)
    assert "same header" in problem["message"]
    _nothing_ran()
