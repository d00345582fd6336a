"""In-process: batch_requests.dynamic.InProcessBatcher against its peers, side by side, one run.

Every system gets the same 10,000 concurrent calls (one coroutine per call, all started at once
with ``asyncio.gather``), the same trivial async batch function (``i + 1``), batch 64, wait 10 ms
and the same number of batches allowed to run at once (``--concurrency``, default 1: the default
of async-batcher, of Ray Serve's ``@serve.batch`` and of ours). Systems:

``ours-asgi``   (a) ours as an ASGI view calls it: the callers run on their own loop (the main
                thread's ``asyncio.run`` loop) and hand their items over to the batcher's home
                loop in its background thread (``batch_requests.dynamic.handoff``).
``ours-home``   (b) ours with the callers on the home loop itself (the measuring coroutine runs
                on ``loop_thread.get_loop()``): no hand-off, so (b - a) / b is its cost.
``async-batcher`` (c) async-batcher 0.2.2, ``AsyncBatcher`` subclass, ``process()``.
``ray-serve``   (d) Ray Serve's ``@serve.batch`` on an async method (no cluster: the decorator is
                plain asyncio; see ``ray_serve`` below for the one warning check it needs patched).
``floor``       (e) the asyncio floor: each caller awaits one bare future; one callback, scheduled
                by the first caller of a burst, runs the batch function on everything pending
                and resolves the futures. No size limit, no timer: the least any batcher built on
                one future per caller can cost.

Rounds are interleaved (each round runs every system once, in an order rotated per round) after
one unmeasured warm-up round; medians over the rounds are printed, then the issue's goals.
Throughput is answered calls over the time from the first call to the last right answer; latency
is each caller's call-to-result time; "CPU µs/call" is the process CPU time (every thread: the
callers' and the home loop's) over the round, per call. The cyclic GC runs as usual but the
objects alive after the warm-up are frozen (``--gc freeze``), so a full collection costs the same
whichever peers were imported; ``--gc off`` measures the batching machinery without any
collection during a round; the collections of each generation per round are printed too.
``--baseline REV`` adds (a) and (b) run with ``batch_requests/dynamic`` as of a git revision, in
the same interleaved rounds: a change measured against the code before it on the same machine
state. The peers are bench-only (``requirements.txt`` beside this file); a missing one is
skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import collections
import gc
import importlib
import importlib.metadata
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from measure import Run

from batch_requests.dynamic import InProcessBatcher, loop_thread

SIZE, WAIT = 64, 0.01
LABELS = {
    "ours-asgi": "ours (a) hand-off",
    "ours-home": "ours (b) home loop",
    "async-batcher": "async-batcher",
    "ray-serve": "ray @serve.batch",
    "floor": "asyncio floor",
}


def increment(items: list[int]) -> list[int]:
    return [i + 1 for i in items]


async def trivial(items: list[int]) -> list[int]:
    return increment(items)


async def measure(system: str, call: Callable[[int], Awaitable[Any]], n: int) -> Run:
    """All ``n`` callers at once; a caller counts as answered only with the right result."""
    latencies: list[float] = []
    last = [0.0]

    async def one(i: int) -> None:
        start = time.perf_counter()
        if await call(i) == i + 1:
            last[0] = time.perf_counter()
            latencies.append(last[0] - start)

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), 120)
    cpu = time.process_time() - cpu  # every thread's: the callers' and the home loop's
    return Run(system, n, len(latencies), (last[0] or time.perf_counter()) - start, latencies,
               cpu)


# --- the systems: each runs one round of n calls and returns its Run -------------------------


async def _ours(n: int, concurrency: int, label: str) -> Run:
    batcher = InProcessBatcher(trivial, max_batch_size=SIZE, max_wait=WAIT,
                               max_concurrent_batches=concurrency, name=f"bench.{label}")
    run = await measure(label, batcher.acall, n)
    await batcher.astop()
    return run


def ours_asgi(n: int, concurrency: int) -> Run:
    """(a) Callers on the main thread's loop, items handed over to the home loop."""
    return asyncio.run(_ours(n, concurrency, "ours-asgi"))


def ours_home(n: int, concurrency: int) -> Run:
    """(b) Callers on the home loop itself: ``acall`` adds directly, no hand-off."""
    future = asyncio.run_coroutine_threadsafe(_ours(n, concurrency, "ours-home"),
                                              loop_thread.get_loop())
    return future.result()


def async_batcher(n: int, concurrency: int) -> Run:
    from async_batcher.batcher import AsyncBatcher

    class Trivial(AsyncBatcher):
        async def process_batch(self, batch: list[int]) -> list[int]:
            return await trivial(batch)

    async def main() -> Run:
        batcher = Trivial(max_batch_size=SIZE, max_queue_time=WAIT, concurrency=concurrency)
        run = await measure("async-batcher", batcher.process, n)
        # Every caller is answered: force only skips its loop's 1 s poll for the stop flag.
        await batcher.stop(force=True)
        return run

    return asyncio.run(main())


_ray_patched = False


def ray_serve(n: int, concurrency: int) -> Run:
    """``@serve.batch`` outside a deployment: no cluster, ``ray.init`` is never called.

    The only thing in it that needs a replica is a warning check run when its queue is made
    (``max_batch_size`` against the deployment's ``max_ongoing_requests``); it raises outside a
    deployment, so it is replaced by a no-op. Batching, its metrics calls and the futures are
    Ray's own code, unchanged.
    """
    global _ray_patched
    from ray import serve
    from ray.serve import batching

    if not _ray_patched:
        batching._BatchQueue._warn_if_max_batch_size_exceeds_max_ongoing_requests = (
            lambda self: None
        )
        _ray_patched = True

    class Model:
        @serve.batch(max_batch_size=SIZE, batch_wait_timeout_s=WAIT,
                     max_concurrent_batches=concurrency)
        async def handle(self, items: list[int]) -> list[int]:
            return await trivial(items)

    async def main() -> Run:
        return await measure("ray-serve", Model().handle, n)

    return asyncio.run(main())


def floor(n: int, concurrency: int) -> Run:
    """One bare future per caller, all pending ones resolved by one callback per burst."""

    async def main() -> Run:
        loop = asyncio.get_running_loop()
        pending: list[tuple[int, asyncio.Future[int]]] = []

        def resolve() -> None:
            taken = pending[:]
            pending.clear()
            results = increment([item for item, _ in taken])  # trivial()'s body, inline
            for (_, fut), result in zip(taken, results, strict=True):
                fut.set_result(result)

        async def call(item: int) -> int:
            fut = loop.create_future()
            if not pending:
                loop.call_soon(resolve)
            pending.append((item, fut))
            return await fut

        return await measure("floor", call, n)

    return asyncio.run(main())


SYSTEMS: dict[str, Callable[[int, int], Run]] = {
    "ours-asgi": ours_asgi,
    "ours-home": ours_home,
    "async-batcher": async_batcher,
    "ray-serve": ray_serve,
    "floor": floor,
}
REQUIRES = {"async-batcher": "async_batcher", "ray-serve": "ray.serve"}


def add_baseline(rev: str) -> list[str]:
    """Systems ``base-asgi`` and ``base-home``: (a) and (b) with ``batch_requests/dynamic`` as of
    git revision ``rev``, imported as the package ``bench_baseline.dynamic`` (its imports are
    relative) with its own home loop, so a change is measured against the code before it in
    the same rounds."""
    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True,
                          text=True, check=True, cwd=os.path.dirname(__file__)).stdout.strip()
    target = tempfile.mkdtemp(prefix="bench-baseline-")
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    archive = subprocess.run(["git", "archive", rev, "batch_requests/dynamic"], cwd=root,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", target], input=archive, check=True)
    package = os.path.join(target, "bench_baseline")
    os.rename(os.path.join(target, "batch_requests"), package)
    open(os.path.join(package, "__init__.py"), "w").close()
    sys.path.insert(0, target)
    base = importlib.import_module("bench_baseline.dynamic")

    async def run(n: int, concurrency: int, label: str) -> Run:
        batcher = base.InProcessBatcher(trivial, max_batch_size=SIZE, max_wait=WAIT,
                                        max_concurrent_batches=concurrency,
                                        name=f"bench.{label}")
        result = await measure(label, batcher.acall, n)
        await batcher.astop()
        return result

    def base_asgi(n: int, concurrency: int) -> Run:
        return asyncio.run(run(n, concurrency, "base-asgi"))

    def base_home(n: int, concurrency: int) -> Run:
        return asyncio.run_coroutine_threadsafe(run(n, concurrency, "base-home"),
                                                base.loop_thread.get_loop()).result()

    SYSTEMS.update({"base-asgi": base_asgi, "base-home": base_home})
    LABELS.update({"base-asgi": f"baseline (a) {rev}"[:20],
                   "base-home": f"baseline (b) {rev}"[:20]})
    return ["base-asgi", "base-home"]


# cyclic GC collections per generation in the current round (a gc callback counts them)
_collections: collections.Counter[int] = collections.Counter()


def _count_collection(phase: str, info: dict[str, int]) -> None:
    if phase == "stop":
        _collections[info["generation"]] += 1
DISTRIBUTIONS = {"async-batcher": "async-batcher", "ray-serve": "ray"}


# --- summary -----------------------------------------------------------------------------


@dataclass
class Summary:
    system: str
    runs: list[Run]

    @property
    def throughput(self) -> float:
        return statistics.median(r.throughput for r in self.runs)

    @property
    def p50(self) -> float:
        return statistics.median(r.pct(0.5) for r in self.runs)

    @property
    def p99(self) -> float:
        return statistics.median(r.pct(0.99) for r in self.runs)

    @property
    def cpu_per_item(self) -> float:
        """Median process CPU time per call, in µs (all threads)."""
        return statistics.median(r.cpu / r.items for r in self.runs) * 1e6

    def line(self) -> str:
        low = min(r.throughput for r in self.runs)
        high = max(r.throughput for r in self.runs)
        answered = min(r.answered for r in self.runs)
        return (f"| {LABELS[self.system]:<20} | {self.throughput:>9,.0f} | "
                f"{low:>7,.0f}–{high:<7,.0f} | {self.p50:>7.1f} | {self.p99:>7.1f} | "
                f"{self.cpu_per_item:>11.1f} | {answered:>8,} |")


def paired(mine: Summary, theirs: Summary, key: Callable[[Run, Run], float]) -> float:
    """The median over rounds of ``key(mine's run, theirs' run)`` within the same round."""
    return statistics.median(key(m, t) for m, t in zip(mine.runs, theirs.runs, strict=True))


def speed(mine: Run, theirs: Run) -> float:
    return mine.throughput / theirs.throughput


def p99_gap(mine: Run, theirs: Run) -> float:
    return mine.pct(0.99) - theirs.pct(0.99)


def handoff_cost(a: Run | Summary, b: Run | Summary) -> float:
    """(b - a) / b of the throughputs, in %."""
    return (b.throughput - a.throughput) / b.throughput * 100


def goal(text: str, value: float, target: float, higher: bool, fmt: str, also: float) -> bool:
    """Print one goal, met when the figure from the medians meets it (``also``: paired)."""
    met = value >= target if higher else value <= target
    sign = "≥" if higher else "≤"
    print(f"  {text:<40} {format(value, fmt):>7}  (goal {sign} {target:{fmt}}; paired "
          f"{also:{fmt}})  "
          f"{'MET' if met else 'NOT MET'}")
    return met


def report(summaries: dict[str, Summary], rounds: int) -> bool:
    print("| system               | items/s   | min–max items/s | p50 ms  | p99 ms  "
          "| CPU µs/call | answered |")
    print("|----------------------|----------:|----------------:|--------:|--------:"
          "|------------:|---------:|")
    for summary in summaries.values():
        print(summary.line())
    a, b, fl = (summaries.get(s) for s in ("ours-asgi", "ours-home", "floor"))
    print(f"\ngoals (issue 12, Speed): from the medians of {rounds} rounds; 'paired' is the "
          "median of the same figure taken within each round")
    met = True
    for peer, target in (("async-batcher", 2.5), ("ray-serve", 3.0)):
        theirs = summaries.get(peer)
        if a and theirs:
            name = LABELS[peer]
            met &= goal(f"throughput ours(a) / {name}", a.throughput / theirs.throughput,
                        target, True, ".2f", paired(a, theirs, speed))
            met &= goal(f"p99 ours(a) - p99 {name}, ms", a.p99 - theirs.p99, 0.0, False,
                        "+.1f", paired(a, theirs, p99_gap))
    if a and b:
        met &= goal("hand-off cost (b - a) / b, %", handoff_cost(a, b), 10.0, False, ".1f",
                    paired(a, b, handoff_cost))
        print(f"    p99 (a) {a.p99:.1f} ms vs (b) {b.p99:.1f} ms; CPU per call, both threads: "
              f"(a) {a.cpu_per_item:.1f} µs vs (b) {b.cpu_per_item:.1f} µs")
    for mine, base in ((a, summaries.get("base-asgi")), (b, summaries.get("base-home"))):
        if mine and base:
            print(f"  against the baseline: {LABELS[mine.system]} / {LABELS[base.system]} "
                  f"throughput {mine.throughput / base.throughput:.2f} (paired "
                  f"{paired(mine, base, speed):.2f}), CPU per call {mine.cpu_per_item:.1f} vs "
                  f"{base.cpu_per_item:.1f} µs")
    print("for reference (throughput ratios of the medians):")
    pairs = [("ours(b)", b, "async-batcher"), ("ours(b)", b, "ray-serve"),
             ("ours(a)", a, "floor"), ("ours(b)", b, "floor"),
             ("floor", fl, "async-batcher"), ("floor", fl, "ray-serve")]
    for key, mine, other in pairs:
        theirs = summaries.get(other)
        if mine and theirs:
            print(f"  {key} / {LABELS[other]:<18} {mine.throughput / theirs.throughput:.2f}")
    checked = bool(a and (b or summaries.get("async-batcher") or summaries.get("ray-serve")))
    print(f"all goals {'MET' if met else 'NOT all met'}" if checked else "no goal measured")
    return met


def environment(concurrency: int, systems: list[str]) -> str:
    versions = []
    for system in systems:
        dist = DISTRIBUTIONS.get(system)
        if dist:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average {load}, "
            f"switch interval {sys.getswitchinterval() * 1000:g} ms; "
            f"{', '.join(versions) or 'no peers'}; concurrency {concurrency}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--concurrency", type=int, default=1,
                        help="batches allowed to run at once, the same for every system")
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    parser.add_argument("--gc", choices=["freeze", "on", "off"], default="freeze",
                        help="freeze (default): gc.freeze() after the warm-up, so the objects of "
                        "the imported modules (ray's ~100k) are not rescanned by every full "
                        "collection during a round; on: as is; off: no collection in a round")
    parser.add_argument("--baseline", metavar="REV",
                        help="also run (a) and (b) with batch_requests/dynamic as of this git "
                        "revision (for example HEAD), interleaved with the rest")
    parser.add_argument("--verbose", action="store_true", help="print every round")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a goal is not met")
    args = parser.parse_args()

    systems = []
    for system in args.systems:
        module = REQUIRES.get(system)
        if module:
            try:
                __import__(module)
            except ImportError:
                print(f"skipping {system}: {module} is not installed (bench/dynamic/"
                      "requirements.txt)")
                continue
        systems.append(system)
    if args.baseline:
        systems += add_baseline(args.baseline)

    print(f"in-process, {args.items:,} concurrent calls, batch {SIZE}, wait {WAIT * 1000:g} ms, "
          f"trivial async function, {args.rounds} interleaved rounds (medians)")
    print(environment(args.concurrency, systems) + f"; gc {args.gc}")
    for system in systems:  # warm-up: imports, the home loop's thread, first-use paths
        SYSTEMS[system](min(args.items, 1_000), args.concurrency)
    gc.collect()
    if args.gc == "freeze":
        gc.freeze()
    gc.callbacks.append(_count_collection)

    runs: dict[str, list[Run]] = {system: [] for system in systems}
    collected: dict[str, list[tuple[int, int, int]]] = {system: [] for system in systems}
    for round_ in range(args.rounds):
        shift = round_ % len(systems)
        for system in systems[shift:] + systems[:shift]:
            gc.collect()
            _collections.clear()
            if args.gc == "off":
                gc.disable()
            try:
                run = SYSTEMS[system](args.items, args.concurrency)
            finally:
                gc.enable()
            runs[system].append(run)
            collected[system].append((_collections[0], _collections[1], _collections[2]))
            if args.verbose:
                print(f"  round {round_ + 1}: {run.line()}", flush=True)
    print()
    met = report({s: Summary(s, r) for s, r in runs.items()}, args.rounds)
    print("cyclic GC collections per round (median of gen 0 / gen 1 / gen 2 (full)):")
    for system, counts in collected.items():
        medians = "/".join(f"{statistics.median(c[g] for c in counts):g}" for g in range(3))
        print(f"  {LABELS[system]:<20} {medians}")
    if args.strict and not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
