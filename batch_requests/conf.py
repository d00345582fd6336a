"""The one settings object: ``batch_settings``.

Every attribute reads ``settings.BATCH_REQUESTS`` at the moment it is used, so
``override_settings`` works and nothing is frozen at import time.
"""

from __future__ import annotations

import math
import os
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

SETTING_NAME = "BATCH_REQUESTS"

DEFAULTS: dict[str, Any] = {
    # Keys of the 2015 app, with its defaults.
    "HEADERS_TO_INCLUDE": ["HTTP_USER_AGENT", "HTTP_COOKIE"],
    "DEFAULT_CONTENT_TYPE": "application/json",
    "USE_HTTPS": False,
    "EXECUTE_PARALLEL": False,
    "CONCURRENT_EXECUTOR": "batch_requests.concurrent.executor.ThreadBasedExecutor",
    "NUM_WORKERS": None,  # None means os.cpu_count() * 4, computed when read.
    "ADD_DURATION_HEADER": True,
    "DURATION_HEADER_NAME": "batch_requests.duration",
    "MAX_LIMIT": 20,
    # Added by this app.
    "DESERIALIZE_RESPONSES": False,
    "SERVER_TIMING": True,
    "MAX_RESPONSE_SIZE": 10 * 1024 * 1024,  # bytes of one sub-response's body; None: no limit
    # Security limits (see docs/security.md). Every batch has a time budget.
    "TIMEOUT": 30,  # seconds for a whole batch; a client's "timeout" may only shorten it
    "WORKERS_PER_BATCH": None,  # pool workers one batch may hold; None: half of NUM_WORKERS
    "MAX_BATCH_RESPONSE_SIZE": 32 * 1024 * 1024,  # bytes of the encoded batch response
    "MAX_REFERENCES": 50,  # {result=...} references in one batch
    "MAX_REFERENCE_PATH_LENGTH": 200,  # characters of one reference's JSONPath
    "MAX_REFERENCE_VALUE_SIZE": 1024 * 1024,  # characters of one filled-in reference value
    "MAX_HEADERS": 100,  # headers of one item
    "MAX_HEADER_SIZE": 8190,  # bytes of one item header, name and value
    "MAX_URL_LENGTH": 8192,  # characters of an item's url once percent-encoded
    "ALLOW_ANONYMOUS_ATOMIC": False,  # atomic batches need an authenticated caller
    "DYNAMIC": {},
}

# Expected types, used by the system checks (bool is checked before int on purpose).
TYPES: dict[str, tuple[type, ...]] = {
    "HEADERS_TO_INCLUDE": (list, tuple),
    "DEFAULT_CONTENT_TYPE": (str,),
    "USE_HTTPS": (bool,),
    "EXECUTE_PARALLEL": (bool,),
    "CONCURRENT_EXECUTOR": (str,),
    "NUM_WORKERS": (int, type(None)),
    "ADD_DURATION_HEADER": (bool,),
    "DURATION_HEADER_NAME": (str,),
    "MAX_LIMIT": (int,),
    "DESERIALIZE_RESPONSES": (bool,),
    "SERVER_TIMING": (bool,),
    "TIMEOUT": (int, float),
    "MAX_RESPONSE_SIZE": (int, type(None)),
    "WORKERS_PER_BATCH": (int, type(None)),
    "MAX_BATCH_RESPONSE_SIZE": (int,),
    "MAX_REFERENCES": (int,),
    "MAX_REFERENCE_PATH_LENGTH": (int,),
    "MAX_REFERENCE_VALUE_SIZE": (int,),
    "MAX_HEADERS": (int,),
    "MAX_HEADER_SIZE": (int,),
    "MAX_URL_LENGTH": (int,),
    "ALLOW_ANONYMOUS_ATOMIC": (bool,),
    "DYNAMIC": (dict,),
}


def user_settings() -> dict[str, Any]:
    value = getattr(settings, SETTING_NAME, None)
    return value if isinstance(value, dict) else {}


class BatchSettings:
    """Attribute access to ``BATCH_REQUESTS`` keys, falling back to ``DEFAULTS``."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"{SETTING_NAME} has no setting {name!r}")
        value = user_settings().get(name, DEFAULTS[name])
        if name == "NUM_WORKERS" and value is None:
            return (os.cpu_count() or 1) * 4
        if name == "WORKERS_PER_BATCH" and value is None:
            return max(1, self.NUM_WORKERS // 2)
        if name == "TIMEOUT" and not _finite_positive(value):
            return DEFAULTS["TIMEOUT"]  # the system check reports it; never run unbounded
        return value


def _finite_positive(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


batch_settings = BatchSettings()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in (SETTING_NAME, "MIDDLEWARE"):
        from batch_requests import dispatch
        from batch_requests.concurrent import executor

        # A change of another key (TIMEOUT, say) keeps the pool the settings still select.
        executor.reset_executors(keep_current=setting == SETTING_NAME)
        dispatch.reset_handler()


def connect_signals() -> None:
    setting_changed.connect(_on_setting_changed, dispatch_uid="batch_requests.settings_changed")
