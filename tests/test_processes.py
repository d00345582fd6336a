"""ProcessBasedExecutor: worker processes, session auth across them, crash and hang recovery."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from batch_requests.concurrent.executor import get_executor
from tests.helpers import batch_items, post_batch

pytestmark = pytest.mark.django_db(transaction=True)

PROCESS = "batch_requests.concurrent.executor.ProcessBasedExecutor"


@pytest.fixture
def processes(settings, monkeypatch):
    monkeypatch.setenv("TEST_PROJECT_CRASH_VIEW", "1")  # inherited by spawned workers
    settings.BATCH_REQUESTS = {"EXECUTE_PARALLEL": True, "CONCURRENT_EXECUTOR": PROCESS,
                               "NUM_WORKERS": 2, "WORKERS_PER_BATCH": 2, "TIMEOUT": 30}
    yield
    settings.BATCH_REQUESTS = {}  # shuts the pool down (setting_changed)


def test_session_and_token_auth_in_worker_processes(processes, alice, bob_token) -> None:
    client = Client()
    client.force_login(alice)
    items = batch_items(client, [
        {"method": "get", "url": "/api/me/"},
        {"method": "get", "url": "/views/whoami/"},
        {"method": "post", "url": "/api/articles/", "body": {"title": "from a process"}},
        {"method": "get", "url": "/api/articles/"},
    ])
    assert [i["status_code"] for i in items] == [200, 200, 201, 200]
    assert json.loads(items[0]["body"])["username"] == "alice"
    assert json.loads(items[1]["body"])["user"] == "alice"
    assert [a["title"] for a in json.loads(items[3]["body"])] == ["from a process"]
    items = batch_items(Client(), [
        {"method": "get", "url": "/api/me/", "headers": {"Authorization": f"Token {bob_token}"}},
        {"method": "get", "url": "/api/me/"},
    ])
    assert json.loads(items[0]["body"])["username"] == "bob"
    assert items[1]["status_code"] == 403


def test_worker_processes_overlap(processes) -> None:
    items = batch_items(Client(), [
        {"method": "get", "url": "/views/sleep/?seconds=0.01"},
        {"method": "get", "url": "/views/sleep/?seconds=0.01"},
    ])
    assert [i["status_code"] for i in items] == [200, 200]


def test_a_dead_worker_gives_5xx_and_the_pool_recovers(processes) -> None:
    items = batch_items(Client(), [{"method": "get", "url": "/views/crash/"},
                                   {"method": "get", "url": "/views/"}])
    assert items[0]["status_code"] == 502
    assert items[1]["status_code"] in (200, 502)  # it may have shared the broken pool
    items = batch_items(Client(), [{"method": "get", "url": "/views/"}] * 3)
    assert [i["status_code"] for i in items] == [200] * 3


def test_a_hung_worker_is_bounded_by_the_budget(processes) -> None:
    # Start both workers first, so that the budget below is not spent on process start-up.
    batch_items(Client(), [{"method": "get", "url": "/views/sleep/?seconds=0.2"}] * 2)
    pool = get_executor()._pool
    response = post_batch(Client(), {"timeout": 2, "batch": [
        {"method": "get", "url": "/views/sleep/?seconds=5"},
        {"method": "get", "url": "/views/sleep/?seconds=0"}]})
    items = response.json()["batch"]
    assert [i["status_code"] for i in items] == [504, 200]
    # The deadline answered its own item and left the pool alone: the other worker serves.
    items = batch_items(Client(), [{"method": "get", "url": "/views/"}])
    assert items[0]["status_code"] == 200
    assert get_executor()._pool is pool


@pytest.mark.parametrize("name", [":memory:", "file:memorydb_default?mode=memory&cache=shared"])
def test_in_memory_database_is_refused(name) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from batch_requests.concurrent.processes import shared_database_names

    with pytest.raises(ImproperlyConfigured, match="in-memory"):
        shared_database_names({"default": {"ENGINE": "django.db.backends.sqlite3",
                                           "NAME": name}})
