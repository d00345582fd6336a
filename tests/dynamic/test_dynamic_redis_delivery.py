"""Who serves what, and what may run twice: load spread, re-runs after SIGKILL, dead letters.

The batch functions at the top are also imported by ``manage.py batch_worker`` processes
(``test_dynamic_redis_delivery:record_calls``); they talk to the test through files in
``$WORKFUNC_DIR``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from dynamic_helpers import wait_until  # noqa: E402

from batch_requests.dynamic import (  # noqa: E402
    DeliveryLimitError,
    RedisBatcher,
    metrics,
)
from batch_requests.dynamic.protocol import GROUP, Keys  # noqa: E402

PREFIX = "batch_requests:dynamic"
_calls_here = 0


def record_calls(items: list[int]) -> list[int]:
    """Log each call's items (one JSON line: pid, items) before doing anything else.

    The ``$WORKFUNC_BLOCK_AT``-th call of a process announces itself (``blocked-<pid>``, holding
    its items) and then waits for a ``release`` file that the test never writes: the test
    SIGKILLs the worker while it is there.
    """
    global _calls_here
    directory = Path(os.environ["WORKFUNC_DIR"])
    with open(directory / "calls.log", "a") as log:
        log.write(json.dumps([os.getpid(), items]) + "\n")
    _calls_here += 1
    if _calls_here == int(os.environ.get("WORKFUNC_BLOCK_AT", "0")):
        (directory / f"blocked-{os.getpid()}").write_text(json.dumps(items))
        deadline = time.monotonic() + 120
        while not (directory / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return [item * 10 for item in items]


def read_calls(directory: Path) -> list[tuple[int, list[int]]]:
    path = directory / "calls.log"
    if not path.exists():
        return []
    return [tuple(json.loads(line)) for line in path.read_text().splitlines() if line]


def test_idle_workers_share_the_work_one_batch_each_at_a_time(
    redis_url: str, worker_thread
) -> None:
    batch, pack, total = 32, 16, 640
    stream = Keys(PREFIX, "spread").stream
    in_hand: dict[bytes, int] = {}  # consumer -> entries it held while both were busy

    def count_in_hand() -> None:  # runs once, when both workers are in their first call
        with redis.Redis.from_url(redis_url) as client:
            for consumer in client.xpending(stream, GROUP)["consumers"]:
                in_hand[consumer["name"]] = consumer["pending"]

    both_busy = threading.Barrier(2, action=count_in_hand, timeout=30)
    lock = threading.Lock()
    calls: dict[int, list[int]] = {}  # worker thread id -> sizes of its calls

    def func(items: list[int]) -> list[int]:
        me = threading.get_ident()
        with lock:
            first = me not in calls
            calls.setdefault(me, []).append(len(items))
        if first:
            # Each worker's first batch waits until the other one is in a batch too: that can
            # only happen when the first worker did not take all the work.
            both_busy.wait()
        return [item + 1 for item in items]

    workers = [worker_thread(func, "spread", batch_size=batch, batch_time=0.05)
               for _ in range(2)]
    batcher = RedisBatcher("spread", redis_url=redis_url, timeout=60, pack_size=pack)

    async def main() -> list[Any]:
        try:
            return await asyncio.wait_for(
                asyncio.gather(*(batcher.acall(i) for i in range(total))), 60)
        finally:
            await batcher.astop()

    assert asyncio.run(main()) == [i + 1 for i in range(total)]
    assert len(calls) == 2 and all(calls.values()), "both workers ran batches"
    assert sum(sum(sizes) for sizes in calls.values()) == total
    assert max(max(sizes) for sizes in calls.values()) <= batch
    # Unacknowledged entries of each worker while both were busy: the batch in its function
    # (2 entries) and at most one more read for the next batch.
    assert len(in_hand) == 2 and max(in_hand.values()) <= (batch + pack) // pack, in_hand
    for worker in workers:
        # the batch being filled plus at most one entry carried over to the next one
        assert worker.max_held <= batch + pack, worker.max_held
        assert worker.items > 0


@pytest.mark.parametrize("batch", [8, 3], ids=["whole-entries", "split-entries"])
def test_a_sigkilled_worker_reruns_only_the_batch_in_hand(
    batch: int, redis_url: str, worker_process, tmp_path: Path
) -> None:
    """Entries of 4 items; batches of 8 (two whole entries) or of 3 (entries split in two).

    The first worker finishes two batches and is killed in its third; the second worker must
    run again exactly the third batch's items: neither the finished batches, nor the part of a
    split entry that was answered.
    """
    name, items = "reruns", list(range(40))
    first = worker_process("test_dynamic_redis_delivery:record_calls", "--name", name,
                           "--batch-size", str(batch), "--batch-time", "0.2",
                           env={"WORKFUNC_BLOCK_AT": "3"})

    async def main() -> tuple[list[Any], list[int], int]:
        loop = asyncio.get_running_loop()
        batcher = RedisBatcher(name, redis_url=redis_url, timeout=90, pack_size=4)
        tasks = [asyncio.ensure_future(batcher.acall(i)) for i in items]
        marker = tmp_path / f"blocked-{first.pid}"
        await loop.run_in_executor(None, wait_until, marker.exists, 60,
                                   "the third batch in the function")
        in_hand = json.loads(marker.read_text())
        os.killpg(first.pid, signal.SIGKILL)
        await loop.run_in_executor(None, first.wait, 10)
        second = worker_process("test_dynamic_redis_delivery:record_calls", "--name", name,
                                "--batch-size", str(batch), "--claim-idle-time", "0.5")
        try:
            results = await asyncio.wait_for(asyncio.gather(*tasks), 90)
        finally:
            await batcher.astop()
        return results, in_hand, second.pid

    results, in_hand, second_pid = asyncio.run(main())
    assert results == [i * 10 for i in items]
    calls = read_calls(tmp_path)
    by_first = [batch for pid, batch in calls if pid == first.pid]
    by_second = [batch for pid, batch in calls if pid == second_pid]
    assert len(by_first) == 3 and by_first[-1] == in_hand, "two batches done, the third killed"
    assert all(len(call) <= batch for call in by_first + by_second)
    ran_first = {item for call in by_first for item in call}
    ran_second = {item for call in by_second for item in call}
    reruns = ran_first & ran_second
    assert reruns <= set(in_hand), f"finished batches ran again: {sorted(reruns - set(in_hand))}"
    assert reruns == set(in_hand), "the batch in hand was never answered: it runs again"
    assert ran_first | ran_second == set(items)
    with redis.Redis.from_url(redis_url) as client:
        assert client.xpending(Keys(PREFIX, name).stream, GROUP)["pending"] == 0
        assert client.keys(f"{PREFIX}:{name}:done:*") == [], "done sets go with their entry"


def test_a_request_past_max_deliveries_goes_to_the_dead_letter_stream(
    redis_url: str, worker_thread
) -> None:
    name = "poison"
    keys = Keys(PREFIX, name)
    served: list[list[int]] = []
    metrics.reset()
    client = redis.Redis.from_url(redis_url)
    client.xgroup_create(keys.stream, GROUP, id="0", mkstream=True)

    async def main() -> BaseException:
        loop = asyncio.get_running_loop()
        batcher = RedisBatcher(name, redis_url=redis_url, timeout=60)
        task = asyncio.ensure_future(batcher.acall(5))
        await loop.run_in_executor(None, wait_until, lambda: client.xlen(keys.stream), 20,
                                   "the entry")
        # A worker that read it and died: delivered once, never acknowledged.
        assert client.xreadgroup(GROUP, "ghost", {keys.stream: ">"}, count=10)
        await loop.run_in_executor(None, lambda: worker_thread(
            lambda items: served.append(items) or items, name,
            claim_idle_time=0.2, max_deliveries=1, batch_time=0.01))
        try:
            with pytest.raises(DeliveryLimitError) as caught:
                await asyncio.wait_for(task, 60)
            return caught.value
        finally:
            await batcher.astop()

    try:
        error = asyncio.run(main())
        assert "delivered more than 1 times" in str(error)
        assert served == [], "a request past max_deliveries is not run again"
        assert client.xlen(keys.stream) == 0
        assert client.xpending(keys.stream, GROUP)["pending"] == 0
        [(dead_id, fields)] = client.xrange(keys.dead)
        assert fields[b"reason"] == b"max_deliveries"
        assert int(fields[b"deliveries"]) == 2
        assert [item for _, item in json.loads(fields[b"p"])] == [5]
        assert fields[b"r"].startswith(f"{PREFIX}:{name}:reply:".encode())
        assert metrics.recorder(name, "redis").dead_letters == 1
        assert metrics.recorder(name, "redis").redeliveries >= 1

        # What docs/dynamic-redis.md tells an operator to do: queue it again (with a new
        # deadline), then delete it from the dead-letter stream.
        requeued = {b"r": fields[b"r"], b"p": fields[b"p"], b"d": repr(time.time() + 60)}
        client.xadd(keys.stream, requeued)
        client.xdel(keys.dead, dead_id)
        wait_until(lambda: served, 30, "the re-queued entry served")
        assert served == [[5]]
        assert client.xlen(keys.dead) == 0
    finally:
        client.close()


def test_a_worker_not_allowed_lua_reads_one_entry_at_a_time(
    redis_url: str, worker_thread
) -> None:
    """A Redis user without scripting: the worker falls back to plain reads and MULTI."""
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser("noscript", enabled=True, passwords=["+pw"], keys=["*"],
                      channels=["*"], commands=["+@all", "-@scripting"])
    try:
        url = redis_url.replace("redis://", "redis://noscript:pw@")
        batch, pack = 8, 2
        sizes: list[int] = []
        worker = worker_thread(lambda items: sizes.append(len(items)) or items, "noscript",
                               batch_size=batch, batch_time=0.05, redis_url=url)
        batcher = RedisBatcher("noscript", redis_url=url, timeout=60, pack_size=pack)

        async def main() -> list[Any]:
            try:
                return await asyncio.wait_for(
                    asyncio.gather(*(batcher.acall(i) for i in range(50))), 60)
            finally:
                await batcher.astop()

        assert asyncio.run(main()) == list(range(50))
        assert worker._script is None, "the worker noticed it may not run scripts"
        assert max(sizes) <= batch and sum(sizes) == 50
        assert worker.max_held <= batch + pack
    finally:
        admin.acl_deluser("noscript")
        admin.close()
