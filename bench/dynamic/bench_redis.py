"""Redis: batch_requests.dynamic (RedisBatcher + RedisWorker) against dynamic-batcher.

Both run on the same private redis-server, with the same trivial batch function, batch 64,
batch time 10 ms, 1,000 and 10,000 concurrent callers in one client process, and one or two
worker processes. Every run is bounded (``--bound`` seconds): callers still waiting then are
counted as unanswered, so a run ends by itself even when a system loses requests. Throughput is
answered callers divided by the time until the last answer.
Needs ``pip install dynamic-batcher`` (bench only; see README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import Run, ratio

HERE = Path(__file__).resolve().parent
NAME = "bench"


def trivial(items: list[dict[str, int]]) -> list[dict[str, int]]:
    return [{"y": item["x"] + 1} for item in items]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_worker(system: str, port: int) -> None:
    os.environ.update({"REDIS__HOST": "127.0.0.1", "REDIS__PORT": str(port), "REDIS__DB": "0"})
    if system == "ours":
        from batch_requests.dynamic import RedisWorker

        worker = RedisWorker(trivial, NAME, batch_size=64, batch_time=0.01)
        asyncio.run(worker.run())
    else:
        from dynamic_batcher import BatchProcessor

        asyncio.run(BatchProcessor(batch_size=64, batch_time=0.01).start_daemon(trivial))


async def clients(system: str, n: int, bound: float) -> Run:
    if system == "ours":
        from batch_requests.dynamic import RedisBatcher

        batcher: Any = RedisBatcher(NAME, timeout=bound)
        send = batcher.acall
    else:
        from dynamic_batcher import DynamicBatcher

        batcher = DynamicBatcher(delay=0.01, timeout=bound)
        send = batcher.asend
    latencies: list[float] = []
    last = [0.0]

    async def one(i: int) -> None:
        start = time.perf_counter()
        result = await send({"x": i})
        if result == {"y": i + 1}:
            last[0] = time.perf_counter()
            latencies.append(last[0] - start)

    start = time.perf_counter()
    tasks = [asyncio.ensure_future(one(i)) for i in range(n)]
    done, waiting = await asyncio.wait(tasks, timeout=bound)
    elapsed = (last[0] or time.perf_counter()) - start
    for task in waiting:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if system == "ours":
        await batcher.astop(drain=False)
    label = "batch_requests" if system == "ours" else "dynamic-batcher"
    return Run(label, n, len(latencies), elapsed, latencies)


def scenario(system: str, n: int, workers: int, port: int, bound: float) -> Run:
    import redis

    redis.Redis(port=port).flushall()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen([sys.executable, __file__, "--worker", system, "--port", str(port)],
                         env=env, start_new_session=True)
        for _ in range(workers)
    ]
    try:
        time.sleep(1.5)
        os.environ.update({"REDIS__HOST": "127.0.0.1", "REDIS__PORT": str(port)})
        return asyncio.run(clients(system, n, bound))
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", choices=["ours", "theirs"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--bound", type=float, default=30.0)
    parser.add_argument("--items", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args.port)
        return
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", workdir],
                              stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        for workers in args.workers:
            for n in args.items:
                ours = scenario("ours", n, workers, port, args.bound)
                theirs = scenario("theirs", n, workers, port, args.bound)
                print(f"redis, {n} concurrent items, batch 64, {workers} worker(s), "
                      f"bound {args.bound:.0f} s")
                print(ours.line())
                print(theirs.line())
                print(ratio(ours, theirs), flush=True)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
