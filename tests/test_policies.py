"""Failure policies (``on_error``, ``atomic``), the batch signals and the log line."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

from batch_requests.signals import batch_finished, batch_started
from test_project.articles.models import Article
from tests.helpers import post_batch

pytestmark = pytest.mark.django_db


def _create(title: str) -> dict:
    return {"method": "post", "url": "/api/articles/", "body": {"title": title}}


FAILING = {"method": "post", "url": "/api/articles/", "body": {"title": ""}}  # 400


def _run(items: list[dict], token: str, **fields) -> dict:
    response = post_batch(Client(), {"batch": items, **fields},
                          HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200, response.content
    return response.json()


def test_on_error_continue_is_the_default(alice_token) -> None:
    body = _run([_create("one"), FAILING, _create("two")], alice_token)
    assert [i["status_code"] for i in body["batch"]] == [201, 400, 201]
    assert set(Article.objects.values_list("title", flat=True)) == {"one", "two"}


def test_on_error_stop_runs_nothing_after_a_failure(alice_token) -> None:
    body = _run([_create("one"), FAILING, _create("two")], alice_token, on_error="stop")
    assert [i["status_code"] for i in body["batch"]] == [201, 400, 424]
    assert "request 1 failed with status 400" in body["batch"][2]["body"]
    assert list(Article.objects.values_list("title", flat=True)) == ["one"]  # not rolled back


def test_atomic_rolls_everything_back(alice_token) -> None:
    body = _run([_create("one"), _create("two"), FAILING, _create("three")], alice_token,
                atomic=True)
    assert [i["status_code"] for i in body["batch"]] == [201, 201, 400, 424]
    assert body["atomic"] == {"committed": False, "failed_index": 2}
    assert not Article.objects.exists()


def test_atomic_commits_when_all_succeed(alice_token) -> None:
    body = _run([_create("one"), {"method": "get", "url": "/api/articles/"}], alice_token,
                atomic=True)
    assert body["atomic"] == {"committed": True, "failed_index": None}
    assert [a["title"] for a in json.loads(body["batch"][1]["body"])] == ["one"]
    assert list(Article.objects.values_list("title", flat=True)) == ["one"]


def test_atomic_ignores_the_parallel_setting(settings, alice_token) -> None:
    settings.BATCH_REQUESTS = {"EXECUTE_PARALLEL": True}
    body = _run([_create("one"), FAILING], alice_token, atomic=True)
    assert body["atomic"]["committed"] is False
    assert not Article.objects.exists()


@pytest.mark.parametrize(("fields", "field"), [
    ({"atomic": "yes"}, "atomic"), ({"on_error": "halt"}, "on_error")])
def test_bad_policy_fields(fields, field) -> None:
    response = post_batch(Client(), {"batch": [_create("x")], **fields})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert not Article.objects.exists()


def test_signals_and_log_line(caplog) -> None:
    seen: list[tuple] = []

    def started(sender, request, subrequests, **kwargs):
        seen.append(("started", [s.path for s in subrequests]))

    def finished(sender, request, results, duration, **kwargs):
        seen.append(("finished", [r.status_code for r in results], duration > 0))

    batch_started.connect(started)
    batch_finished.connect(finished)
    caplog.set_level(logging.INFO, logger="batch_requests")
    try:
        post_batch(Client(), [{"method": "get", "url": "/views/"},
                              {"method": "get", "url": "/nowhere/"}])
        post_batch(Client(), [{"method": "nope", "url": "/views/"}])  # refused: no signals
    finally:
        batch_started.disconnect(started)
        batch_finished.disconnect(finished)
    assert seen == [("started", ["/views/", "/nowhere/"]), ("finished", [200, 404], True)]
    lines = [r.getMessage() for r in caplog.records if r.name == "batch_requests"]
    assert len(lines) == 1
    assert lines[0].startswith("batch of 2 requests, SequentialExecutor, ")
    assert lines[0].endswith("statuses 200 404")
