"""The worker side of the Redis backend: read about one batch, call, reply and acknowledge it.

Entries are read with a blocking XREADGROUP in a consumer group created at id "0", so requests
queued before any worker started are served, and they are never trimmed unread. A worker reads
only about one batch's worth of items at a time (a small Lua script reads entries until they
hold what the batch still needs), so idle workers share the work, and it replies to and
acknowledges each batch as soon as that batch is done, atomically, in the same script call that
reads the next batch's entries (one round trip per batch under load; a MULTI and plain reads
when the server refuses scripts): a worker that dies leaves unacknowledged only the batch in
hand and at most one entry read for the next batch. An entry that does not fit in a batch is
split; the requests of it already answered are recorded in a short-lived set, so that whoever
claims the entry after a crash runs only the others.

An entry left unacknowledged by a dead worker is claimed by a live one (XAUTOCLAIM) after
``claim_idle_time``; that makes delivery at-least-once. An entry delivered more than
``max_deliveries`` times (it keeps killing workers) is answered with an error, moved to the
dead-letter stream ``{prefix}:{name}:dead`` and removed from the requests stream.

Redis faults never end :meth:`RedisWorker.run`: on a connection error the worker backs off
(0.1 s doubling to 2 s, with jitter), reconnects, re-creates the consumer group if the server
lost it, and goes on. A batch whose reply cannot be sent is kept and its reply retried until its
callers' deadlines pass, so callers waiting through a short outage still get their results.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from . import conf, metrics
from .errors import ResultLengthError
from .protocol import (
    DEAD_MAXLEN,
    FAILED,
    GROUP,
    OK,
    Keys,
    Request,
    dead_letter,
    decode_entry,
    encode_reply,
    entry_time,
    error_body,
    length_body,
)
from .split import Failed, call_split

logger = logging.getLogger("batch_requests.dynamic.worker")

REPLY_TTL_MARGIN = 60
MAX_BLOCK_MS = 2000
SOCKET_TIMEOUT = 10.0
CONNECT_TIMEOUT = 2.0
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 2.0
#: Seconds a stopping worker keeps trying to deliver the batch in hand while Redis is down.
STOP_GRACE = 10.0
#: Seconds between two samples of the queue depth (one XLEN).
DEPTH_INTERVAL = 1.0
#: Below this many seconds left to fill a batch, poll (5 steps of the batch time) instead of
#: BLOCK: Redis ends a blocking read's timeout only on its ~100 ms timer (hz 10).
PRECISE_WAIT = 0.2


def backoff(first: float = BACKOFF_FIRST, cap: float = BACKOFF_MAX) -> Iterator[float]:
    """Pauses between reconnection attempts: doubling from ``first`` up to ``cap``, jittered."""
    delay = first
    while True:
        yield delay * random.uniform(0.5, 1.0)
        delay = min(delay * 2, cap)


def redis_errors() -> tuple[type[BaseException], ...]:
    """What a lost, restarted or unreachable server raises (redis-py wraps most in RedisError)."""
    from redis.exceptions import RedisError

    return (RedisError, OSError, asyncio.TimeoutError)


def is_nogroup(exc: BaseException) -> bool:
    return "NOGROUP" in str(exc)


def script_refused(exc: BaseException) -> bool:
    """Lua scripting is not allowed for this user or on this server."""
    from redis.exceptions import NoPermissionError

    message = str(exc)
    return isinstance(exc, NoPermissionError) or "NOPERM" in message or (
        "unknown command" in message.lower() or "disabled" in message)


#: The worker's one round trip per batch, atomic like a MULTI: push the replies (with a TTL),
#: record the answered requests of entries split across batches, delete the done sets of
#: entries finished, acknowledge and delete the finished entries, then read, without
#: blocking, entries for up to ``want`` items of the next batch (each entry says how many in
#: its field ``n``), so a worker takes about one batch and leaves the rest to the others.
#: With nothing to reply it only reads (see ``_fill``).
#:
#: KEYS: the stream, ``r`` reply lists, ``p`` done sets to add to, done sets to delete.
#: ARGV: group, consumer, want, r, p, number of ids to ack; then per reply list its payload
#: and TTL; per done set its TTL, member count and members; then the ids to ack.
SERVE_SCRIPT = """
local group, consumer, want = ARGV[1], ARGV[2], tonumber(ARGV[3])
local r, p, nack = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local a = 7
for i = 1, r do
  redis.call('RPUSH', KEYS[1 + i], ARGV[a])
  redis.call('EXPIRE', KEYS[1 + i], ARGV[a + 1])
  a = a + 2
end
for i = 1, p do
  local key, ttl, count = KEYS[1 + r + i], ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  for first = a, a + count - 1, 1000 do
    redis.call('SADD', key, unpack(ARGV, first, math.min(first + 999, a + count - 1)))
  end
  redis.call('EXPIRE', key, ttl)
  a = a + count
end
for i = 2 + r + p, #KEYS do
  redis.call('DEL', KEYS[i])
end
for first = a, a + nack - 1, 1000 do
  local last = math.min(first + 999, a + nack - 1)
  redis.pcall('XACK', KEYS[1], group, unpack(ARGV, first, last))  -- NOGROUP: nothing to ack
  redis.call('XDEL', KEYS[1], unpack(ARGV, first, last))
end
local got = 0
local out = {}
while got < want do
  local reply = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1,
                            'STREAMS', KEYS[1], '>')
  if not reply or reply.err then break end
  local entry = reply[1][2][1]
  out[#out + 1] = entry
  local fields = entry[2]
  local n = nil
  local packed = nil
  for i = 1, #fields, 2 do
    if fields[i] == 'n' then n = tonumber(fields[i + 1]) end
    if fields[i] == 'p' then packed = fields[i + 1] end
  end
  if n == nil and packed ~= nil then
    local ok, pairs = pcall(cjson.decode, packed)
    if ok and type(pairs) == 'table' then n = #pairs end
  end
  got = got + math.max(n or 1, 1)
end
return out
"""


@dataclass(eq=False)
class _Entry:
    """One stream entry in a worker's hands: its requests not yet answered, when it was read."""

    entry_id: bytes
    requests: list[Request]
    read_at: float  # time.monotonic()
    started: bool = False  # some of its requests were answered (recorded in its done set)


@dataclass(eq=False)
class _Part:
    """The requests of one entry in one batch; ``last`` when they finish the entry."""

    entry: _Entry
    requests: list[Request]
    last: bool


class RedisWorker:
    """Serve the batched function ``name`` from Redis until :meth:`request_stop` (or SIGTERM).

    ``split_on_error`` (default: the ``SPLIT_ON_ERROR`` option, on): when the function raises
    for a batch of several items, call it again on each half, recursively, so only the items
    that fail on their own get the error. Turn it off for functions whose side effects must not
    repeat.
    """

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
        split_on_error: bool | None = None,
    ) -> None:
        self.func = func
        self.name = name
        self.batch_size: int = conf.get("BATCH_SIZE", batch_size)
        self.batch_time: float = conf.get("BATCH_TIME", batch_time)
        self.redis_url = conf.redis_url(redis_url)
        self.keys = Keys(conf.get("KEY_PREFIX", key_prefix), name)
        self.claim_idle_time: float = conf.get("CLAIM_IDLE_TIME", claim_idle_time)
        self.max_deliveries: int = conf.get("MAX_DELIVERIES", max_deliveries)
        self.split_on_error: bool = conf.get("SPLIT_ON_ERROR", split_on_error)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            getattr(func, "__call__", None)  # noqa: B004
        )
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        # Counters, for logs and tests.
        self.batches = 0  # batches served (split retries not counted again)
        self.items = 0  # requests served
        self.max_held = 0  # most items in hand at once: the batch being filled and carried over
        self.reconnects = 0  # connection losses recovered from
        self.dead_letters = 0  # entries moved to the dead-letter stream
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._read_task: asyncio.Task[Any] | None = None
        self._redis: Any = None
        self._held: deque[_Entry] = deque()
        self._held_items = 0
        self._entry_items = 0  # most items seen in one entry (0: none seen yet)
        self._claim_cursor = "0-0"
        self._read_entries = 0
        self._read_items = 0
        self._recorder: Any = metrics.NOOP
        self._script: Any = None  # None: read one entry at a time instead

    def request_stop(self) -> None:
        """Finish the batch in hand, acknowledge it, then return from :meth:`run`."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._read_task is not None:
            self._read_task.cancel()

    def _connect(self) -> Any:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialWithJitterBackoff

        # One quick retry hides a pooled connection the server closed (restart, idle timeout);
        # longer outages are the serving loop's business, with its own backoff.
        return Redis.from_url(
            self.redis_url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.2), 1),
        )

    async def run(self, handle_signals: bool = True) -> None:
        self._redis = self._connect()
        self._script = self._redis.register_script(SERVE_SCRIPT)
        self._wake = asyncio.Event()
        if self._stopping:
            self._wake.set()
        self._recorder = metrics.recorder(self.name, "redis")
        loop = asyncio.get_running_loop()
        signals = [signal.SIGTERM, signal.SIGINT]
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in signals:
                loop.add_signal_handler(sig, self.request_stop)
        else:
            signals = []
        logger.info(
            "worker %s serving %s (batch_size=%d, batch_time=%ss, split_on_error=%s)",
            self.consumer, self.keys.stream, self.batch_size, self.batch_time,
            self.split_on_error,
        )
        try:
            await self._serve()
            await self._finish()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            await self._redis.aclose()
            logger.info(
                "worker %s stopped after %d items in %d batches",
                self.consumer, self.items, self.batches,
            )

    # --- the serving loop ---------------------------------------------------------------------

    async def _serve(self) -> None:
        errors = redis_errors()
        from redis.exceptions import ResponseError

        delays: Iterator[float] | None = None
        group_ready = False
        next_claim = next_depth = 0.0
        while not self._stopping:
            try:
                if not group_ready:
                    await self._ensure_group()
                    group_ready = True
                if delays is not None:
                    logger.warning("worker %s reconnected to Redis", self.consumer)
                    delays = None
                now = time.monotonic()
                if now >= next_claim:
                    full = await self._claim()
                    next_claim = now if full else now + max(self.claim_idle_time / 2, 0.05)
                await self._collect(next_claim)
                if self._held:
                    await self._process(self._take_batch())
                if now >= next_depth and self._recorder.enabled:
                    next_depth = now + DEPTH_INTERVAL
                    await self._sample_depth()
            except ResponseError as exc:
                if not is_nogroup(exc):
                    delays = await self._pause_after(exc, delays)
                else:
                    # The server lost the group (a restart without persistence, a FLUSHALL).
                    logger.warning("worker %s: consumer group gone, creating it again",
                                   self.consumer)
                    group_ready = False
            except errors as exc:
                group_ready = False
                delays = await self._pause_after(exc, delays)

    async def _pause_after(
        self, exc: BaseException, delays: Iterator[float] | None
    ) -> Iterator[float]:
        if delays is None:
            self.reconnects += 1
            delays = backoff()
            logger.warning("worker %s lost Redis (%s: %s); reconnecting with backoff",
                           self.consumer, type(exc).__name__, exc)
        else:
            logger.debug("worker %s: Redis still unavailable (%s)", self.consumer, exc)
        await self._pause(next(delays))
        return delays

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when a stop is requested."""
        assert self._wake is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _ensure_group(self) -> None:
        from redis.exceptions import ResponseError

        try:
            await self._redis.xgroup_create(self.keys.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        if self._script is not None:
            try:  # loaded now, not at the first batch
                await self._redis.script_load(SERVE_SCRIPT)
            except ResponseError as exc:
                if not script_refused(exc):
                    raise
                self._no_script(exc)

    def _no_script(self, exc: BaseException) -> None:
        logger.warning("worker %s cannot run its Lua script (%s); reading one entry at a "
                       "time instead", self.consumer, exc)
        self._script = None

    async def _finish(self) -> None:
        """After a stop: serve what was delivered to this consumer, then leave the group."""
        self._held.clear()
        self._held_items = 0
        deadline = time.monotonic() + STOP_GRACE
        try:
            while time.monotonic() < deadline:
                count = self._entries_for(self.batch_size)
                reply = await self._redis.xreadgroup(
                    GROUP, self.consumer, {self.keys.stream: "0"}, count=count)
                entries = [e for _stream, found in reply or () for e in found]
                if not entries:
                    break
                done = await self._done_sets([entry_id for entry_id, _ in entries])
                for entry_id, fields in entries:
                    requests = decode_entry(entry_id, fields or {})
                    if requests:
                        await self._take_again(entry_id, requests, done.get(entry_id))
                    else:
                        await self._take(entry_id, fields)
                while self._held:
                    await self._process(self._take_batch())
            else:
                return
            await self._redis.xgroup_delconsumer(self.keys.stream, GROUP, self.consumer)
        except redis_errors() as exc:
            logger.warning("worker %s stopping without Redis (%s); its unacknowledged entries "
                           "will be claimed by another worker", self.consumer, exc)

    # --- reading ------------------------------------------------------------------------------

    def _entries_for(self, items: int) -> int:
        """How many entries to read for about ``items`` items (1 until an entry was seen)."""
        if self._entry_items <= 0:
            return 1
        return max(1, items // self._entry_items)

    def _hold(self, entry_id: bytes, requests: list[Request], front: bool = False) -> None:
        entry = _Entry(entry_id, requests, time.monotonic())
        if front:
            self._held.appendleft(entry)
        else:
            self._held.append(entry)
        size = len(requests)
        self._held_items += size
        self._read_entries += 1
        self._read_items += size
        if size > self._entry_items:
            self._entry_items = size
        if self._held_items > self.max_held:
            self.max_held = self._held_items

    def _take_batch(self) -> list[_Part]:
        """Up to ``batch_size`` requests from the front of the hand, in order.

        An entry that does not fit whole is split: the rest stays in hand for the next batch,
        and the requests answered meanwhile are recorded (its done set), so that if this worker
        dies, whoever claims the entry runs only the requests not answered yet.
        """
        held = self._held
        parts: list[_Part] = []
        room = self.batch_size
        while held and room > 0:
            entry = held[0]
            if len(entry.requests) <= room:
                held.popleft()
                parts.append(_Part(entry, entry.requests, True))
                room -= len(entry.requests)
            else:
                parts.append(_Part(entry, entry.requests[:room], False))
                entry.requests = entry.requests[room:]
                room = 0
        self._held_items -= self.batch_size - room
        return parts

    async def _read(self, streams: dict[str, str], count: int, block: int | None) -> int:
        """Read up to ``count`` entries into the hand; returns how many were read."""
        reply = await self._redis.xreadgroup(
            GROUP, self.consumer, streams, count=count, block=block
        )
        entries = [entry for _stream, stream_entries in reply or () for entry in stream_entries]
        for entry_id, fields in entries:
            await self._take(entry_id, fields)
        return len(entries)

    async def _take(self, entry_id: bytes, fields: dict[bytes, bytes] | None) -> None:
        requests = decode_entry(entry_id, fields or {})
        if requests:
            self._hold(entry_id, requests)
        elif fields:
            await self._bury([(entry_id, fields, 1)], "unreadable", [])
        else:  # deleted while pending (already answered): nothing to do but ack
            await self._reply_and_ack([], [entry_id])

    async def _fill(self, want: int) -> int:
        """Read, without blocking, entries holding about ``want`` more items (one entry more
        at most); returns how many entries were read."""
        from redis.exceptions import ResponseError

        if self._script is not None:
            try:
                raw = await self._script(
                    keys=[self.keys.stream], args=[GROUP, self.consumer, want, 0, 0, 0])
            except ResponseError as exc:
                if not script_refused(exc):
                    raise
                self._no_script(exc)
            else:
                for entry_id, flat in raw or ():
                    await self._take(entry_id, dict(zip(flat[::2], flat[1::2], strict=True)))
                return len(raw or ())
        streams = {self.keys.stream: ">"}
        read = 0
        target = self._held_items + want
        while self._held_items < target:
            got = await self._read(streams, 1, None)
            if not got:
                break
            read += got
        return read

    async def _poll_more(self, remaining: float) -> int:
        """Wait a fraction of the batch time, then take what came meanwhile."""
        await asyncio.sleep(min(remaining, max(self.batch_time / 5, 0.001)))
        return await self._fill(self.batch_size - self._held_items)

    async def _read_more(self, block: int) -> int:
        """Block for one entry, then take without blocking as many as the batch still needs."""
        got = await self._read({self.keys.stream: ">"}, 1, block)
        if got and self._held_items < self.batch_size:
            got += await self._fill(self.batch_size - self._held_items)
        return got

    async def _collect(self, next_claim: float) -> None:
        """Block for the first entry, then read more until the batch is full or its time is up.

        Each read asks for about the items still missing, so a worker never takes work that
        another, idle, worker could start on now.
        """
        while self._held_items < self.batch_size and not self._stopping:
            if self._held:
                remaining = self._held[0].read_at + self.batch_time - time.monotonic()
                if remaining <= 0:
                    break
                if remaining > PRECISE_WAIT:
                    # The server times a BLOCK out only about every 100 ms (hz 10): block for
                    # the long part of the wait, poll the end of it.
                    work = self._read_more(int((remaining - PRECISE_WAIT / 2) * 1000))
                else:
                    work = self._poll_more(remaining)
            else:
                block = min(max(int((next_claim - time.monotonic()) * 1000), 1), MAX_BLOCK_MS)
                work = self._read_more(block)
            self._read_task = asyncio.ensure_future(work)
            try:
                got = await self._read_task
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
                break
            finally:
                self._read_task = None
            if not got and not self._held:
                break  # nothing came until it was time to look for abandoned entries

    async def _claim(self) -> bool:
        """Take over entries another consumer left unacknowledged for ``claim_idle_time``.

        Returns True when there may be more to claim right away.
        """
        stream = self.keys.stream
        idle_ms = int(self.claim_idle_time * 1000)
        count = self._entries_for(self.batch_size)
        reply = await self._redis.xautoclaim(
            stream, GROUP, self.consumer, idle_ms, start_id=self._claim_cursor, count=count
        )
        # XAUTOCLAIM looks at about 10 * count pending entries per call: go on from where it
        # stopped until the whole pending list was seen.
        cursor = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        self._claim_cursor = cursor
        more = cursor != "0-0" or len(reply[1]) >= count
        claimed = [(eid, fields) for eid, fields in reply[1] if fields]
        if not claimed:
            return more
        first, last = claimed[0][0], claimed[-1][0]
        info = await self._redis.xpending_range(
            stream, GROUP, first, last, len(claimed) * 2, consumername=self.consumer
        )
        deliveries = {row["message_id"]: row["times_delivered"] for row in info}
        exhausted = []
        taken = []
        done = await self._done_sets([entry_id for entry_id, _ in claimed])
        for entry_id, fields in claimed:
            times = deliveries.get(entry_id, 1)
            if times > self.max_deliveries:
                exhausted.append((entry_id, fields, times))
                continue
            requests = decode_entry(entry_id, fields)
            if requests:
                taken.append((entry_id, requests))
            else:
                await self._bury([(entry_id, fields, times)], "unreadable", [])
        for entry_id, requests in reversed(taken):  # older than anything read since: go first
            await self._take_again(entry_id, requests, done.get(entry_id), front=True)
        self._recorder.observe_redeliveries(len(claimed))
        logger.warning(
            "worker %s claimed %d stale entries (%d over max_deliveries)",
            self.consumer, len(claimed), len(exhausted),
        )
        if exhausted:
            message = f"delivered more than {self.max_deliveries} times; workers kept failing"
            body = error_body("retries", message=message)
            answers = [
                (request, [request.request_id, FAILED, body])
                for entry_id, fields, _ in exhausted
                for request in decode_entry(entry_id, fields)
                if request.request_id not in done.get(entry_id, ())
            ]
            await self._bury(exhausted, "max_deliveries", answers)
        return more

    async def _done_sets(self, entry_ids: list[bytes]) -> dict[bytes, set[int]]:
        """The requests already answered of entries that were split across batches."""
        if not entry_ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in entry_ids:
                pipe.smembers(self.keys.done(entry_id))
            members = await pipe.execute()
        return {entry_id: {int(m) for m in found}
                for entry_id, found in zip(entry_ids, members, strict=True) if found}

    async def _take_again(
        self, entry_id: bytes, requests: list[Request], done: set[int] | None, front: bool = False
    ) -> None:
        """Hold a redelivered entry, without the requests another worker answered already."""
        if done:
            requests = [r for r in requests if r.request_id not in done]
            if not requests:  # answered in full, not acknowledged
                await self._reply_and_ack([], [entry_id], started=[entry_id])
                return
        self._hold(entry_id, requests, front=front)
        if done:
            self._held[0 if front else -1].started = True

    async def _sample_depth(self) -> None:
        entries = await self._redis.xlen(self.keys.stream)
        per_entry = self._read_items / self._read_entries if self._read_entries else 1.0
        self._recorder.set_queue_depth(round(entries * per_entry))

    # --- processing ---------------------------------------------------------------------------

    async def _process(self, parts: list[_Part]) -> None:
        """Call the function on the live requests of a batch, then reply and acknowledge."""
        now = time.time()
        live = [r for part in parts for r in part.requests if r.deadline > now]
        answers: list[tuple[Request, list[Any]]] = []
        if live:
            waited = max(now - min(entry_time(p.entry.entry_id) for p in parts), 0.0)
            answers = await self._call(live, waited)
            # Counted before the replies go out, so a caller that has its answer sees it.
            self.batches += 1
            self.items += len(live)
            logger.info("batch of %d items from %d entries", len(live), len(parts))
        finished = [p.entry.entry_id for p in parts if p.last]
        progress = [(p.entry.entry_id, p.requests) for p in parts if not p.last]
        started = [p.entry.entry_id for p in parts if p.last and p.entry.started]
        # The same round trip reads the next batch's entries (when there are some): under load
        # a worker makes one round trip per batch.
        want = 0 if self._stopping else self.batch_size - self._held_items
        ahead = await self._deliver(answers, finished, progress, started, want)
        for part in parts:
            if not part.last:
                part.entry.started = True
        for entry_id, flat in ahead or ():
            await self._take(entry_id, dict(zip(flat[::2], flat[1::2], strict=True)))

    async def _invoke(self, items: list[Any]) -> Any:
        results = self.func(items)
        if inspect.isawaitable(results):
            results = await results
        return results

    async def _call(self, chunk: list[Request], waited: float) -> list[tuple[Request, list[Any]]]:
        recorder = self._recorder

        def observe(size: int, ran: float, raised: bool) -> None:
            recorder.observe_batch(size, waited, ran)
            if raised:
                recorder.observe_error(size)

        items = [r.item for r in chunk]
        try:
            outcomes = await call_split(self._invoke, items, split=self.split_on_error,
                                        observe=observe)
        except Exception as exc:  # a bug of ours: never leave callers without an answer
            logger.exception("serving a batch of %d items failed", len(items))
            outcomes = [Failed(exc)] * len(items)
        answers = []
        logged: set[int] = set()
        for request, outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, Failed):
                error = outcome.error
                if isinstance(error, ResultLengthError):
                    body = length_body(error.expected, error.got)
                else:
                    body = error_body("raised", error)
                if id(outcome) not in logged:
                    logged.add(id(outcome))
                    logger.error("batch function raised %s: %s", type(error).__name__, error,
                                 exc_info=None if isinstance(error, ResultLengthError) else error)
                answers.append((request, [request.request_id, FAILED, body]))
            elif isinstance(outcome, BaseException):
                answers.append((request, [request.request_id, FAILED,
                                          error_body("returned", outcome)]))
            else:
                answers.append((request, [request.request_id, OK, outcome]))
        return answers

    async def _deliver(
        self,
        answers: list[tuple[Request, list[Any]]],
        entry_ids: list[bytes],
        progress: list[tuple[bytes, list[Request]]] | None = None,
        started: list[bytes] | None = None,
        read_ahead: int = 0,
    ) -> list[Any] | None:
        """Reply and acknowledge; while Redis is away, keep trying as long as a caller waits.

        Returns the entries read ahead (see :meth:`_reply_and_ack`)."""
        errors = redis_errors()
        give_up = max((request.deadline for request, _ in answers), default=0.0)
        delays: Iterator[float] | None = None
        stop_by: float | None = None
        while True:
            try:
                ahead = await self._reply_and_ack(answers, entry_ids, progress=progress,
                                                  started=started, read_ahead=read_ahead)
                if delays is not None:
                    logger.warning("worker %s delivered a batch after reconnecting",
                                   self.consumer)
                return ahead
            except errors as exc:
                now = time.time()
                if self._stopping and stop_by is None:
                    stop_by = now + STOP_GRACE
                if now >= give_up or (stop_by is not None and now >= stop_by):
                    raise
                delays = await self._pause_after(exc, delays)

    async def _reply_and_ack(
        self,
        answers: list[tuple[Request, list[Any]]],
        entry_ids: list[bytes],
        dead: list[dict[bytes, bytes]] | None = None,
        progress: list[tuple[bytes, list[Request]]] | None = None,
        started: list[bytes] | None = None,
        read_ahead: int = 0,
    ) -> list[Any] | None:
        """In one MULTI: the replies, the done sets of split entries, dead letters, the acks.

        ``progress`` lists the requests answered now of entries not finished yet; ``started``
        the finished entries that have a done set to delete. With ``read_ahead``, the MULTI
        ends with the fill script, reading entries for that many items; its raw reply (or
        ``None``) is returned.
        """
        by_key: dict[str, list[list[Any]]] = defaultdict(list)
        ttl: dict[str, float] = {}
        for request, answer in answers:
            by_key[request.reply_key].append(answer)
            ttl[request.reply_key] = max(ttl.get(request.reply_key, 0.0), request.deadline)
        now = time.time()
        script = self._script
        if script is not None and not dead:
            from redis.exceptions import ResponseError

            try:
                return await self._serve_script(script, by_key, ttl, now, entry_ids,
                                                progress or [], started or [], read_ahead)
            except ResponseError as exc:
                if not script_refused(exc):
                    raise
                self._no_script(exc)
        async with self._redis.pipeline(transaction=True) as pipe:
            for key, key_answers in by_key.items():
                pipe.rpush(key, encode_reply(key_answers))
                pipe.expire(key, int(max(ttl[key] - now, 0) + REPLY_TTL_MARGIN))
            for entry_id, requests in progress or ():
                key = self.keys.done(entry_id)
                pipe.sadd(key, *[r.request_id for r in requests])
                deadline = max(r.deadline for r in requests)
                pipe.expire(key, int(max(deadline - now, 0) + REPLY_TTL_MARGIN))
            for fields in dead or ():
                pipe.xadd(self.keys.dead, fields, maxlen=DEAD_MAXLEN, approximate=True)
            if started:
                pipe.delete(*[self.keys.done(entry_id) for entry_id in started])
            if entry_ids:
                ids = sorted(set(entry_ids))
                pipe.xack(self.keys.stream, GROUP, *ids)
                pipe.xdel(self.keys.stream, *ids)
            results = await pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, Exception):
                if is_nogroup(result):
                    # The server lost the group (restart): the replies went out; nothing to ack.
                    continue
                raise result
        return None

    async def _serve_script(
        self,
        script: Any,
        by_key: dict[str, list[list[Any]]],
        ttl: dict[str, float],
        now: float,
        entry_ids: list[bytes],
        progress: list[tuple[bytes, list[Request]]],
        started: list[bytes],
        read_ahead: int,
    ) -> list[Any]:
        """:meth:`_reply_and_ack` in one script call (see ``SERVE_SCRIPT``)."""
        keys: list[Any] = [self.keys.stream, *by_key]
        ids = sorted(set(entry_ids))
        args: list[Any] = [GROUP, self.consumer, max(read_ahead, 0), len(by_key),
                           len(progress), len(ids)]
        for key, key_answers in by_key.items():
            args += [encode_reply(key_answers), int(max(ttl[key] - now, 0) + REPLY_TTL_MARGIN)]
        for entry_id, requests in progress:
            keys.append(self.keys.done(entry_id))
            deadline = max(r.deadline for r in requests)
            args += [int(max(deadline - now, 0) + REPLY_TTL_MARGIN), len(requests)]
            args += [r.request_id for r in requests]
        keys += [self.keys.done(entry_id) for entry_id in started]
        args += ids
        return await script(keys=keys, args=args)

    async def _bury(
        self,
        entries: list[tuple[bytes, dict[bytes, bytes], int]],
        reason: str,
        answers: list[tuple[Request, list[Any]]],
    ) -> None:
        """Answer ``entries``' callers, move the entries to the dead-letter stream, ack them."""
        dead = [dead_letter(eid, fields, times, reason) for eid, fields, times in entries]
        await self._reply_and_ack(answers, [eid for eid, _, _ in entries], dead)
        self.dead_letters += len(entries)
        self._recorder.observe_dead_letters(len(entries))
        logger.error("worker %s moved %d entries to %s (%s)",
                     self.consumer, len(entries), self.keys.dead, reason)
