"""The web-process side of the Redis backend.

One client per batcher per process, on one home loop (the shared background loop of
:mod:`.loop_thread`): callers from every thread and event loop of the process hand their items
to it (:mod:`.handoff`), so under WSGI, where each async view runs on its own short-lived loop,
the process still has one connection pool, one reply list and one reader. The items that arrive
while a send is in flight are packed into the next stream entries, and one reader task blocks
on the reply list (BLMPOP, which takes every reply queued at once; BLPOP before Redis 7) and
resolves the callers' futures. No call polls, and none blocks a loop: only redis-py's asyncio
client is used. redis is imported on first use.

Faults: a send is retried on a fresh connection a few times (a pooled connection the server
closed, a short blip), then its callers get :class:`BackendUnavailableError`. When the reader
finds the server restarted, it sends again every entry of a waiting caller that the server no
longer has (a restart without persistence loses them), so those callers still get results.
Every caller gets an answer or a :class:`BatchError` by its deadline, never a redis exception.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import conf, loop_thread
from .errors import BackendUnavailableError, BatcherStoppedError, BatchTimeoutError, EncodingError
from .handoff import Inbox, Waiter, fail_all, settle_results
from .interface import BaseBatcher, check_blocking_call
from .protocol import FAILED, Keys, decode_error, encode_entry
from .redis_worker import backoff, redis_errors
from .split import Failed

logger = logging.getLogger("batch_requests.dynamic")

READ_BLOCK_SECONDS = 1
SOCKET_TIMEOUT = 10.0
CONNECT_TIMEOUT = 2.0
#: Retries of one send on a new connection before its callers get BackendUnavailableError.
SEND_RETRIES = 2


def unavailable(exc: BaseException, url: str) -> BackendUnavailableError:
    error = BackendUnavailableError(
        f"Redis at {_safe_url(url)} unavailable: {type(exc).__name__}: {exc}"
    )
    error.__cause__ = exc
    return error


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = rest.rpartition("@")[2]
    return f"{scheme}{sep}{rest}"


@dataclass(eq=False)
class _Sent:
    """A stream entry for callers who may still be waiting: to expire, or to send again."""

    deadline: float  # time.time(), as written in the entry for the workers
    expires: float  # the same moment on the home loop's clock
    rids: list[int]
    fields: dict[str, str]
    entry_id: bytes | None = None  # None until XADD answered


class _Client:
    """Connection pool, outbox and reply reader of one batcher, on its home loop."""

    def __init__(self, owner: RedisBatcher, loop: asyncio.AbstractEventLoop) -> None:
        self.owner = owner
        self.loop = loop
        self.redis = owner._new_redis(SEND_RETRIES)
        # The reader has a connection of its own that never retries by itself: every lost
        # connection reaches _read_loop, which then checks whether the server restarted.
        self.reader_redis = owner._new_redis(0)
        self.reply_key = owner.keys.reply(uuid.uuid4().hex)
        self.pending: dict[int, Waiter] = {}
        self.outbox: list[tuple[int, Any]] = []
        self.outbox_since = 0.0  # time.time() of the oldest item in the outbox
        self.outbox_since_loop = 0.0  # the same on the loop's clock
        self.ids = itertools.count()
        self.sending = False
        self.reader: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.sent: deque[_Sent] = deque()  # in deadline order
        self.timer: asyncio.TimerHandle | None = None
        self.server_id: str | None = None  # INFO run_id: tells a restart from a blip
        self.suspect = False  # the reader lost its connection: check for a restart
        self.multipop = True  # BLMPOP (Redis 7) until the server says it does not know it
        self.stopped = False
        self.drained: asyncio.Future[None] | None = None
        self.inbox = Inbox(loop, self.accept)

    # --- taking items (home loop) -------------------------------------------------------------

    def submit(self, item: Any) -> asyncio.Future[Any]:
        """Queue an item from the home loop itself."""
        if self.stopped:
            raise BatcherStoppedError("the batcher is stopped")
        fut = self.loop.create_future()
        self._enqueue(item, fut)
        return fut

    def accept(self, items: list[Any], waiters: list[Waiter]) -> None:
        """Queue items handed over from other loops or threads (see :class:`Inbox`)."""
        if self.stopped:
            fail_all(self.loop, waiters, BatcherStoppedError("the batcher is stopped"))
            return
        for item, waiter in zip(items, waiters, strict=True):
            if not waiter.done():
                self._enqueue(item, waiter)

    def _enqueue(self, item: Any, waiter: Waiter) -> None:
        rid = next(self.ids)
        self.pending[rid] = waiter
        if not self.outbox:
            self.outbox_since = time.time()
            self.outbox_since_loop = self.loop.time()
        self.outbox.append((rid, item))
        if not self.sending:
            self.sending = True
            self._spawn(self._send_loop())

    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # --- answering callers --------------------------------------------------------------------

    def _resolve(self, answers: Iterable[tuple[int, Any]]) -> None:
        """Settle the callers of ``(request id, result)`` still waiting; a result wrapped in
        :class:`Failed` is an error to raise."""
        pending = self.pending
        waiters: list[Waiter] = []
        results: list[Any] = []
        for rid, result in answers:
            waiter = pending.pop(rid, None)
            if waiter is not None:
                waiters.append(waiter)
                results.append(result)
        if waiters:
            settle_results(self.loop, waiters, results)
        if not pending:
            self.sent.clear()
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            if self.drained is not None and not self.drained.done():
                self.drained.set_result(None)

    def _fail(self, rids: list[int], error: BaseException) -> None:
        failed = Failed(error)
        self._resolve((rid, failed) for rid in rids)

    def _arm(self) -> None:
        """One timer, for the earliest deadline of a sent entry (entries are in order)."""
        if self.timer is None and self.sent:
            self.timer = self.loop.call_at(self.sent[0].expires, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        now = self.loop.time()
        sent, pending = self.sent, self.pending
        expired: list[int] = []
        while sent and sent[0].expires <= now:
            expired += [rid for rid in sent.popleft().rids if rid in pending]
        if expired:
            timeout = self.owner.timeout
            self._fail(expired, BatchTimeoutError(f"no result from a worker within {timeout} s"))
        self._prune()
        self._arm()

    def abort(self) -> None:
        """Fail every waiting caller at once (the home loop is shutting down)."""
        self.stopped = True
        self.inbox.drain()
        self._fail(list(self.pending), BatcherStoppedError("the batcher's loop was shut down"))

    # --- sending ------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        try:
            while self.outbox:
                timeout = self.owner.timeout
                deadline = self.outbox_since + timeout
                expires = self.outbox_since_loop + timeout
                batch, self.outbox = self.outbox, []
                await self._send(batch, deadline, expires)
        finally:
            self.sending = False

    async def _send(self, batch: list[tuple[int, Any]], deadline: float, expires: float) -> None:
        owner = self.owner
        pack = owner.pack_size
        self._prune()
        entries: list[_Sent] = []
        for start in range(0, len(batch), pack):
            chunk = self._encodable(batch[start : start + pack])
            if chunk:
                fields = encode_entry(self.reply_key, deadline, chunk)
                entries.append(_Sent(deadline, expires, [rid for rid, _ in chunk], fields))
        if not entries:
            return
        self.sent.extend(entries)
        self._arm()
        try:
            ids = await self._xadd([entry.fields for entry in entries])
        except Exception as exc:
            error = unavailable(exc, owner.redis_url)
            self._fail([rid for entry in entries for rid in entry.rids], error)
            return
        for entry, entry_id in zip(entries, ids, strict=True):
            entry.entry_id = entry_id
        if self.reader is None and self.pending:
            self.reader = self.loop.create_task(self._read_loop())

    async def _xadd(self, entries: list[dict[str, str]]) -> list[bytes]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for fields in entries:
                pipe.xadd(self.owner.keys.stream, fields)
            return await pipe.execute()

    def _prune(self) -> None:
        """Forget the oldest sent entries whose callers are all answered or gone."""
        sent, pending = self.sent, self.pending
        while sent and not any(rid in pending for rid in sent[0].rids):
            sent.popleft()

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
                    self._fail([rid], EncodingError(f"item is not JSON-serializable: {exc}"))
            return good

    # --- reading replies ----------------------------------------------------------------------

    async def _read_loop(self) -> None:
        """Resolve futures from the reply list until nothing is pending any more."""
        redis, key = self.reader_redis, self.reply_key
        errors = redis_errors()
        delays: Iterator[float] | None = None
        try:
            while self.pending:
                try:
                    if self.server_id is None or self.suspect:
                        await self._check_server()
                    popped = await self._pop(redis, key)
                except Exception as exc:
                    self.suspect = True
                    if delays is None:
                        delays = backoff()
                        logger.warning("reading replies from Redis failed (%s: %s); "
                                       "reconnecting with backoff", type(exc).__name__, exc,
                                       exc_info=not isinstance(exc, errors))
                    await asyncio.sleep(next(delays))
                    continue
                if delays is not None:
                    delays = None
                    logger.warning("reading replies from Redis again")
                for raw in popped:
                    self._deliver(raw)
        finally:
            self.reader = None

    async def _pop(self, redis: Any, key: str) -> list[bytes]:
        """Wait for replies; take every one queued (up to 64) in the same round trip."""
        if self.multipop:
            from redis.exceptions import ResponseError

            try:
                popped = await redis.blmpop(READ_BLOCK_SECONDS, 1, key, direction="LEFT",
                                            count=64)
            except ResponseError as exc:  # Redis < 7, or not allowed: one reply per trip
                logger.info("BLMPOP refused (%s); reading replies with BLPOP", exc)
                self.multipop = False
            else:
                return list(popped[1]) if popped else []
        popped = await redis.blpop([key], timeout=READ_BLOCK_SECONDS)
        return [popped[1]] if popped else []

    def _deliver(self, raw: bytes) -> None:
        try:
            answers = [
                (rid, Failed(decode_error(value)) if status == FAILED else value)
                for rid, status, value in json.loads(raw)
            ]
        except (TypeError, ValueError) as exc:
            logger.error("ignoring a malformed reply on %s: %s", self.reply_key, exc)
            return
        self._resolve(answers)

    async def _check_server(self) -> None:
        """Learn the server's identity; after a restart, send again what it lost."""
        from redis.exceptions import ResponseError

        try:
            info = await self.reader_redis.info("server")
            server_id = str(info.get("run_id", ""))
        except ResponseError:  # INFO not allowed: assume the worst
            server_id = ""
        # After a lost connection: a new server, or one we never got to know (it may have
        # died before our first INFO), may have lost what was sent to it.
        if self.suspect and (not server_id or server_id != self.server_id):
            await self._recover()
        self.server_id = server_id
        self.suspect = False

    async def _recover(self) -> None:
        """Send again the entries of waiting callers that the restarted server has lost."""
        self._prune()
        now = time.time()
        live = [s for s in self.sent if s.entry_id is not None and s.deadline > now
                and any(rid in self.pending for rid in s.rids)]
        if not live:
            return
        stream = self.owner.keys.stream
        async with self.redis.pipeline(transaction=False) as pipe:
            for s in live:
                pipe.xrange(stream, s.entry_id, s.entry_id)
            found = await pipe.execute()
        lost = [s for s, rows in zip(live, found, strict=True) if not rows]
        if not lost:
            return
        ids = await self._xadd([s.fields for s in lost])
        for s, entry_id in zip(lost, ids, strict=True):
            s.entry_id = entry_id
        logger.warning("Redis restarted: sent %d lost entries (%d requests) again",
                       len(lost), sum(len(s.rids) for s in lost))

    # --- stopping -----------------------------------------------------------------------------

    async def close(self, drain: bool) -> None:
        self.inbox.drain()  # items handed over before the stop are still served (or failed)
        self.stopped = True
        if not drain:
            self._fail(list(self.pending), BatcherStoppedError(
                "the batcher was stopped before a reply came"))
        if self.pending:
            self.drained = self.loop.create_future()
            await self.drained
        if self.tasks:
            await asyncio.wait(list(self.tasks))
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        reader = self.reader
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await self.redis.aclose()
        await self.reader_redis.aclose()


class RedisBatcher(BaseBatcher):
    """Send items to the workers serving ``name`` and wait for each one's result.

    ``timeout`` bounds every call (default 100 s, as dynamic_batcher); past it the caller gets
    :class:`BatchTimeoutError` and a worker that sees the request later skips it. When Redis
    cannot be reached the caller gets :class:`BackendUnavailableError` (a view may answer 503).
    Callers on any thread or event loop of the process share one client on the background loop.
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
        self._home: _Client | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def _resolve(self) -> None:
        timeout, url, prefix, pack = self._passed
        self.timeout: float = conf.get("TIMEOUT", timeout)
        self.redis_url: str = conf.redis_url(url)
        self.keys = Keys(conf.get("KEY_PREFIX", prefix), self.name)
        self.pack_size: int = conf.get("BATCH_SIZE", pack)
        if self.pack_size < 1:
            raise ValueError("pack_size must be at least 1")
        self._resolved = True

    def _new_redis(self, retries: int) -> Any:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialWithJitterBackoff

        return Redis.from_url(
            self.redis_url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries),
        )

    def _client(self) -> _Client:
        """The client on the home loop; a new one after a fork or a loop shutdown."""
        return loop_thread.home_object(self, self._build_client)

    def _build_client(self, loop: asyncio.AbstractEventLoop) -> _Client:
        if not self._resolved:
            self._resolve()
        client = _Client(self, loop)
        client.stopped = self._stopped
        return client

    async def acall(self, item: Any) -> Any:
        if self._stopped:
            raise BatcherStoppedError("the batcher is stopped")
        client = self._client()
        here = asyncio.get_running_loop()
        if here is client.loop:
            return await client.submit(item)
        fut = here.create_future()
        try:
            client.inbox.put(item, fut)
        except RuntimeError as exc:  # the home loop is closed
            raise BatcherStoppedError("the batcher's loop is closed") from exc
        return await fut

    def call(self, item: Any, timeout: float | None = None) -> Any:
        """Blocking form of :meth:`acall`, for threads without a running event loop."""
        check_blocking_call(self._stopped)
        client = self._client()
        waiter: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            client.inbox.put(item, waiter)
        except RuntimeError as exc:
            raise BatcherStoppedError("the batcher's loop is closed") from exc
        # The client fails the call at its own deadline; the extra second only guards a home
        # loop that stopped running.
        wait = timeout if timeout is not None else self.timeout + 1.0
        try:
            return waiter.result(wait)
        except concurrent.futures.TimeoutError as exc:
            waiter.cancel()
            raise BatchTimeoutError(f"no result within {wait} s") from exc

    async def astop(self, drain: bool = True) -> None:
        self._stopped = True
        home = self._home
        if home is None or home.loop.is_closed() or not home.loop.is_running():
            return
        if home.loop is asyncio.get_running_loop():
            await home.close(drain)
        else:
            future = asyncio.run_coroutine_threadsafe(home.close(drain), home.loop)
            await asyncio.wrap_future(future)
