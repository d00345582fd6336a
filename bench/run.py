"""Run every benchmark once and print a summary: ``make bench`` (or ``python -m bench.run``).

In-process benchmarks first (1, 3a), then two live gunicorn servers on 127.0.0.1: one with
the default sequential batches (2, 3b sequential and, where installed, the peer's endpoint
for 4) and one with ``BATCH_EXECUTOR=process`` (3b). Every loop is bounded in count and time.
"""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
import time
import traceback
from importlib.util import find_spec
from pathlib import Path

from bench import concurrency, overhead, roundtrips
from bench.common import section, setup_django, table


def peer(site_url: str, tokens: dict[str, str]) -> tuple[list, str]:
    """Benchmark 2 against drf-batch-requests; on failure, what broke instead of a number."""
    if find_spec("drf_batch_requests") is None:
        return [], "not installed (pip install -r bench/requirements.txt)"
    try:
        return roundtrips.run(site_url, tokens, roundtrips.PEER, number="4"), ""
    except Exception as exc:  # report any failure of the peer, do not hide it
        frames = traceback.extract_tb(exc.__traceback__)[-3:]
        where = "; ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames)
        return [], f"{type(exc).__name__}: {str(exc)[:400]} (at {where})"


def main() -> None:
    started = time.monotonic()
    setup_django()
    import django

    from tests.live import serve

    print(f"machine: {platform.machine()}, {_cores()} cores, Python "
          f"{platform.python_version()}, Django {django.get_version()}", flush=True)
    overhead_rows = overhead.run()
    with contextlib.ExitStack() as stack:
        seq_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-seq-")))
        proc_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-proc-")))
        sequential = stack.enter_context(serve("gunicorn", seq_dir))
        process = stack.enter_context(serve("gunicorn", proc_dir, {
            "BATCH_EXECUTOR": "process", "BATCH_NUM_WORKERS": "2"}))
        round_rows = roundtrips.run(sequential.url, sequential.tokens)
        sleep_rows, cpu_rows = concurrency.run(sequential.url, process.url)
        peer_rows, peer_error = peer(sequential.url, sequential.tokens)
        if peer_error:
            section("4. Round trips, drf-batch-requests")
            print(f"did not run: {peer_error}")

    section(f"Summary (all measured in this run, {time.monotonic() - started:.0f} s)")
    rows = []
    for path, *_, vs_bare, vs_handler in overhead_rows:
        rows.append([f"1. dispatch {path}: batch / bare view", vs_bare, "<= 1.15"])
        rows.append([f"1. dispatch {path}: batch / handler path", vs_handler, "(own cost)"])
    for app, path, latency, *_, speedup in round_rows + peer_rows:
        rows.append([f"{'2' if app == 'batch_requests' else '4'}. {app} {path} {latency}: "
                     "speed-up", speedup, ">= 10"])
    if peer_error:
        rows.append(["4. drf-batch-requests", "did not run", "see above"])
    for name, _, _, ratio in sleep_rows:
        rows.append([f"3. 10 x sleep 100 ms, {name}: wall / 100 ms", ratio,
                     "<= 1.2" if name != "sequential" else "(10 ideal)"])
    rows.append([f"3. 4 x cpu ({cpu_rows[0][2]:.0f} ms each), process x2: speed-up",
                 cpu_rows[1][4], "<= 2 ceiling"])
    print(table(["measure", "ratio", "target"], rows))


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    main()
