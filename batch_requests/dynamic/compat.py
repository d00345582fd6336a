"""Drop-in names for users of ``dynamic_batcher``: ``DynamicBatcher`` and ``BatchProcessor``.

Same constructors, same coroutines, same ``REDIS__*`` / ``DYNAMIC_BATCHER__*`` environment
variables with the same priority (passed value > environment > default). Underneath they are the
Redis backend, so callers never poll and a crashed processor's requests are served by another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .redis_client import RedisBatcher
from .redis_worker import RedisWorker

DEFAULT_NAME = "default"


class DynamicBatcher(RedisBatcher):
    """``await DynamicBatcher().asend(body)``: send one JSON body, get its result.

    ``delay`` (dynamic_batcher's polling period) is accepted and ignored: replies are pushed,
    not polled. ``timeout`` (default 100 s) raises :class:`BatchTimeoutError` when exceeded;
    an unreachable Redis raises :class:`BackendUnavailableError`, both subclasses of ``BatchError``.
    """

    def __init__(
        self,
        delay: float = 0.01,
        timeout: float | None = None,
        *,
        name: str = DEFAULT_NAME,
        redis_url: str | None = None,
    ) -> None:
        super().__init__(name, timeout=timeout, redis_url=redis_url)
        self.delay = delay

    async def asend(self, body: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.acall(body)


class BatchProcessor:
    """``await BatchProcessor(batch_size, batch_time).start_daemon(func)``: serve batches.

    SIGTERM or SIGINT makes :meth:`start_daemon` finish the batch in hand, acknowledge it and
    return normally; a lost Redis server does not end it (it reconnects with backoff). Other
    keywords go to :class:`RedisWorker` (``claim_idle_time``, ``max_deliveries``,
    ``split_on_error=False`` for functions whose side effects must not repeat, ...).
    """

    def __init__(
        self,
        batch_size: int | None = None,
        batch_time: float | None = None,
        *,
        name: str = DEFAULT_NAME,
        redis_url: str | None = None,
        **worker_options: Any,
    ) -> None:
        self.name = name
        self.redis_url = redis_url
        self._batch_size = batch_size
        self._batch_time = batch_time
        self._options = worker_options
        self.worker: RedisWorker | None = None

    @property
    def batch_size(self) -> int:
        from . import conf

        return conf.get("BATCH_SIZE", self._batch_size)

    @property
    def batch_time(self) -> float:
        from . import conf

        return conf.get("BATCH_TIME", self._batch_time)

    async def start_daemon(self, func: Callable[[list[Any]], Any]) -> None:
        self.worker = RedisWorker(
            func,
            self.name,
            batch_size=self._batch_size,
            batch_time=self._batch_time,
            redis_url=self.redis_url,
            **self._options,
        )
        await self.worker.run()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.request_stop()
