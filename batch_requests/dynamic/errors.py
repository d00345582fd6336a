"""Exceptions raised to callers of a dynamic batcher.

Every failure a caller can meet has its own type, so a view can tell "the service is busy"
(back off) from "the batch function failed" (a bug) from "no answer in time" (retry).
"""

from __future__ import annotations


class BatchError(Exception):
    """Base class of every error this package raises to a caller."""


class QueueFullError(BatchError):
    """More items are waiting than ``max_queue_size`` allows; the caller should back off."""


class BatcherStoppedError(BatchError, RuntimeError):
    """The batcher was stopped before this item could be (or finish being) processed.

    Also a ``RuntimeError``, which is what async-batcher's ``process()`` raises after ``stop()``.
    """


class ResultLengthError(BatchError, ValueError):
    """The batch function returned a result list whose length differs from its input's.

    Also a ``ValueError``, which is what async-batcher raises for it.
    """

    def __init__(self, expected: int, got: int | None) -> None:
        shown = "a non-list" if got is None else f"{got} results"
        super().__init__(f"batch function returned {shown} for a batch of {expected} items")
        self.expected = expected
        self.got = got


class BatchTimeoutError(BatchError, TimeoutError):
    """No result arrived within the caller's timeout."""


class RemoteBatchError(BatchError):
    """The batch function raised (or returned an exception) in a remote worker.

    Exceptions are sent back as type name and message, never pickled: a reply read from Redis
    must not be able to run code in the web process.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


class DeliveryLimitError(BatchError):
    """The request was delivered to workers too many times (each crashed or hung on it)."""


class EncodingError(BatchError):
    """An item or a result could not be encoded as JSON for the Redis backend."""


class BackendUnavailableError(BatchError, ConnectionError):
    """The backend (the Redis server) could not be reached in time; a view may answer 503."""
