"""Dynamic batching: many concurrent single-item calls become one call of a batch function.

In-process (asyncio) or across processes and machines through Redis Streams, behind one calling
convention: ``await b(item)`` in async code, ``b(item)`` in sync code. Importing this package
needs neither Redis nor configured Django settings.
"""

from __future__ import annotations

from .async_batcher import AsyncBatcher
from .compat import BatchProcessor, DynamicBatcher
from .decorator import BatchedFunction, batched
from .errors import (
    BackendUnavailableError,
    BatchError,
    BatcherStoppedError,
    BatchTimeoutError,
    DeliveryLimitError,
    EncodingError,
    QueueFullError,
    RemoteBatchError,
    ResultLengthError,
)
from .inprocess import InProcessBatcher
from .interface import BaseBatcher
from .loop_thread import shutdown as shutdown_background_loop
from .orm import BulkCreateBatcher, InBulkLoader
from .redis_client import RedisBatcher
from .redis_worker import RedisWorker

__all__ = [
    "AsyncBatcher",
    "BackendUnavailableError",
    "BaseBatcher",
    "BatchError",
    "BatchProcessor",
    "BatchTimeoutError",
    "BatchedFunction",
    "BatcherStoppedError",
    "BulkCreateBatcher",
    "DeliveryLimitError",
    "DynamicBatcher",
    "EncodingError",
    "InBulkLoader",
    "InProcessBatcher",
    "QueueFullError",
    "RedisBatcher",
    "RedisWorker",
    "RemoteBatchError",
    "ResultLengthError",
    "batched",
    "shutdown_background_loop",
]
