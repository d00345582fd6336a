"""The worker side of the Redis backend: read, batch, call, reply, then acknowledge.

Entries are read with a blocking XREADGROUP in a consumer group created at id "0", so requests
queued before any worker started are served, and they are never trimmed unread. A reply and the
XACK of its entries go in one MULTI, so an entry is acknowledged exactly when its callers are
answered. An entry left unacknowledged by a dead worker is claimed by a live one (XAUTOCLAIM)
after ``claim_idle_time``; that makes delivery at-least-once, and ``max_deliveries`` turns a
request that keeps killing workers into an error for its caller instead of an endless loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from . import conf
from .protocol import FAILED, GROUP, OK, Keys, Request, decode_entry, encode_reply, error_body

logger = logging.getLogger("batch_requests.dynamic.worker")

REPLY_TTL_MARGIN = 60
MAX_BLOCK_MS = 2000
SOCKET_TIMEOUT = 10.0


class RedisWorker:
    """Serve the batched function ``name`` from Redis until :meth:`request_stop` (or SIGTERM)."""

    def __init__(
        self,
        func: Callable[[list[Any]], Any],
        name: str = "default",
        *,
        batch_size: int | None = None,
        batch_time: float | None = None,
        redis_url: str | None = None,
        key_prefix: str | None = None,
        claim_idle_time: float | None = None,
        max_deliveries: int | None = None,
        consumer: str | None = None,
    ) -> None:
        self.func = func
        self.name = name
        self.batch_size: int = conf.get("BATCH_SIZE", batch_size)
        self.batch_time: float = conf.get("BATCH_TIME", batch_time)
        self.redis_url = conf.redis_url(redis_url)
        self.keys = Keys(conf.get("KEY_PREFIX", key_prefix), name)
        self.claim_idle_time: float = conf.get("CLAIM_IDLE_TIME", claim_idle_time)
        self.max_deliveries: int = conf.get("MAX_DELIVERIES", max_deliveries)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.is_async = inspect.iscoroutinefunction(func)
        self.batches = 0
        self.items = 0
        self._stopping = False
        self._read_task: asyncio.Task[Any] | None = None
        self._redis: Any = None

    def request_stop(self) -> None:
        """Finish the batch in hand, acknowledge it, then return from :meth:`run`."""
        self._stopping = True
        if self._read_task is not None:
            self._read_task.cancel()

    async def run(self, handle_signals: bool = True) -> None:
        from redis.asyncio import Redis
        from redis.exceptions import ResponseError

        self._redis = Redis.from_url(self.redis_url, socket_timeout=SOCKET_TIMEOUT)
        loop = asyncio.get_running_loop()
        signals = [signal.SIGTERM, signal.SIGINT]
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in signals:
                loop.add_signal_handler(sig, self.request_stop)
        else:
            signals = []
        try:
            try:
                await self._redis.xgroup_create(self.keys.stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            logger.info(
                "worker %s serving %s (batch_size=%d, batch_time=%ss)",
                self.consumer, self.keys.stream, self.batch_size, self.batch_time,
            )
            next_claim = 0.0
            while not self._stopping:
                requests: list[Request] = []
                if time.monotonic() >= next_claim:
                    requests += await self._claim()
                    next_claim = time.monotonic() + max(self.claim_idle_time / 2, 0.05)
                requests += await self._collect(len(requests), next_claim)
                if requests:
                    await self._process(requests)
            leftovers = await self._read({self.keys.stream: "0"}, self.batch_size * 16, None)
            if leftovers:
                await self._process(leftovers)
            await self._redis.xgroup_delconsumer(self.keys.stream, GROUP, self.consumer)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            await self._redis.aclose()
            logger.info(
                "worker %s stopped after %d items in %d batches",
                self.consumer, self.items, self.batches,
            )

    async def _read(self, streams: dict[str, str], count: int, block: int | None) -> list[Request]:
        reply = await self._redis.xreadgroup(
            GROUP, self.consumer, streams, count=count, block=block
        )
        requests: list[Request] = []
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                decoded = decode_entry(entry_id, fields or {})
                if not decoded:
                    await self._ack([entry_id])
                requests += decoded
        return requests

    async def _collect(self, have: int, next_claim: float) -> list[Request]:
        """Block for the first entries, then gather more until full or ``batch_time`` is up."""
        requests: list[Request] = []
        streams = {self.keys.stream: ">"}
        deadline = None
        while have + len(requests) < self.batch_size and not self._stopping:
            if deadline is None and not have:
                block = min(max(int((next_claim - time.monotonic()) * 1000), 1), MAX_BLOCK_MS)
            else:
                deadline = deadline or time.monotonic() + self.batch_time
                block = int((deadline - time.monotonic()) * 1000)
                if block < 1:
                    break
            want = self.batch_size - have - len(requests)
            self._read_task = asyncio.ensure_future(self._read(streams, want, block))
            try:
                got = await self._read_task
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
                break
            finally:
                self._read_task = None
            if not got and deadline is None and not have:
                break
            requests += got
            if deadline is None:
                deadline = time.monotonic() + self.batch_time
        return requests

    async def _claim(self) -> list[Request]:
        """Take over entries another consumer left unacknowledged for ``claim_idle_time``."""
        stream = self.keys.stream
        idle_ms = int(self.claim_idle_time * 1000)
        reply = await self._redis.xautoclaim(
            stream, GROUP, self.consumer, idle_ms, start_id="0-0", count=self.batch_size
        )
        claimed = [(eid, fields) for eid, fields in reply[1] if fields]
        if not claimed:
            return []
        first, last = claimed[0][0], claimed[-1][0]
        info = await self._redis.xpending_range(
            stream, GROUP, first, last, len(claimed) * 2, consumername=self.consumer
        )
        deliveries = {row["message_id"]: row["times_delivered"] for row in info}
        requests: list[Request] = []
        exhausted: list[Request] = []
        for entry_id, fields in claimed:
            decoded = decode_entry(entry_id, fields)
            if deliveries.get(entry_id, 1) > self.max_deliveries:
                exhausted += decoded
            else:
                requests += decoded
        logger.warning(
            "worker %s claimed %d stale entries (%d over max_deliveries)",
            self.consumer, len(claimed), len({r.entry_id for r in exhausted}),
        )
        if exhausted:
            message = f"delivered more than {self.max_deliveries} times; workers kept failing"
            answers = [(r, [r.request_id, FAILED, error_body("retries", message=message)])
                       for r in exhausted]
            await self._reply_and_ack(answers, {r.entry_id for r in exhausted})
        return requests

    async def _process(self, requests: list[Request]) -> None:
        now = time.time()
        live = [r for r in requests if r.deadline > now]
        answers: list[tuple[Request, list[Any]]] = []
        for start in range(0, len(live), self.batch_size):
            chunk = live[start : start + self.batch_size]
            answers += await self._call(chunk)
        if live:
            # Counted before the replies go out, so a caller that has its answer sees it.
            self.batches += 1
            self.items += len(live)
            logger.info("batch of %d items from %d entries", len(live),
                        len({r.entry_id for r in requests}))
        await self._reply_and_ack(answers, {r.entry_id for r in requests})

    async def _call(self, chunk: list[Request]) -> list[tuple[Request, list[Any]]]:
        items = [r.item for r in chunk]
        try:
            results = self.func(items)
            if inspect.isawaitable(results):
                results = await results
            count = len(results)
        except Exception as exc:
            logger.exception("batch function failed on a batch of %d items", len(items))
            return [(r, [r.request_id, FAILED, error_body("raised", exc)]) for r in chunk]
        if count != len(chunk):
            body = error_body("length", message=f"{len(chunk)}/{count}")
            return [(r, [r.request_id, FAILED, body]) for r in chunk]
        answers = []
        for request, result in zip(chunk, results, strict=True):
            if isinstance(result, BaseException):
                answers.append((request, [request.request_id, FAILED,
                                          error_body("returned", result)]))
            else:
                answers.append((request, [request.request_id, OK, result]))
        return answers

    async def _reply_and_ack(
        self, answers: list[tuple[Request, list[Any]]], entry_ids: set[bytes]
    ) -> None:
        by_key: dict[str, list[list[Any]]] = defaultdict(list)
        ttl: dict[str, float] = {}
        for request, answer in answers:
            by_key[request.reply_key].append(answer)
            ttl[request.reply_key] = max(ttl.get(request.reply_key, 0.0), request.deadline)
        now = time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            for key, key_answers in by_key.items():
                pipe.rpush(key, encode_reply(key_answers))
                pipe.expire(key, int(max(ttl[key] - now, 0) + REPLY_TTL_MARGIN))
            if entry_ids:
                ids = sorted(entry_ids)
                pipe.xack(self.keys.stream, GROUP, *ids)
                pipe.xdel(self.keys.stream, *ids)
            await pipe.execute()

    async def _ack(self, entry_ids: list[bytes]) -> None:
        await self._reply_and_ack([], set(entry_ids))
