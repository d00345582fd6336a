"""Errors of the batch client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batch_requests.client.responses import ItemResponse


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
