"""Run one ``SubRequest`` through Django's full handler path and capture a ``SubResult``.

This is what a WSGI server does with ``WSGIHandler``, minus the network: a ``WSGIRequest``
goes through the project's whole middleware chain, the URL resolver and the view, so a
sub-request meets the same authentication, CSRF, permission and throttling code as a direct
request. Unlike Django's test client it does not send ``request_started`` /
``request_finished`` (their receivers would close the batch request's DB connection).
"""

from __future__ import annotations

import functools
import io
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponseBase
from django.urls import get_urlconf, set_urlconf

from batch_requests.conf import batch_settings
from batch_requests.subrequest import SubRequest
from batch_requests.uploads import encode_multipart

logger = logging.getLogger("batch_requests")

_handlers: dict[bool, BaseHandler] = {}
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


def get_handler(is_async: bool = False) -> BaseHandler:
    """One handler per process and mode, its middleware loaded once (as a server's is)."""
    handler = _handlers.get(is_async)
    if handler is None:
        with _handler_lock:
            handler = _handlers.get(is_async)
            if handler is None:
                handler = BaseHandler()
                handler.load_middleware(is_async=is_async)
                _handlers[is_async] = handler
    return handler


def reset_handler() -> None:
    with _handler_lock:
        _handlers.clear()


def run_subrequest(sub: SubRequest) -> SubResult:
    """Run one sub-request. The handler sets the urlconf at the start of each request, as a
    server's does; the batch view puts the batch request's own back once the batch has run
    (``keeping_urlconf``), rather than after every item."""
    start = time.perf_counter()
    try:
        result = _run(sub)
    except Exception as exc:
        result = _failure(sub, exc)
    result.duration = time.perf_counter() - start
    return result


async def run_subrequest_async(sub: SubRequest) -> SubResult:
    """The same, through the async handler path (for async views, on the event loop)."""
    start = time.perf_counter()
    try:
        result = await _arun(sub)
    except Exception as exc:
        result = _failure(sub, exc)
    result.duration = time.perf_counter() - start
    return result


@contextmanager
def keeping_urlconf() -> Iterator[None]:
    """Around a whole batch: the urlconf of the batch request, whatever its items set."""
    previous = get_urlconf()
    try:
        yield
    finally:
        set_urlconf(previous)


def _failure(sub: SubRequest, exc: Exception) -> SubResult:
    """The answer when capturing failed (called from an ``except`` block)."""
    if isinstance(exc, ResponseTooLarge):
        return error_result(sub.index, 502, str(exc))
    if isinstance(exc, StreamTimedOut):
        budget = f" ({sub.budget})" if sub.budget else ""
        return error_result(sub.index, 504, f"Started, but the batch's time budget{budget} ran "
                                            "out while its response was still streaming; it "
                                            "was not read further.")
    # The middleware chain already turns view errors into responses; this is a failure of
    # the machinery around it (e.g. a streaming body that raised while being read).
    logger.exception("Sub-request %s %s failed", sub.method, sub.path)
    return error_result(sub.index, 500)


def _run(sub: SubRequest) -> SubResult:
    request = make_request(sub)
    response = get_handler().get_response(request)
    try:
        if sub.atomic and (conflict := _durable_conflict(request, sub)):
            return conflict
        return _capture(sub, response, _read_body(response, sub.deadline, sub.max_response_size))
    finally:
        _release(response, request)


async def _arun(sub: SubRequest) -> SubResult:
    request = make_request(sub)
    response = await get_handler(is_async=True).get_response_async(request)
    try:
        if sub.atomic and (conflict := _durable_conflict(request, sub)):
            return conflict
        if getattr(response, "streaming", False) and response.is_async:
            body = _Body(sub.deadline, sub.max_response_size)
            async for chunk in response.streaming_content:
                body.add(chunk)
            return _capture(sub, response, body.joined())
        body = await sync_to_async(_read_body, thread_sensitive=False)(
            response, sub.deadline, sub.max_response_size)
        return _capture(sub, response, body)
    finally:
        await sync_to_async(_release, thread_sensitive=False)(response, request)


def _durable_conflict(request: WSGIRequest, sub: SubRequest) -> SubResult | None:
    """In an atomic batch: the error item of a view that needed a durable transaction."""
    from batch_requests.policies import durable_conflict  # policies imports this module

    return durable_conflict(request, sub.index)


def make_request(sub: SubRequest) -> WSGIRequest:
    environ = dict(sub.environ)
    body = sub.body
    if sub.multipart is not None:  # encoded now, held only while this item runs
        environ["CONTENT_TYPE"], body = encode_multipart(*sub.multipart)
        environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input"] = io.BytesIO(body)
    environ["wsgi.errors"] = io.StringIO()
    request = WSGIRequest(environ)
    request.batch_requests_atomic = sub.atomic  # see policies.note_durable_conflict
    if sub.dont_enforce_csrf_checks:
        request._dont_enforce_csrf_checks = True
    return request


class ResponseTooLarge(Exception):
    pass


class StreamTimedOut(Exception):
    pass


def _capture(sub: SubRequest, response: HttpResponseBase, body: bytes) -> SubResult:
    status = response.status_code
    if sub.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""  # as a server would send it
    # SubResult(index, status_code, reason_phrase, headers, body, charset, cookies)
    return SubResult(sub.index, status, response.reason_phrase, _headers(response), body,
                     _charset(response), response.cookies)


def _headers(response: HttpResponseBase) -> list[tuple[str, str]]:
    """``list(response.items())`` without a ``__getitem__`` per header: Django keeps each header
    as ``(name as set, value)`` under its lowercased name (``CaseInsensitiveMapping._store``)."""
    store = getattr(response.headers, "_store", None)
    if isinstance(store, dict):
        return list(store.values())
    return list(response.items())


_CHARSET_PARAM = re.compile(r";\s*charset=(?P<charset>[^\s;]+)", re.I)  # as Django's


@functools.lru_cache(maxsize=256)
def _charset_of(content_type: str) -> str | None:
    matched = _CHARSET_PARAM.search(content_type)
    return matched["charset"].replace('"', "") if matched else None


def _charset(response: HttpResponseBase) -> str:
    """``response.charset``, its Content-Type parsed once per distinct value, not per item."""
    explicit = getattr(response, "_charset", None)
    if explicit is not None:
        return explicit
    return _charset_of(response.get("Content-Type", "")) or settings.DEFAULT_CHARSET


def _read_body(response: HttpResponseBase, deadline: float | None = None,
               limit: int | None = None) -> bytes:
    """The body, read no further than ``MAX_RESPONSE_SIZE`` and, for a stream, the deadline."""
    if not getattr(response, "streaming", False):
        content = response.content
        if limit is None:
            limit = batch_settings.MAX_RESPONSE_SIZE
        if limit is not None and len(content) > limit:
            raise ResponseTooLarge(_too_large(limit))
        return content
    body = _Body(deadline, limit)
    for chunk in response:
        body.add(chunk)
    return body.joined()


def _too_large(limit: int) -> str:
    return f"The response is larger than MAX_RESPONSE_SIZE ({limit} bytes)."


class _Body:
    """A response body being read: refused as soon as it grows past ``MAX_RESPONSE_SIZE`` or
    is still streaming at the batch's deadline (checked after each chunk, so a stream that
    trickles bytes holds a thread no longer than the batch's time budget)."""

    def __init__(self, deadline: float | None = None, limit: int | None = None) -> None:
        self.limit = batch_settings.MAX_RESPONSE_SIZE if limit is None else limit
        self.deadline = deadline
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            raise ResponseTooLarge(_too_large(self.limit))
        if self.deadline is not None and len(self.chunks) and time.monotonic() >= self.deadline:
            raise StreamTimedOut("The batch's time budget ran out while this response was "
                                 "still streaming; it was not read further.")
        self.chunks.append(chunk)

    def joined(self) -> bytes:
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)


def _release(response: HttpResponseBase, request: WSGIRequest | None = None) -> None:
    """``response.close()`` without ``request_finished``: close files, the request, etc.

    The request's body stream is closed too, which frees its buffer at once: a request
    object often lives on in a reference cycle until the garbage collector runs, and a batch
    of uploads would otherwise keep every item's body until then.
    """
    for closer in getattr(response, "_resource_closers", ()):
        try:
            closer()
        except Exception:
            logger.debug("Closing a sub-response resource failed", exc_info=True)
    response._resource_closers.clear()
    response.closed = True
    if request is not None:
        request.environ["wsgi.input"].close()


def error_result(index: int, status: int, message: str | None = None) -> SubResult:
    reason = HTTPStatus(status).phrase
    body = json.dumps({"error": message or reason}).encode()
    return SubResult(index, status, reason, [("Content-Type", "application/json")], body)
