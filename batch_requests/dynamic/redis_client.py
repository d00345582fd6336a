"""The web-process side of the Redis backend.

Per event loop: the items that arrive while a send is in flight are packed into the next
stream entry, and one reader task blocks on this process's reply list (BLPOP) and resolves the
callers' futures. No call polls, and none blocks the loop: only redis-py's asyncio client is used.
redis is imported on first use, so the package imports without it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any

from . import conf
from .errors import BatcherStoppedError, BatchTimeoutError, EncodingError
from .interface import BaseBatcher
from .protocol import FAILED, Keys, decode_error, encode_entry

logger = logging.getLogger("batch_requests.dynamic")

READ_BLOCK_SECONDS = 1
SOCKET_TIMEOUT = 10.0


@dataclass(eq=False)
class _LoopClient:
    """Connection, outbox and reply reader of one batcher on one event loop."""

    owner: RedisBatcher
    loop: asyncio.AbstractEventLoop
    redis: Any
    reply_key: str
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    outbox: list[tuple[int, Any]] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=itertools.count)
    sending: bool = False
    reader: asyncio.Task[None] | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def submit(self, item: Any) -> asyncio.Future[Any]:
        fut = self.loop.create_future()
        rid = next(self.ids)
        self.pending[rid] = fut
        self.outbox.append((rid, item))
        if not self.sending:
            self.sending = True
            self._spawn(self._send_loop())
        if self.reader is None or self.reader.done():
            self.reader = self.loop.create_task(self._read_loop())
        return fut

    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send_loop(self) -> None:
        try:
            while self.outbox:
                batch, self.outbox = self.outbox, []
                await self._send(batch)
        finally:
            self.sending = False

    async def _send(self, batch: list[tuple[int, Any]]) -> None:
        owner = self.owner
        timeout = owner.timeout
        deadline = time.time() + timeout
        pack = owner.pack_size
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for start in range(0, len(batch), pack):
                    chunk = self._encodable(batch[start : start + pack])
                    if chunk:
                        fields = encode_entry(self.reply_key, deadline, chunk)
                        pipe.xadd(owner.keys.stream, fields)
                await pipe.execute()
        except Exception as exc:
            for rid, _ in batch:
                self._settle(rid, exc)
            return
        self.loop.call_later(timeout, self._expire, [rid for rid, _ in batch], timeout)

    def _encodable(self, chunk: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
        try:
            json.dumps(chunk)
            return chunk
        except (TypeError, ValueError):
            good = []
            for rid, item in chunk:
                try:
                    json.dumps(item)
                    good.append((rid, item))
                except (TypeError, ValueError) as exc:
                    self._settle(rid, EncodingError(f"item is not JSON-serializable: {exc}"))
            return good

    def _settle(self, rid: int, error: BaseException | None, value: Any = None) -> None:
        fut = self.pending.pop(rid, None)
        if fut is None or fut.done():
            return
        if error is None:
            fut.set_result(value)
        else:
            fut.set_exception(error)

    def _expire(self, rids: list[int], timeout: float) -> None:
        for rid in rids:
            if rid in self.pending:
                self._settle(rid, BatchTimeoutError(f"no result from a worker within {timeout} s"))

    async def _read_loop(self) -> None:
        """Resolve futures from the reply list until nothing is pending any more."""
        redis, key = self.redis, self.reply_key
        while self.pending:
            try:
                popped = await redis.blpop([key], timeout=READ_BLOCK_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("reading replies from %s failed; retrying", key)
                await asyncio.sleep(0.5)
                continue
            if popped is None:
                continue
            for rid, status, value in json.loads(popped[1]):
                if status == FAILED:
                    self._settle(rid, decode_error(value))
                else:
                    self._settle(rid, None, value)

    async def close(self, drain: bool) -> None:
        if not drain:
            error = BatcherStoppedError("the batcher was stopped before a reply came")
            for rid in list(self.pending):
                self._settle(rid, error)
        waiting = [fut for fut in self.pending.values() if not fut.done()]
        if waiting:
            await asyncio.wait(waiting)
        if self.tasks:
            await asyncio.wait(list(self.tasks))
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        await self.redis.aclose()


class RedisBatcher(BaseBatcher):
    """Send items to the workers serving ``name`` and wait for each one's result.

    ``timeout`` bounds every call (default 100 s, as dynamic_batcher); past it the caller gets
    :class:`BatchTimeoutError` and a worker that sees the request later skips it.
    """

    def __init__(
        self,
        name: str = "default",
        *,
        timeout: float | None = None,
        redis_url: str | None = None,
        key_prefix: str | None = None,
        pack_size: int | None = None,
    ) -> None:
        self.name = name
        self._passed = (timeout, redis_url, key_prefix, pack_size)
        self._resolved = False
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
            weakref.WeakKeyDictionary()
        )
        self._stopped = False

    def _resolve(self) -> None:
        timeout, url, prefix, pack = self._passed
        self.timeout: float = conf.get("TIMEOUT", timeout)
        self.redis_url: str = conf.redis_url(url)
        self.keys = Keys(conf.get("KEY_PREFIX", prefix), self.name)
        self.pack_size: int = conf.get("BATCH_SIZE", pack)
        self._resolved = True

    def _client(self, loop: asyncio.AbstractEventLoop) -> _LoopClient:
        client = self._clients.get(loop)
        if client is None:
            if not self._resolved:
                self._resolve()
            from redis.asyncio import Redis

            redis = Redis.from_url(self.redis_url, socket_timeout=SOCKET_TIMEOUT)
            reply_key = self.keys.reply(uuid.uuid4().hex)
            client = self._clients[loop] = _LoopClient(self, loop, redis, reply_key)
        return client

    async def acall(self, item: Any) -> Any:
        if self._stopped:
            raise BatcherStoppedError("the batcher is stopped")
        return await self._client(asyncio.get_running_loop()).submit(item)

    async def astop(self, drain: bool = True) -> None:
        self._stopped = True
        here = asyncio.get_running_loop()
        waits = []
        for loop, client in list(self._clients.items()):
            if loop is here:
                waits.append(client.close(drain))
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(client.close(drain), loop)
                waits.append(asyncio.wrap_future(future))
        self._clients.clear()
        await asyncio.gather(*waits)
