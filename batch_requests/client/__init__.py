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
import mimetypes
import os
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
from batch_requests.client.transports import FilePart, make_transport

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
        self._parts: dict[str, FilePart] = {}  # file parts of the queued items, by part name
        self._part_count = 0

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
                headers: Mapping[str, str] | None = None,
                files: Mapping[str, Any] | None = None, **item_fields: Any) -> ItemResponse:
        """Queue one request; returns its answer, readable after the batch was sent.

        ``json=`` sends a JSON body, ``data=`` a string/bytes body or a form (a mapping is
        form-encoded). ``files=`` maps form fields to files (an open file, bytes, or a
        ``(filename, content[, content_type])`` tuple, as with requests): the request is then
        sent as ``multipart/form-data``, with ``data=``'s fields beside the files, and the
        batch goes as a multipart batch. ``item_fields`` (``name=``, ``depends_on=``...) go
        into the item as is.
        """
        if json is not None and data is not None:
            raise ValueError("pass json= or data=, not both")
        item_headers = dict(headers or {})
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, doseq=True)
        item: dict[str, Any] = {"method": method.upper(), "url": url}
        if files:
            self._add_files(item, files, json, data, item_headers)
        elif json is not None:
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

    def _add_files(self, item: dict[str, Any], files: Mapping[str, Any], json: Any,
                   data: Any, headers: dict[str, str]) -> None:
        if json is not None or not (data is None or isinstance(data, Mapping)):
            raise ValueError("with files=, pass the other form fields as data= (a mapping)")
        if any(key.lower() == "content-type" for key in headers):
            raise ValueError("with files=, the request is multipart/form-data: do not set "
                             "Content-Type")
        if data:
            item["body"] = dict(data)
        item["files"] = {}
        for field, value in files.items():
            part = f"file{self._part_count}"
            self._part_count += 1
            self._parts[part] = file_part(field, value)
            item["files"][field] = part

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
        items, pending, parts = self._items, self._pending, self._parts
        self._items, self._pending, self._parts = [], [], {}
        for offset, chunk in enumerate(_chunks(items, size)):
            answers = pending[offset * size:offset * size + len(chunk)]
            try:
                chunk_parts = {part: parts[part] for item in chunk
                               for part in item.get("files", {}).values()}
                results = self._send_one({**self.batch_fields, "batch": chunk}, chunk_parts)
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

    def _send_one(self, payload: dict[str, Any],
                  parts: dict[str, FilePart] | None = None) -> list[dict[str, Any]]:
        headers = {"Accept": "application/json", **self.headers}
        token = self.transport.csrf_token()
        if token and not any(k.lower() == "x-csrftoken" for k in headers):
            headers["X-CSRFToken"] = token
        url = self.base_url + self.endpoint
        raw = (self.transport.send(url, payload, headers, files=parts) if parts
               else self.transport.send(url, payload, headers))
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


def file_part(field: str, value: Any) -> FilePart:
    """``(filename, content, content_type)`` from what ``files=`` accepts, read now."""
    content_type = None
    if isinstance(value, tuple):
        filename, content, *rest = value
        content_type = rest[0] if rest else None
    else:
        filename = os.path.basename(str(getattr(value, "name", "") or field))
        content = value
    if hasattr(content, "read"):
        content = content.read()
    if isinstance(content, str):
        content = content.encode("utf-8")
    if not isinstance(content, bytes):
        raise TypeError(f"files[{field!r}] must be a file, bytes or a (filename, content) "
                        f"tuple, not {type(value).__name__}")
    content_type = (content_type or mimetypes.guess_type(filename)[0]
                    or "application/octet-stream")
    return filename, content, content_type
