"""A Python client for the batch endpoint: queue requests, send them in one round trip.

    with BatchClient("https://example.com", session=requests_session) as batch:
        me = batch.get("/api/me/")
        new = batch.post("/api/articles/", json={"title": "hi"})
    me.json()["username"], new.status_code

Why a builder with placeholders: callers write the calls they would write with ``requests``,
and read each answer from its own object after the batch went out, instead of juggling
indexes into the raw JSON. The transport is whatever the caller already has, so the client
reuses its cookies, auth and TLS settings: an ``httpx.Client`` or ``requests.Session``
(optional extra ``django-batch-requests[client]``), or Django's test ``Client``, so that a
project's own tests can batch without a server.

Item fields other than the request's own (``name=``, ``depends_on=``,
``omit_response_on_success=``) and batch fields (``atomic=True``) are passed through as given,
so it keeps working as the contract grows; a server that does not know a field refuses the
batch with 400, raised here as :class:`BatchRefused`. Linked requests (``depends_on``,
``{result=...}`` references) are never split over several batches.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from batch_requests.client.errors import (
    BatchClientError,
    BatchNotSent,
    BatchRefused,
    ItemFailed,
)
from batch_requests.client.responses import ItemResponse
from batch_requests.client.transports import make_transport

__all__ = [
    "BatchClient",
    "BatchClientError",
    "BatchNotSent",
    "BatchRefused",
    "ItemFailed",
    "ItemResponse",
]

DEFAULT_ENDPOINT = "/api/v1/batch/"
REFERENCE = "{result="


class BatchClient:
    """Queue requests, send them as one batch on ``send()`` or when the ``with`` block ends.

    ``base_url`` is the site (``"https://example.com"``; empty for Django's test client);
    ``endpoint`` is where the batch view is routed. ``session`` is an ``httpx.Client``, a
    ``requests.Session`` or a Django test ``Client`` (default: a new httpx/requests session,
    closed with this client). A ``csrftoken`` cookie in the session is sent back as
    ``X-CSRFToken``, because a batch riding on a session login must pass CSRF.
    ``max_batch_size`` splits a long queue into several batches (the server's ``MAX_LIMIT``);
    split batches are separate requests, so top-level flags hold per batch only.
    Other keyword arguments (e.g. ``atomic=True``) become top-level fields of every batch.
    """

    def __init__(self, base_url: str = "", *, session: Any = None,
                 endpoint: str = DEFAULT_ENDPOINT, headers: Mapping[str, str] | None = None,
                 raise_for_status: bool = False, max_batch_size: int | None = None,
                 timeout: float | None = 30.0, **batch_fields: Any) -> None:
        if max_batch_size is not None and max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.endpoint = endpoint
        self.headers = dict(headers or {})
        self.raise_for_status = raise_for_status
        self.max_batch_size = max_batch_size
        self.batch_fields = batch_fields
        self.transport = make_transport(session, timeout)
        self._items: list[dict[str, Any]] = []
        self._pending: list[ItemResponse] = []

    # context manager: send on a clean exit, drop the queue when the block raised
    def __enter__(self) -> BatchClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None and self._items:
                self.send()
        finally:
            self.close()

    def close(self) -> None:
        self.transport.close()

    def __len__(self) -> int:
        return len(self._items)

    # building
    def request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, data: str | bytes | Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, **item_fields: Any) -> ItemResponse:
        """Queue one request; returns its answer, readable after the batch was sent.

        ``json=`` sends a JSON body, ``data=`` a string/bytes body or a form (a mapping is
        form-encoded). ``item_fields`` (``name=``, ``depends_on=``...) go into the item as is.
        """
        if json is not None and data is not None:
            raise ValueError("pass json= or data=, not both")
        item_headers = dict(headers or {})
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, doseq=True)
        item: dict[str, Any] = {"method": method.upper(), "url": url}
        if json is not None:
            _set_default(item_headers, "Content-Type", "application/json")
            item["body"] = json if isinstance(json, (dict, list)) else jsonlib.dumps(json)
        elif isinstance(data, Mapping):
            _set_default(item_headers, "Content-Type", "application/x-www-form-urlencoded")
            item["body"] = urlencode(data, doseq=True)
        elif isinstance(data, bytes):
            try:
                item["body"] = data.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError("a batch item's body travels as text; bytes must be UTF-8",
                                 ) from error
        elif data is not None:
            item["body"] = data
        if item_headers:
            item["headers"] = item_headers
        item.update(item_fields)
        response = ItemResponse(item["method"], url, self.raise_for_status)
        self._items.append(item)
        self._pending.append(response)
        return response

    def get(self, url: str, **kwargs: Any) -> ItemResponse:
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> ItemResponse:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> ItemResponse:
        return self.request("OPTIONS", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> ItemResponse:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> ItemResponse:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> ItemResponse:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> ItemResponse:
        return self.request("DELETE", url, **kwargs)

    # sending
    def payloads(self) -> list[dict[str, Any]]:
        """The batch documents send() would post now (one per chunk of ``max_batch_size``)."""
        return [{**self.batch_fields, "batch": chunk} for chunk in
                _chunks(self._items, self._chunk_size(self._items))]

    def send(self) -> list[ItemResponse]:
        """Send the queued requests, fill their answers, and start a new, empty queue.

        Raises :class:`BatchRefused` when the server refuses a batch; the answers of that
        batch (and of later chunks, which are then not sent) raise it too when read.
        """
        size = self._chunk_size(self._items)
        items, pending = self._items, self._pending
        self._items, self._pending = [], []
        for offset, chunk in enumerate(_chunks(items, size)):
            answers = pending[offset * size:offset * size + len(chunk)]
            try:
                results = self._send_one({**self.batch_fields, "batch": chunk})
            except BatchRefused as error:
                for answer in pending[offset * size:]:
                    answer._refuse(error)
                raise
            for answer, result in zip(answers, results, strict=True):
                answer._resolve(result)
        return pending

    def _chunk_size(self, items: list[dict[str, Any]]) -> int:
        """How many items go in one batch; linked items must all go in the same one."""
        size = self.max_batch_size or len(items) or 1
        if len(items) > size and any("depends_on" in item or REFERENCE in jsonlib.dumps(item)
                                     for item in items):
            raise ValueError(f"{len(items)} requests linked by depends_on or {REFERENCE}...}} "
                             f"references cannot be split into batches of {size} "
                             "(max_batch_size); send them in one batch")
        return size

    def _send_one(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        headers = {"Accept": "application/json", **self.headers}
        token = self.transport.csrf_token()
        if token and not any(k.lower() == "x-csrftoken" for k in headers):
            headers["X-CSRFToken"] = token
        raw = self.transport.send(self.base_url + self.endpoint, payload, headers)
        try:
            document = jsonlib.loads(raw.text)
        except ValueError:
            document = None
        if raw.status_code != 200 or not isinstance(document, dict):
            errors = document.get("errors") if isinstance(document, dict) else None
            raise BatchRefused(raw.status_code, errors if isinstance(errors, list) else [],
                               raw.text)
        results = document.get("batch")
        if not isinstance(results, list) or len(results) != len(payload["batch"]):
            raise BatchRefused(raw.status_code, [], "the answer does not hold one item per "
                               f"request: {raw.text[:200]}")
        return results


def _set_default(headers: dict[str, str], name: str, value: str) -> None:
    if not any(key.lower() == name.lower() for key in headers):
        headers[name] = value


def _chunks(items: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
