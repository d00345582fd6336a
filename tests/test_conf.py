"""The settings object reads live settings and keeps the 2015 app's defaults."""

from __future__ import annotations

import os

import pytest

from batch_requests.concurrent.executor import (
    SequentialExecutor,
    ThreadBasedExecutor,
    get_executor,
)
from batch_requests.conf import batch_settings


def test_defaults_of_the_2015_app(settings) -> None:
    settings.BATCH_REQUESTS = {}
    assert batch_settings.HEADERS_TO_INCLUDE == ["HTTP_USER_AGENT", "HTTP_COOKIE"]
    assert batch_settings.DEFAULT_CONTENT_TYPE == "application/json"
    assert batch_settings.USE_HTTPS is False
    assert batch_settings.EXECUTE_PARALLEL is False
    assert batch_settings.CONCURRENT_EXECUTOR == (
        "batch_requests.concurrent.executor.ThreadBasedExecutor")
    assert (os.cpu_count() or 1) * 4 == batch_settings.NUM_WORKERS
    assert batch_settings.ADD_DURATION_HEADER is True
    assert batch_settings.DURATION_HEADER_NAME == "batch_requests.duration"
    assert batch_settings.MAX_LIMIT == 20


def test_reads_live_settings(settings) -> None:
    settings.BATCH_REQUESTS = {"MAX_LIMIT": 3}
    assert batch_settings.MAX_LIMIT == 3
    settings.BATCH_REQUESTS = {"MAX_LIMIT": 7}
    assert batch_settings.MAX_LIMIT == 7


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="NOPE"):
        batch_settings.NOPE  # noqa: B018


def test_executor_follows_settings(settings) -> None:
    settings.BATCH_REQUESTS = {}
    assert isinstance(get_executor(), SequentialExecutor)
    settings.BATCH_REQUESTS = {"EXECUTE_PARALLEL": True, "NUM_WORKERS": 3}
    first = get_executor()
    assert isinstance(first, ThreadBasedExecutor) and first.num_workers == 3
    assert get_executor() is first  # one shared pool per process
    settings.BATCH_REQUESTS = {"EXECUTE_PARALLEL": True, "NUM_WORKERS": 5}
    assert get_executor().num_workers == 5


def test_public_names_of_the_2015_app_import() -> None:
    from batch_requests.concurrent.executor import ThreadBasedExecutor  # noqa: F401
    from batch_requests.views import handle_batch_requests

    assert callable(handle_batch_requests)
