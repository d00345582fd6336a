"""The caller's reader falls back to BLPOP when the server refuses BLMPOP.

BLMPOP (Redis 7) takes every queued reply in one round trip; a Redis before 7, an ACL or a
renamed command refuses it with a ResponseError, and the client then reads one reply per trip
with BLPOP. These tests run against a real redis-server started with
``--rename-command BLMPOP ""``, so the server answers BLMPOP with "unknown command".
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from batch_requests.dynamic import RedisBatcher  # noqa: E402

LOGGER = "batch_requests.dynamic"
BATCH = 5


class SizeRecorder:
    """A batch function that records the size of every batch it is called with."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, items: list[int]) -> list[int]:
        with self.lock:
            self.sizes.append(len(items))
        return [item * 2 for item in items]


def refused_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == LOGGER and r.getMessage().startswith("BLMPOP refused")]


def read_failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The reader's own warnings: a fallback is not a failed read."""
    return [r for r in caplog.records
            if r.name == LOGGER and r.getMessage().startswith("reading replies from Redis")]


def test_the_server_really_refuses_blmpop(blmpop_less_redis) -> None:
    with redis.Redis.from_url(blmpop_less_redis.url) as client:
        with pytest.raises(redis.ResponseError, match="unknown command"):
            client.blmpop(1, 1, "some-list", direction="LEFT", count=8)
        client.rpush("some-list", b"x")
        assert client.blpop(["some-list"], timeout=1) == (b"some-list", b"x")


def test_callers_get_their_results_through_blpop_when_blmpop_is_refused(
    blmpop_less_redis, blmpop_less_worker_thread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    recorder = SizeRecorder()
    # Full batches leave at once; batch_time only bounds a batch that cannot fill.
    blmpop_less_worker_thread(recorder, "blpop", batch_size=BATCH, batch_time=10)
    batcher = RedisBatcher("blpop", redis_url=blmpop_less_redis.url, timeout=30,
                           pack_size=BATCH)

    # Round 1: async callers on a loop of their own (handed over to the home loop).
    async_items = list(range(20))

    async def async_callers() -> list[Any]:
        calls = asyncio.gather(*(batcher.acall(i) for i in async_items),
                               return_exceptions=True)
        return await asyncio.wait_for(calls, 60)

    assert asyncio.run(async_callers()) == [i * 2 for i in async_items]
    client = batcher._home
    assert client is not None
    assert client.multipop is False, "the reader switched to BLPOP"
    assert len(refused_records(caplog)) == 1, caplog.text
    sizes_after_async = list(recorder.sizes)
    assert sum(sizes_after_async) == len(async_items)
    assert max(sizes_after_async) <= BATCH
    # Several replies were queued and each was read by its own BLPOP.
    assert 2 <= len(sizes_after_async) < len(async_items), sizes_after_async

    # Round 2: blocking callers in threads, on the same client, still on BLPOP.
    sync_items = list(range(100, 110))
    start = threading.Barrier(len(sync_items), timeout=30)
    results: dict[int, Any] = {}

    def sync_caller(item: int) -> None:
        start.wait()
        try:
            results[item] = batcher.call(item)
        except Exception as exc:  # reported by the assertion below
            results[item] = exc

    threads = [threading.Thread(target=sync_caller, args=(i,)) for i in sync_items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "a caller never got an answer"
    batcher.stop()

    assert results == {i: i * 2 for i in sync_items}
    assert batcher._home is client, "one client for both rounds"
    assert client.multipop is False
    assert len(refused_records(caplog)) == 1, "refused once, then BLPOP only"
    assert read_failures(caplog) == [], "the refusal is handled in place, not as a lost read"
    sync_sizes = recorder.sizes[len(sizes_after_async):]
    assert sum(sync_sizes) == len(sync_items)
    assert len(sync_sizes) < len(sync_items), sync_sizes


def test_a_server_with_blmpop_keeps_multipop(
    redis_url: str, worker_thread, caplog: pytest.LogCaptureFixture
) -> None:
    """The contrast: on a Redis 7 server that allows BLMPOP the client never falls back."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    with redis.Redis.from_url(redis_url) as admin:
        version = tuple(int(p) for p in admin.info("server")["redis_version"].split(".")[:1])
    if version < (7,):
        pytest.skip("the installed redis-server has no BLMPOP")
    recorder = SizeRecorder()
    worker_thread(recorder, "multipop", batch_size=BATCH, batch_time=10)
    batcher = RedisBatcher("multipop", redis_url=redis_url, timeout=30, pack_size=BATCH)
    items = list(range(20))

    async def callers() -> list[Any]:
        calls = asyncio.gather(*(batcher.acall(i) for i in items), return_exceptions=True)
        return await asyncio.wait_for(calls, 60)

    assert asyncio.run(callers()) == [i * 2 for i in items]
    client = batcher._home
    batcher.stop()
    assert client is not None and client.multipop is True
    assert refused_records(caplog) == [], caplog.text
