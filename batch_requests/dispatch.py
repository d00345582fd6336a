"""Run one ``SubRequest`` through Django's full handler path and capture a ``SubResult``.

This is what a WSGI server does with ``WSGIHandler``, minus the network: a ``WSGIRequest``
goes through the project's whole middleware chain, the URL resolver and the view, so a
sub-request meets the same authentication, CSRF, permission and throttling code as a direct
request. Unlike Django's test client it does not send ``request_started`` /
``request_finished`` (their receivers would close the batch request's DB connection).
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie

from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponseBase
from django.urls import get_urlconf, set_urlconf

from batch_requests.subrequest import SubRequest

logger = logging.getLogger("batch_requests")

_handler: BaseHandler | None = None
_handler_lock = threading.Lock()


@dataclass
class SubResult:
    """A captured response: plain data, so it can cross a process boundary."""

    index: int
    status_code: int
    reason_phrase: str
    headers: list[tuple[str, str]]
    body: bytes
    charset: str = "utf-8"
    cookies: SimpleCookie = field(default_factory=SimpleCookie)
    duration: float = 0.0


def get_handler() -> BaseHandler:
    """One handler per process, its middleware loaded once (as a WSGI server would)."""
    global _handler
    handler = _handler
    if handler is None:
        with _handler_lock:
            if _handler is None:
                handler = BaseHandler()
                handler.load_middleware(is_async=False)
                _handler = handler
            handler = _handler
    return handler


def reset_handler() -> None:
    global _handler
    with _handler_lock:
        _handler = None


def run_subrequest(sub: SubRequest) -> SubResult:
    start = time.perf_counter()
    previous_urlconf = get_urlconf()
    try:
        result = _run(sub)
    except Exception:
        # The middleware chain already turns view errors into responses; this is a failure
        # of the machinery around it (e.g. a streaming body that raised while being read).
        logger.exception("Sub-request %s %s failed", sub.method, sub.path)
        result = error_result(sub.index, 500)
    finally:
        set_urlconf(previous_urlconf)
    result.duration = time.perf_counter() - start
    return result


def _run(sub: SubRequest) -> SubResult:
    environ = dict(sub.environ)
    environ["wsgi.input"] = io.BytesIO(sub.body)
    environ["wsgi.errors"] = io.StringIO()
    request = WSGIRequest(environ)
    if sub.dont_enforce_csrf_checks:
        request._dont_enforce_csrf_checks = True
    response = get_handler().get_response(request)
    try:
        body = _read_body(response)
        if sub.method == "HEAD" or response.status_code in (204, 304) or \
                100 <= response.status_code < 200:
            body = b""
        return SubResult(
            index=sub.index,
            status_code=response.status_code,
            reason_phrase=response.reason_phrase,
            headers=list(response.items()),
            body=body,
            charset=response.charset or settings.DEFAULT_CHARSET,
            cookies=response.cookies,
        )
    finally:
        _release(response)


def _read_body(response: HttpResponseBase) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response)
    return response.content


def _release(response: HttpResponseBase) -> None:
    """``response.close()`` without ``request_finished``: close files, the request, etc."""
    for closer in getattr(response, "_resource_closers", ()):
        try:
            closer()
        except Exception:
            logger.debug("Closing a sub-response resource failed", exc_info=True)
    response._resource_closers.clear()
    response.closed = True


def error_result(index: int, status: int, message: str | None = None) -> SubResult:
    reason = HTTPStatus(status).phrase
    body = json.dumps({"error": message or reason}).encode()
    return SubResult(index, status, reason, [("Content-Type", "application/json")], body)
