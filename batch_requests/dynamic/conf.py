"""Where each dynamic-batching option comes from.

Priority, highest first: the value passed in code, the environment variable (the names
``dynamic_batcher`` users already deploy with), ``settings.BATCH_REQUESTS["DYNAMIC"]``, the default.
Everything is read when asked, never at import, so ``override_settings`` and late environment
changes are seen, and the module works with no Django settings configured at all.
"""

from __future__ import annotations

import os
from typing import Any

DEFAULTS: dict[str, Any] = {
    "BACKEND": "inprocess",
    "BATCH_SIZE": 64,
    "BATCH_TIME": 0.01,
    "MAX_CONCURRENT_BATCHES": 1,
    "MAX_QUEUE_SIZE": 100_000,
    "TIMEOUT": 100.0,
    "REDIS_URL": None,
    "REDIS_HOST": "localhost",
    "REDIS_PORT": 6379,
    "REDIS_DB": 0,
    "REDIS_PASSWORD": None,
    "KEY_PREFIX": "batch_requests:dynamic",
    "CLAIM_IDLE_TIME": 30.0,
    "MAX_DELIVERIES": 3,
    "SPLIT_ON_ERROR": True,
    "METRICS": True,
}

ENV_VARS: dict[str, str] = {
    "BACKEND": "DYNAMIC_BATCHER__BACKEND",
    "BATCH_SIZE": "DYNAMIC_BATCHER__BATCH_SIZE",
    "BATCH_TIME": "DYNAMIC_BATCHER__BATCH_TIME",
    "SPLIT_ON_ERROR": "DYNAMIC_BATCHER__SPLIT_ON_ERROR",
    "METRICS": "DYNAMIC_BATCHER__METRICS",
    "REDIS_HOST": "REDIS__HOST",
    "REDIS_PORT": "REDIS__PORT",
    "REDIS_DB": "REDIS__DB",
    "REDIS_PASSWORD": "REDIS__PASSWORD",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def to_bool(value: Any) -> bool:
    """A flag from code, settings or the environment ("0"/"false"/"no"/"off" are false)."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return bool(value)


_CASTS: dict[str, Any] = {
    "BATCH_SIZE": int,
    "BATCH_TIME": float,
    "MAX_CONCURRENT_BATCHES": int,
    "MAX_QUEUE_SIZE": int,
    "TIMEOUT": float,
    "REDIS_PORT": int,
    "REDIS_DB": int,
    "CLAIM_IDLE_TIME": float,
    "MAX_DELIVERIES": int,
    "SPLIT_ON_ERROR": to_bool,
    "METRICS": to_bool,
}



def django_settings() -> dict[str, Any]:
    """``settings.BATCH_REQUESTS["DYNAMIC"]``, or ``{}`` when Django is absent or unconfigured."""
    try:
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured
    except ImportError:
        return {}
    try:
        if not settings.configured:
            return {}
        root = getattr(settings, "BATCH_REQUESTS", None) or {}
    except (ImproperlyConfigured, ImportError):
        return {}
    return dict(root.get("DYNAMIC") or {})


def get(name: str, passed: Any = None) -> Any:
    """One option's value by the priority above; ``passed=None`` means "not passed"."""
    if name not in DEFAULTS:
        raise KeyError(f"unknown dynamic batching option {name!r}")
    cast = _CASTS.get(name)
    if passed is not None:
        return cast(passed) if cast else passed
    env_name = ENV_VARS.get(name)
    raw = os.environ.get(env_name, "") if env_name else ""
    if raw != "":
        return cast(raw) if cast else raw
    configured = django_settings()
    if name in configured:
        value = configured[name]
        return cast(value) if cast and value is not None else value
    return DEFAULTS[name]


def redis_url(passed: str | None = None) -> str:
    """A redis:// URL from ``REDIS_URL`` or else from the host/port/db/password options."""
    url = get("REDIS_URL", passed)
    if url:
        return str(url)
    password = get("REDIS_PASSWORD") or ""
    auth = f":{password}@" if password else ""
    return f"redis://{auth}{get('REDIS_HOST')}:{get('REDIS_PORT')}/{get('REDIS_DB')}"
