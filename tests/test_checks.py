"""``manage.py check`` reports a wrong ``BATCH_REQUESTS``."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from batch_requests.checks import check_settings


def _ids(settings, value) -> list[str]:
    settings.BATCH_REQUESTS = value
    return [e.id for e in check_settings()]


def test_default_and_full_settings_pass(settings) -> None:
    assert _ids(settings, {}) == []
    assert _ids(settings, {
        "HEADERS_TO_INCLUDE": ["HTTP_USER_AGENT"], "DEFAULT_CONTENT_TYPE": "application/json",
        "USE_HTTPS": True, "EXECUTE_PARALLEL": True,
        "CONCURRENT_EXECUTOR": "batch_requests.concurrent.executor.ThreadBasedExecutor",
        "NUM_WORKERS": 4, "ADD_DURATION_HEADER": False, "DURATION_HEADER_NAME": "X-Took",
        "MAX_LIMIT": 5, "DESERIALIZE_RESPONSES": True, "SERVER_TIMING": False,
        "TIMEOUT": 10, "WORKERS_PER_BATCH": 2, "MAX_BATCH_RESPONSE_SIZE": 1_000_000,
        "MAX_REFERENCES": 10, "MAX_REFERENCE_PATH_LENGTH": 100, "MAX_REFERENCE_VALUE_SIZE": 4096,
        "MAX_HEADERS": 50, "MAX_HEADER_SIZE": 4096, "ALLOW_ANONYMOUS_ATOMIC": True,
        "DYNAMIC": {"BACKEND": "redis", "BATCH_SIZE": 32, "BATCH_TIME": 0.005,
                    "REDIS_URL": "redis://127.0.0.1:6379/0", "MAX_DELIVERIES": 2},
    }) == []


@pytest.mark.parametrize(("value", "expected"), [
    ([], ["batch_requests.E001"]),
    ({"MAX_LIMT": 3}, ["batch_requests.E002"]),
    ({"MAX_LIMIT": "20"}, ["batch_requests.E003"]),
    ({"EXECUTE_PARALLEL": "yes"}, ["batch_requests.E003"]),
    ({"NUM_WORKERS": True}, ["batch_requests.E003"]),
    ({"NUM_WORKERS": 0}, ["batch_requests.E004"]),
    ({"MAX_LIMIT": -1}, ["batch_requests.E004"]),
    ({"HEADERS_TO_INCLUDE": ["User-Agent"]}, ["batch_requests.E005"]),
    ({"CONCURRENT_EXECUTOR": "batch_requests.concurrent.executor.NoSuch"},
     ["batch_requests.E006"]),
    ({"CONCURRENT_EXECUTOR": "batch_requests.conf.BatchSettings"}, ["batch_requests.E006"]),
    ({"DURATION_HEADER_NAME": "has space"}, ["batch_requests.E007"]),
    ({"DYNAMIC": []}, ["batch_requests.E003"]),
    ({"DYNAMIC": {"BATCH_SIZ": 8}}, ["batch_requests.E009"]),
    ({"DYNAMIC": {"BACKEND": "kafka"}}, ["batch_requests.E009"]),
    ({"DYNAMIC": {"BATCH_SIZE": 0, "BATCH_TIME": "0.1"}}, ["batch_requests.E009"] * 2),
    ({"DYNAMIC": {"SPLIT_ON_ERROR": "no", "METRICS": 1}}, ["batch_requests.E009"] * 2),
    ({"DYNAMIC": {"SPLIT_ON_ERROR": False, "METRICS": True}}, []),
    ({"DYNAMIC": {"MAX_DELIVERIES": True}}, ["batch_requests.E009"]),
    # Security limits: every batch has a finite budget; the limits are positive counts.
    ({"TIMEOUT": None}, ["batch_requests.E003"]),
    ({"TIMEOUT": float("nan")}, ["batch_requests.E004"]),
    ({"TIMEOUT": float("inf")}, ["batch_requests.E004"]),
    ({"TIMEOUT": 0}, ["batch_requests.E004"]),
    ({"MAX_HEADERS": 0}, ["batch_requests.E004"]),
    ({"WORKERS_PER_BATCH": "half"}, ["batch_requests.E003"]),
    ({"ALLOW_ANONYMOUS_ATOMIC": 1}, ["batch_requests.E003"]),
    ({"MAX_LIMIT": 20, "MAX_BATCH_RESPONSE_SIZE": 20 * 2048 - 1}, ["batch_requests.E010"]),
])
def test_wrong_settings_are_reported(settings, value, expected) -> None:
    assert _ids(settings, value) == expected


def test_manage_py_check_fails_on_a_bad_setting(settings) -> None:
    settings.BATCH_REQUESTS = {"NUM_WORKERS": "many"}
    with pytest.raises(SystemCheckError, match="NUM_WORKERS"):
        call_command("check")
