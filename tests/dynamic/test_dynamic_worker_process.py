"""``manage.py batch_worker`` as a real process: SIGTERM, SIGKILL recovery, delivery cap."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("redis")

from dynamic_helpers import wait_until  # noqa: E402

from batch_requests.dynamic import DeliveryLimitError, RedisBatcher  # noqa: E402
from batch_requests.dynamic.protocol import GROUP, Keys  # noqa: E402

NAME = "procs"


def started_markers(directory: Path, pid: int) -> Path | None:
    marker = directory / f"started-{pid}"
    return marker if marker.exists() else None


async def submit(redis_url: str, items: list[int]) -> tuple[RedisBatcher, list[asyncio.Task]]:
    batcher = RedisBatcher(NAME, redis_url=redis_url, timeout=40)
    tasks = [asyncio.ensure_future(batcher.acall(i)) for i in items]
    await asyncio.sleep(0)
    return batcher, tasks


def pending_count(redis_url: str) -> int:
    import redis

    with redis.Redis.from_url(redis_url) as client:
        return client.xpending(Keys("batch_requests:dynamic", NAME).stream, GROUP)["pending"]


def test_sigterm_finishes_the_batch_in_hand_acks_and_exits_zero(
    redis_url: str, worker_process, tmp_path: Path
) -> None:
    proc = worker_process("dynamic_workfuncs:wait_for_release", "--name", NAME,
                          "--batch-size", "8", "--batch-time", "0.2")

    async def main() -> list[Any]:
        batcher, tasks = await submit(redis_url, list(range(5)))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, wait_until,
                                   lambda: started_markers(tmp_path, proc.pid), 20, "batch start")
        os.kill(proc.pid, signal.SIGTERM)
        await asyncio.sleep(0.2)
        assert proc.poll() is None, "the worker must not exit with a batch in hand"
        (tmp_path / "release").write_text("go")
        try:
            return await asyncio.gather(*tasks)
        finally:
            await batcher.astop()

    assert asyncio.run(main()) == [0, 10, 20, 30, 40]
    assert proc.wait(20) == 0
    output = proc.stdout.read() if proc.stdout else ""
    assert "batch of 5 items" in output
    assert pending_count(redis_url) == 0


def test_a_sigkilled_workers_batch_is_completed_once_by_a_second_worker(
    redis_url: str, worker_process, tmp_path: Path
) -> None:
    items = list(range(40))

    async def main() -> list[Any]:
        first = worker_process("dynamic_workfuncs:tag_with_pid", "--name", NAME,
                               "--batch-size", "64", "--batch-time", "0.2",
                               env={"WORKFUNC_HANG": "1"})
        batcher, tasks = await submit(redis_url, items)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, wait_until,
                                   lambda: started_markers(tmp_path, first.pid), 20, "batch")
        os.killpg(first.pid, signal.SIGKILL)
        await loop.run_in_executor(None, first.wait, 10)
        second = worker_process("dynamic_workfuncs:tag_with_pid", "--name", NAME,
                                "--batch-size", "64", "--claim-idle-time", "0.5")
        try:
            results = await asyncio.gather(*tasks)
        finally:
            await batcher.astop()
        return [second.pid, results]

    second_pid, results = asyncio.run(main())
    assert [r[0] for r in results] == items
    assert {r[1] for r in results} == {second_pid}
    handled = (tmp_path / f"handled-{second_pid}.log").read_text().split()
    assert sorted(int(i) for i in handled) == items, "each request must run once on the second"
    assert pending_count(redis_url) == 0


def test_past_max_deliveries_callers_get_an_error_instead_of_hanging(
    redis_url: str, worker_process, tmp_path: Path
) -> None:
    async def main() -> list[Any]:
        first = worker_process("dynamic_workfuncs:tag_with_pid", "--name", NAME,
                               "--batch-time", "0.05", env={"WORKFUNC_HANG": "1"})
        batcher, tasks = await submit(redis_url, [1, 2, 3])
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, wait_until,
                                   lambda: started_markers(tmp_path, first.pid), 20, "batch")
        os.killpg(first.pid, signal.SIGKILL)
        await loop.run_in_executor(None, first.wait, 10)
        worker_process("dynamic_workfuncs:tag_with_pid", "--name", NAME,
                       "--claim-idle-time", "0.3", "--max-deliveries", "1")
        try:
            return await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await batcher.astop()

    results = asyncio.run(main())
    assert all(isinstance(r, DeliveryLimitError) for r in results)
    assert pending_count(redis_url) == 0
    import redis

    with redis.Redis.from_url(redis_url) as client:  # kept for an operator to inspect
        dead = client.xrange(Keys("batch_requests:dynamic", NAME).dead)
    assert dead and {fields[b"reason"] for _, fields in dead} == {b"max_deliveries"}
    assert sorted(item for _, fields in dead for _, item in json.loads(fields[b"p"])) == [1, 2, 3]
