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

import base64
import json as jsonlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from django.utils.datastructures import CaseInsensitiveMapping

__all__ = [
    "BatchClient",
    "BatchClientError",
    "BatchNotSent",
    "BatchRefused",
    "ItemFailed",
    "ItemResponse",
]

DEFAULT_ENDPOINT = "/api/v1/batch/"
DURATION_HEADER = "batch_requests.duration"
REFERENCE = "{result="


class BatchClientError(Exception):
    """Base class of every error this module raises."""


class BatchNotSent(BatchClientError):
    """An answer was read before its batch was sent."""


class BatchRefused(BatchClientError):
    """The server refused the whole batch (4xx/5xx): nothing in it ran.

    ``errors`` is the server's list of ``{"message", "index", "field"}`` when it sent one.
    """

    def __init__(self, status_code: int, errors: list[dict[str, Any]], text: str) -> None:
        self.status_code = status_code
        self.errors = errors
        self.text = text
        detail = "; ".join(_describe(error) for error in errors) or text[:200]
        super().__init__(f"batch refused with {status_code}: {detail}")


class ItemFailed(BatchClientError):
    """An item answered 4xx/5xx and its body was read from a strict client."""

    def __init__(self, response: ItemResponse) -> None:
        self.response = response
        super().__init__(f"{response.method} {response.url} answered "
                         f"{response.status_code} {response.reason_phrase}")


def _describe(error: Any) -> str:
    if not isinstance(error, Mapping):
        return str(error)
    where = "batch" if error.get("index") is None else f"item {error['index']}"
    field = f" {error['field']}" if error.get("field") else ""
    return f"{where}{field}: {error.get('message', '')}"


# --- transports -------------------------------------------------------------------------


@dataclass
class RawResponse:
    """What a transport hands back: just enough to parse the batch answer."""

    status_code: int
    text: str


class Transport(Protocol):
    """Sends one batch document; the only thing that differs between HTTP libraries."""

    def send(self, url: str, payload: dict[str, Any], headers: dict[str, str]) -> RawResponse:
        ...

    def csrf_token(self) -> str | None:
        ...

    def close(self) -> None:
        ...


class HTTPTransport:
    """``requests.Session`` and ``httpx.Client`` share ``post(url, json=, headers=, timeout=)``."""

    def __init__(self, session: Any, timeout: float | None, owned: bool) -> None:
        self.session = session
        self.timeout = timeout
        self.owned = owned

    def send(self, url: str, payload: dict[str, Any], headers: dict[str, str]) -> RawResponse:
        response = self.session.post(url, json=payload, headers=headers, timeout=self.timeout)
        return RawResponse(response.status_code, response.text)

    def csrf_token(self) -> str | None:
        # Both libraries' cookie jars answer .get(name); a logged-in session must send it back.
        try:
            return self.session.cookies.get("csrftoken")
        except Exception:  # several cookies of that name (httpx/requests raise): pass none
            return None

    def close(self) -> None:
        if self.owned:
            self.session.close()


class DjangoClientTransport:
    """Django's test ``Client``: runs the batch in-process, keeps the client's login."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def send(self, url: str, payload: dict[str, Any], headers: dict[str, str]) -> RawResponse:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        extra: dict[str, Any] = {"headers": headers}
        if parts.scheme == "https":
            extra["secure"] = True
        response = self.client.post(path, jsonlib.dumps(payload),
                                    content_type="application/json", **extra)
        charset = getattr(response, "charset", None) or "utf-8"
        return RawResponse(response.status_code, response.content.decode(charset, "replace"))

    def csrf_token(self) -> str | None:
        morsel = self.client.cookies.get("csrftoken")
        return morsel.value if morsel is not None else None

    def close(self) -> None:
        pass


def make_transport(session: Any, timeout: float | None) -> Transport:
    """Pick the transport for ``session``; build an httpx or requests one when it is None."""
    if session is None:
        return HTTPTransport(_default_session(), timeout, owned=True)
    if _is_django_test_client(session):
        return DjangoClientTransport(session)
    if callable(getattr(session, "send", None)) and callable(getattr(session, "csrf_token",
                                                                     None)):
        return session  # already a Transport
    if callable(getattr(session, "post", None)):
        return HTTPTransport(session, timeout, owned=False)
    raise TypeError(f"session must be an httpx.Client, a requests.Session or a Django test "
                    f"Client, not {type(session).__name__}")


def _is_django_test_client(session: Any) -> bool:
    try:
        from django.test import Client
    except ImportError:  # pragma: no cover - Django is a dependency of the package
        return False
    return isinstance(session, Client)


def _default_session() -> Any:
    try:
        import httpx
    except ImportError:
        pass
    else:
        return httpx.Client()
    try:
        import requests
    except ImportError:
        raise ImportError("BatchClient needs httpx or requests to reach a server: "
                          "pip install 'django-batch-requests[client]', or pass session=",
                          ) from None
    return requests.Session()


# --- answers ----------------------------------------------------------------------------


class ItemResponse:
    """The answer to one queued request; readable once its batch was sent.

    ``status_code``, ``reason_phrase``, ``headers`` and ``ok`` can always be read. With
    ``raise_for_status=True`` on the client, reading the body (``content``, ``text``,
    ``json()``) of a 4xx/5xx item raises :class:`ItemFailed`, so a strict caller cannot use a
    failed answer by mistake.
    """

    def __init__(self, method: str, url: str, strict: bool) -> None:
        self.method = method
        self.url = url
        self._strict = strict
        self._item: dict[str, Any] | None = None
        self._refused: BatchRefused | None = None

    def __repr__(self) -> str:
        state = self._item["status_code"] if self._item is not None else "pending"
        return f"<ItemResponse {self.method} {self.url} {state}>"

    # Filled in by BatchClient.send().
    def _resolve(self, item: dict[str, Any]) -> None:
        self._item = item

    def _refuse(self, error: BatchRefused) -> None:
        self._refused = error

    @property
    def sent(self) -> bool:
        return self._item is not None or self._refused is not None

    def _data(self) -> dict[str, Any]:
        if self._refused is not None:
            raise self._refused
        if self._item is None:
            raise BatchNotSent(f"{self.method} {self.url}: the batch has not been sent yet; "
                               "leave the `with` block or call send() first")
        return self._item

    @property
    def status_code(self) -> int:
        return int(self._data()["status_code"])

    @property
    def reason_phrase(self) -> str:
        return str(self._data().get("reason_phrase", ""))

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def headers(self) -> CaseInsensitiveMapping:
        return CaseInsensitiveMapping(self._data().get("headers") or {})

    @property
    def duration(self) -> float | None:
        """Seconds the server spent on this item (its duration header), if it sent one."""
        value = self.headers.get(DURATION_HEADER)
        return float(value) if value is not None else None

    def raise_for_status(self) -> ItemResponse:
        if not self.ok:
            raise ItemFailed(self)
        return self

    def _body(self) -> dict[str, Any]:
        data = self._data()
        if self._strict and int(data["status_code"]) >= 400:
            raise ItemFailed(self)
        return data

    @property
    def charset(self) -> str:
        content_type = self.headers.get("Content-Type", "")
        for param in content_type.split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip('"')
        return "utf-8"

    @property
    def content(self) -> bytes:
        data = self._body()
        body = data.get("body", "")
        if data.get("body_encoding") == "base64":
            return base64.b64decode(body)
        if not isinstance(body, str):  # DESERIALIZE_RESPONSES: a JSON value
            return jsonlib.dumps(body).encode()
        try:
            return body.encode(self.charset)
        except (LookupError, UnicodeEncodeError):
            return body.encode()

    @property
    def text(self) -> str:
        data = self._body()
        body = data.get("body", "")
        if data.get("body_encoding") == "base64":
            return base64.b64decode(body).decode(self.charset, "replace")
        return body if isinstance(body, str) else jsonlib.dumps(body)

    def json(self) -> Any:
        data = self._body()
        body = data.get("body", "")
        if isinstance(body, str) or data.get("body_encoding") == "base64":
            return jsonlib.loads(self.text)
        return body


# --- the builder ------------------------------------------------------------------------


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
