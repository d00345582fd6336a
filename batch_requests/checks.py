"""System checks for ``BATCH_REQUESTS``: a wrong setting is reported by ``manage.py check``."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from batch_requests.conf import DEFAULTS, SETTING_NAME, TYPES

HINT_KEYS = "Valid keys: " + ", ".join(sorted(DEFAULTS)) + "."


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join("None" if t is type(None) else t.__name__ for t in types)


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    value = getattr(settings, SETTING_NAME, {})
    if not isinstance(value, dict):
        return [
            Error(
                f"{SETTING_NAME} must be a dict, not {type(value).__name__}.",
                id="batch_requests.E001",
            )
        ]
    errors: list[Error] = []
    for key in sorted(set(value) - set(DEFAULTS)):
        errors.append(
            Error(f"{SETTING_NAME} has an unknown key {key!r}.", hint=HINT_KEYS,
                  id="batch_requests.E002")
        )
    for key, item in value.items():
        types = TYPES.get(key)
        if types is None:
            continue
        wrong_bool = isinstance(item, bool) and bool not in types
        if wrong_bool or not isinstance(item, types):
            errors.append(
                Error(
                    f"{SETTING_NAME}[{key!r}] must be {_type_names(types)}, "
                    f"not {type(item).__name__}.",
                    id="batch_requests.E003",
                )
            )
    errors.extend(_check_values(value))
    errors.extend(_check_dynamic(value.get("DYNAMIC")))
    return errors


DYNAMIC_BACKENDS = ("inprocess", "redis")
DYNAMIC_POSITIVE = ("BATCH_SIZE", "BATCH_TIME", "MAX_CONCURRENT_BATCHES", "MAX_QUEUE_SIZE",
                    "TIMEOUT", "CLAIM_IDLE_TIME", "MAX_DELIVERIES")
DYNAMIC_FLAGS = ("SPLIT_ON_ERROR", "METRICS")


def _check_dynamic(dynamic: Any) -> list[Error]:
    """``BATCH_REQUESTS["DYNAMIC"]``: known keys, a known backend, positive numbers."""
    from batch_requests.dynamic.conf import DEFAULTS as DYNAMIC_DEFAULTS

    where = f"{SETTING_NAME}['DYNAMIC']"
    if not isinstance(dynamic, dict):  # None or a wrong type (E003 reports that)
        return []
    errors = [Error(f"{where} has an unknown key {key!r}.",
                    hint="Valid keys: " + ", ".join(sorted(DYNAMIC_DEFAULTS)) + ".",
                    id="batch_requests.E009")
              for key in sorted(set(dynamic) - set(DYNAMIC_DEFAULTS))]
    backend = dynamic.get("BACKEND")
    if backend is not None and backend not in DYNAMIC_BACKENDS:
        errors.append(Error(f"{where}['BACKEND'] must be 'inprocess' or 'redis', not "
                            f"{backend!r}.", id="batch_requests.E009"))
    for key in DYNAMIC_POSITIVE:
        item = dynamic.get(key)
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, (int, float)) or item <= 0:
            errors.append(Error(f"{where}[{key!r}] must be a number above 0, not {item!r}.",
                                id="batch_requests.E009"))
    for key in DYNAMIC_FLAGS:
        if key in dynamic and not isinstance(dynamic[key], bool):
            errors.append(Error(f"{where}[{key!r}] must be True or False, not "
                                f"{dynamic[key]!r}.", id="batch_requests.E009"))
    return errors


def _check_values(value: dict[str, Any]) -> list[Error]:
    errors: list[Error] = []
    for key in ("NUM_WORKERS", "MAX_LIMIT", "MAX_RESPONSE_SIZE", "WORKERS_PER_BATCH",
                "MAX_BATCH_RESPONSE_SIZE", "MAX_REFERENCES", "MAX_REFERENCE_PATH_LENGTH",
                "MAX_REFERENCE_VALUE_SIZE", "MAX_HEADERS", "MAX_HEADER_SIZE",
                "MAX_URL_LENGTH"):
        item = value.get(key)
        if isinstance(item, int) and not isinstance(item, bool) and item < 1:
            errors.append(
                Error(f"{SETTING_NAME}[{key!r}] must be at least 1, not {item}.",
                      id="batch_requests.E004")
            )
    size, limit = value.get("MAX_BATCH_RESPONSE_SIZE"), value.get("MAX_LIMIT", 20)
    if isinstance(size, int) and isinstance(limit, int) and 1 <= size < limit * 2048:
        errors.append(Error(
            f"{SETTING_NAME}['MAX_BATCH_RESPONSE_SIZE'] ({size}) must leave 2 KiB per request "
            f"of a full batch: at least MAX_LIMIT x 2048 = {limit * 2048}.",
            hint="A batch's own small answers (424, 504, left-out items) must always fit.",
            id="batch_requests.E010"))
    timeout = value.get("TIMEOUT")
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and not (
            math.isfinite(timeout) and timeout > 0):
        errors.append(Error(f"{SETTING_NAME}['TIMEOUT'] must be a finite number of seconds "
                            f"above 0, not {timeout}.",
                            hint="Every batch needs a time budget; the default is 30 s.",
                            id="batch_requests.E004"))
    headers = value.get("HEADERS_TO_INCLUDE")
    if isinstance(headers, (list, tuple)):
        for header in headers:
            if not isinstance(header, str) or not header.isupper() or "-" in header:
                errors.append(
                    Error(
                        f"{SETTING_NAME}['HEADERS_TO_INCLUDE'] holds {header!r}, which is not "
                        "a request.META key.",
                        hint="Name headers as Django's request.META does, e.g. 'HTTP_USER_AGENT'.",
                        id="batch_requests.E005",
                    )
                )
    path = value.get("CONCURRENT_EXECUTOR")
    if isinstance(path, str):
        errors.extend(_check_executor(path))
    name = value.get("DURATION_HEADER_NAME")
    if isinstance(name, str) and (not name or any(c in name for c in " :\r\n\t")):
        errors.append(
            Error(f"{SETTING_NAME}['DURATION_HEADER_NAME'] {name!r} is not a valid header name.",
                  id="batch_requests.E007")
        )
    return errors


def _check_executor(path: str) -> list[Error]:
    from batch_requests.concurrent.executor import BaseExecutor, ProcessBasedExecutor
    from batch_requests.concurrent.processes import shared_database_names

    try:
        cls = import_string(path)
    except ImportError as exc:
        return [
            Error(
                f"{SETTING_NAME}['CONCURRENT_EXECUTOR'] {path!r} cannot be imported: {exc}.",
                hint="Use a dotted path such as "
                "'batch_requests.concurrent.executor.ThreadBasedExecutor'.",
                id="batch_requests.E006",
            )
        ]
    if isinstance(cls, type) and issubclass(cls, ProcessBasedExecutor):
        try:
            shared_database_names()
        except ImproperlyConfigured as exc:
            return [Error(str(exc), hint="Use a database server or an SQLite file.",
                          id="batch_requests.E008")]
    if not (isinstance(cls, type) and issubclass(cls, BaseExecutor)):
        return [
            Error(
                f"{SETTING_NAME}['CONCURRENT_EXECUTOR'] {path!r} is not a subclass of "
                "batch_requests.concurrent.executor.BaseExecutor.",
                id="batch_requests.E006",
            )
        ]
    return []


@register(Tags.compatibility, Tags.caches)
def check_atomic_cache(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """W010: a ``DatabaseCache`` in the default database makes atomic batches refused."""
    from batch_requests.policies import rolled_back_caches

    return [
        Warning(
            f"The cache {alias!r} is a DatabaseCache whose table is written through the "
            "'default' database, which the transaction of an atomic batch covers: a failed "
            "batch would roll back its writes, DRF throttle history included, so a client "
            "could retry without limit. Batches with \"atomic\": true are refused.",
            hint="Route the cache table to another database with a database router "
            "(db_for_write() returning another alias for models of app_label 'django_cache'), "
            "or use another cache backend (Redis, Memcached, local memory).",
            id="batch_requests.W010",
        )
        for alias in rolled_back_caches()
    ]
