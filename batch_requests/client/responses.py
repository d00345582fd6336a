"""``ItemResponse``: the answer to one queued request, filled in when its batch comes back."""

from __future__ import annotations

import base64
import json as jsonlib
from typing import Any

from django.utils.datastructures import CaseInsensitiveMapping

from batch_requests.client.errors import BatchNotSent, BatchRefused, ItemFailed

DURATION_HEADER = "batch_requests.duration"


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
