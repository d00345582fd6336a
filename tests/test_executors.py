"""Parallel executors: overlap, ordering, order of results, budgets, pools.

Overlap is shown by rendezvous, not by timing: items that wait for each other at a barrier
can only all pass if they run at the same time.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django.test import Client

from batch_requests.concurrent.executor import (
    AsyncExecutor,
    ThreadBasedExecutor,
    get_executor,
    waves,
)
from batch_requests.subrequest import SubRequest
from test_project.articles import attack_views
from tests.helpers import batch_items, post_batch

PARALLEL = {
    "thread": "batch_requests.concurrent.executor.ThreadBasedExecutor",
    "async": "batch_requests.concurrent.executor.AsyncExecutor",
}


@pytest.fixture(params=sorted(PARALLEL))
def parallel(request, settings) -> str:
    # One batch may hold WORKERS_PER_BATCH of the pool's workers (default: half of them).
    settings.BATCH_REQUESTS = {"EXECUTE_PARALLEL": True, "NUM_WORKERS": 8,
                               "WORKERS_PER_BATCH": 6,
                               "CONCURRENT_EXECUTOR": PARALLEL[request.param]}
    return request.param


def _barrier_items(parties: int, timeout: float = 5) -> list[dict]:
    name = uuid.uuid4().hex
    return [{"method": "get",
             "url": f"/views/barrier/?parties={parties}&name={name}&timeout={timeout}"}
            ] * parties


def test_sync_views_overlap(parallel) -> None:
    items = batch_items(Client(), _barrier_items(6))
    assert [i["status_code"] for i in items] == [200] * 6


def test_sequential_does_not_overlap(settings) -> None:
    # The negative control of the test above: one at a time, the first waits alone.
    settings.BATCH_REQUESTS = {"EXECUTE_PARALLEL": False}
    items = batch_items(Client(), _barrier_items(2, timeout=0.2))
    assert items[0]["status_code"] == 500


def test_async_views_overlap_on_the_loop(settings) -> None:
    settings.BATCH_REQUESTS = {"EXECUTE_PARALLEL": True, "CONCURRENT_EXECUTOR": PARALLEL["async"],
                               "WORKERS_PER_BATCH": 5}
    name = uuid.uuid4().hex
    items = batch_items(Client(), [
        {"method": "get", "url": f"/views/async-meeting/?parties=5&name={name}"}] * 5)
    assert [i["status_code"] for i in items] == [200] * 5


def test_batch_larger_than_the_pool_completes(settings) -> None:
    settings.BATCH_REQUESTS = {"EXECUTE_PARALLEL": True, "NUM_WORKERS": 2}
    items = batch_items(Client(), [{"method": "get", "url": f"/views/?n={i}"} for i in range(12)])
    assert [i["status_code"] for i in items] == [200] * 12


@pytest.mark.django_db(transaction=True)
def test_writes_keep_sequential_order(parallel, alice_token) -> None:
    items = batch_items(Client(), [
        {"method": "get", "url": "/api/articles/"},
        {"method": "post", "url": "/api/articles/", "body": {"title": "new"}},
        {"method": "get", "url": "/api/articles/"},
        {"method": "get", "url": "/api/me/"},
    ], HTTP_AUTHORIZATION=f"Token {alice_token}")
    assert [i["status_code"] for i in items] == [200, 201, 200, 200]
    assert json.loads(items[0]["body"]) == []
    assert [a["title"] for a in json.loads(items[2]["body"])] == ["new"]
    assert json.loads(items[3]["body"])["username"] == "alice"


def test_results_keep_request_order(parallel) -> None:
    # The first item sleeps longest, so it finishes last.
    items = batch_items(Client(), [
        {"method": "get", "url": f"/views/sleep/?seconds={s}"} for s in (0.3, 0.1, 0.0)])
    assert [json.loads(i["body"])["slept"] for i in items] == [0.3, 0.1, 0.0]
    durations = [float(i["headers"]["batch_requests.duration"]) for i in items]
    assert durations[0] >= 0.3 and durations[1] >= 0.1  # lower bounds only: no timing race


def test_time_budget_answers_504(parallel, settings) -> None:
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "TIMEOUT": 1}
    items = batch_items(Client(), [{"method": "get", "url": "/views/sleep/?seconds=0"},
                                   {"method": "get", "url": "/views/sleep/?seconds=3"}])
    assert [i["status_code"] for i in items] == [200, 504]
    assert "TIMEOUT, 1 s" in items[1]["body"] and "Started" in items[1]["body"]


def test_sequential_budget_does_not_start_late_items(settings) -> None:
    settings.BATCH_REQUESTS = {"TIMEOUT": 0.2}
    items = batch_items(Client(), [{"method": "get", "url": "/views/sleep/?seconds=0.3"},
                                   {"method": "get", "url": "/views/"}])
    assert [i["status_code"] for i in items] == [200, 504]
    # It says which budget ran out, and that the request never started.
    assert "Not run" in items[1]["body"] and "TIMEOUT, 0.2 s" in items[1]["body"]


def test_pool_is_lazy_and_shared(settings) -> None:
    settings.BATCH_REQUESTS = {"EXECUTE_PARALLEL": True, "NUM_WORKERS": 3}
    executor = get_executor()
    assert isinstance(executor, ThreadBasedExecutor) and executor._pool is None
    batch_items(Client(), [{"method": "get", "url": "/views/"}] * 2)
    pool = executor._pool
    batch_items(Client(), [{"method": "get", "url": "/views/"}] * 2)
    assert pool is not None and executor._pool is pool


def test_waves_split_at_writes() -> None:
    subs = [SubRequest(i, m, {}) for i, m in enumerate(
        ["GET", "HEAD", "POST", "GET", "GET", "DELETE", "PUT", "OPTIONS"])]
    assert [[s.index for s in w] for w in waves(subs)] == [[0, 1], [2], [3, 4], [5], [6], [7]]


def test_async_executor_is_public() -> None:
    assert AsyncExecutor(2).num_workers == 2


@pytest.mark.parametrize(("setting", "asked", "expected"), [
    (None, 0.2, [200, 504]),   # the client's budget applies
    (0.2, 30, [200, 504]),     # capped by the setting
    (None, None, [200, 200]),  # None falls back to the default TIMEOUT (30 s)
])
def test_per_request_timeout_capped_by_the_setting(settings, setting, asked, expected) -> None:
    settings.BATCH_REQUESTS = {"TIMEOUT": setting}
    payload = {"batch": [{"method": "get", "url": "/views/sleep/?seconds=0.3"},
                         {"method": "get", "url": "/views/"}]}
    if asked is not None:
        payload["timeout"] = asked
    response = post_batch(Client(), payload)
    assert [i["status_code"] for i in response.json()["batch"]] == expected


@pytest.mark.parametrize("asked", [0, -1, "5", True])
def test_bad_timeout_is_refused(asked) -> None:
    response = post_batch(Client(), {"batch": [{"method": "get", "url": "/views/"}],
                                     "timeout": asked})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "timeout"


@pytest.mark.parametrize("executor", [None, *sorted(PARALLEL)])
def test_a_stream_stops_being_read_at_the_deadline(settings, executor) -> None:
    # /attack/slow-stream/ trickles a byte every 50 ms for up to 2 minutes: reading it to the
    # end would hold this thread that long; the batch's deadline cuts it.
    if executor is not None:
        settings.BATCH_REQUESTS = {"EXECUTE_PARALLEL": True, "CONCURRENT_EXECUTOR":
                                   PARALLEL[executor]}
    response = post_batch(Client(), {"timeout": 0.3, "batch": [
        {"method": "get", "url": "/attack/slow-stream/?interval=0.05"}]})
    [item] = response.json()["batch"]
    assert item["status_code"] == 504 and 'its \\"timeout\\" of 0.3 s' in item["body"]
    if executor is None:  # read in this thread: cut and closed before the batch answers
        assert "still streaming" in item["body"]
        assert attack_views.streams_open() == 0
    else:  # answered at the deadline; the pool thread stops at the stream's next byte
        assert _eventually(lambda: attack_views.streams_open() == 0)


def _eventually(condition, seconds: float = 20.0) -> bool:
    """Wait for a state (not a duration): poll ``condition`` until true or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
