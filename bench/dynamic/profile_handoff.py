"""Where ours spends its time: the hand-off case (a) against the home-loop case (b).

Runs ``bench_inprocess``'s (a) ``ours-asgi`` or (b) ``ours-home`` (or the asyncio ``floor``)
for a number of rounds of 10,000 concurrent calls, after a warm-up and ``gc.freeze()`` as the
bench does, and prints per round the wall time and the CPU time of each of the two threads
(the callers' main thread, the batcher's home-loop thread), so their sum against the wall time
shows how much the two threads overlap or wait for each other (the GIL), and the cyclic GC's
collections per generation and time spent in them. ``--timing`` wraps the hand-off path's
per-burst and per-batch functions (``Inbox.drain``, ``accept``, ``dispatch``,
``settle_results``, ``_Mailbox.post``/``deliver``) and prints their calls, wall and thread-CPU
time per round (wall above CPU is time spent waiting for the GIL inside the call).
``--cprofile`` adds one ``cProfile`` per thread (each enabled in its own thread) and prints the
functions with the most own time; ``--switch`` sets ``sys.setswitchinterval`` first. For a
sampling profile of both threads at once, run it under py-spy (installed in the bench venv with
ray)::

    py-spy record --threads --rate 500 -f speedscope -o a.json -- \\
        python profile_handoff.py --system ours-asgi --rounds 30
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import gc
import io
import pstats
import statistics
import sys
import time
from typing import Any

import bench_inprocess as bench

from batch_requests.dynamic import handoff, inprocess, loop_thread

# label -> [calls, wall seconds, thread CPU seconds], for the current round
TIMED: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])
GC: dict[str, float] = collections.defaultdict(float)
_gc_started = [0.0]


def timed(owner: Any, name: str, label: str) -> None:
    """Replace ``owner.name`` by a wrapper adding its calls and times to ``TIMED[label]``."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            entry = TIMED[label]
            entry[0] += 1
            entry[1] += time.perf_counter() - wall
            entry[2] += time.thread_time() - cpu

    setattr(owner, name, wrapper)


def instrument() -> None:
    timed(handoff.Inbox, "drain", "home  Inbox.drain (with accept)")
    timed(inprocess._LoopQueue, "accept", "home  _LoopQueue.accept")
    timed(inprocess._LoopQueue, "dispatch", "home  _LoopQueue.dispatch")
    timed(inprocess, "settle_results", "home  settle_results (with post)")
    timed(handoff._Mailbox, "post", "home  _Mailbox.post")
    timed(handoff._Mailbox, "deliver", "main  _Mailbox.deliver (per chunk)")


def on_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        GC[f"gen{info['generation']}"] += 1
        GC["seconds"] += time.perf_counter() - _gc_started[0]


def on_home(func):  # noqa: ANN001, ANN201 - run func() on the home loop's thread, return its value
    async def call():  # noqa: ANN202
        return func()

    return asyncio.run_coroutine_threadsafe(call(), loop_thread.get_loop()).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=["ours-asgi", "ours-home", "floor"],
                        default="ours-asgi")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--switch", type=float, help="sys.setswitchinterval, in seconds")
    parser.add_argument("--timing", action="store_true",
                        help="time the hand-off path's functions (see above)")
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if args.switch:
        sys.setswitchinterval(args.switch)
    if args.timing:
        instrument()
    run_one = bench.SYSTEMS[args.system]
    run_one(1_000, args.concurrency)  # warm-up (and starts the home loop)
    gc.collect()
    gc.freeze()
    gc.callbacks.append(on_gc)

    main_prof = cProfile.Profile() if args.cprofile else None
    home_prof = cProfile.Profile() if args.cprofile else None
    rows = []
    timings: dict[str, list[list[float]]] = collections.defaultdict(list)
    for _ in range(args.rounds):
        gc.collect()
        TIMED.clear()
        GC.clear()
        home0 = on_home(time.thread_time)
        if home_prof:
            on_home(home_prof.enable)
            main_prof.enable()
        main0, wall0 = time.thread_time(), time.perf_counter()
        run = run_one(args.items, args.concurrency)
        wall, main_cpu = time.perf_counter() - wall0, time.thread_time() - main0
        if home_prof:
            main_prof.disable()
            on_home(home_prof.disable)
        home_cpu = on_home(time.thread_time) - home0
        rows.append((run.throughput, run.pct(0.5), run.pct(0.99), wall, main_cpu, home_cpu,
                     GC["seconds"]))
        for label, entry in TIMED.items():
            timings[label].append(entry)
        made = " ".join(f"{k}={int(v)}" for k, v in sorted(GC.items()) if k != "seconds")
        print(f"{run.line()}  wall {wall * 1000:6.1f} ms  CPU main {main_cpu * 1000:6.1f} ms "
              f"home {home_cpu * 1000:6.1f} ms  GC {GC['seconds'] * 1000:5.1f} ms "
              f"({made})", flush=True)
    med = [statistics.median(col) for col in zip(*rows, strict=True)]
    print(f"median: {med[0]:,.0f} items/s, p50 {med[1]:.1f} ms, p99 {med[2]:.1f} ms; wall "
          f"{med[3] * 1000:.1f} ms, CPU main {med[4] * 1000:.1f} ms + home {med[5] * 1000:.1f} ms"
          f" = {(med[4] + med[5]) * 1000:.1f} ms, of which GC {med[6] * 1000:.1f} ms (switch "
          f"interval {sys.getswitchinterval() * 1000:g} ms)")
    if timings:
        print(f"\nper round, medians over {args.rounds} rounds of {args.items:,} calls:")
        for label, entries in sorted(timings.items()):
            calls, wall_s, cpu_s = (statistics.median(e[i] for e in entries) for i in range(3))
            print(f"  {label:<32} calls {calls:6.0f}  wall {wall_s * 1000:7.2f} ms  CPU "
                  f"{cpu_s * 1000:7.2f} ms  ({cpu_s / args.items * 1e6:.2f} µs per call of the "
                  f"bench)")
    for name, prof in (("main thread (callers)", main_prof), ("home-loop thread", home_prof)):
        if prof is None:
            continue
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("tottime").print_stats(args.top)
        print(f"\n===== cProfile, {name}, {args.rounds} rounds, by own time =====")
        print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))


if __name__ == "__main__":
    main()
