"""Run every benchmark once and print the issue's table: ``make bench`` (``python -m bench.run``).

In-process first ((a), ``bench.overhead``), then two live gunicorn servers on 127.0.0.1: one
with the default sequential batches ((b) and, where installed, the peer's endpoint, in
``bench.roundtrips``; the CPU-bound batch of ``bench.concurrency``) and one with
``BATCH_EXECUTOR=process``. Every loop is bounded in count and time.
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
from bench.common import section, setup_django, table, verdict


def peer_problem(site_url: str, token: str) -> str:
    """Why the peer cannot be measured (not installed, or its batch fails), or ''."""
    if find_spec("drf_batch_requests") is None:
        return "not installed (pip install -r bench/requirements.txt)"
    try:
        roundtrips.measure(site_url, token, "/views/", 0.0, [roundtrips.PEER])
    except Exception as exc:  # report any failure of the peer, do not hide it
        frames = traceback.extract_tb(exc.__traceback__)[-3:]
        where = "; ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames)
        return f"{type(exc).__name__}: {str(exc)[:400]} (at {where})"
    return ""


def main() -> None:
    started = time.monotonic()
    setup_django()
    import django

    from tests.live import serve

    print(f"machine: {platform.machine()}, {_cores()} cores, Python "
          f"{platform.python_version()}, Django {django.get_version()}; load average "
          f"before: {_load()}", flush=True)
    in_process = overhead.run()
    with contextlib.ExitStack() as stack:
        seq_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-seq-")))
        proc_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-proc-")))
        # MAX_LIMIT is 50 in test_project/settings.py: a batch of 50 fits.
        sequential = stack.enter_context(serve("gunicorn", seq_dir))
        process = stack.enter_context(serve("gunicorn", proc_dir, {
            "BATCH_EXECUTOR": "process", "BATCH_NUM_WORKERS": "2"}))
        problem = peer_problem(sequential.url, sequential.tokens[roundtrips.USER])
        live = roundtrips.run(sequential.url, sequential.tokens, peer=not problem)
        if problem:
            print(f"peer did not run: {problem}")
        sleep_rows, cpu_rows = concurrency.run(sequential.url, process.url)

    section(f"Summary: the issue's table (all measured in this run, "
            f"{time.monotonic() - started:.0f} s; load average after: {_load()})")
    rows = []
    for row in in_process:
        rows.append([f"(a) {row['label']} {row['path']}: 1 item of a batch of {overhead.N} / "
                     "get_response", row["ratio"],
                     overhead.GOAL, verdict(row["ratio"], overhead.GOAL)])
    loopback = [row for row in live if not row["latency"]]
    for row in loopback:
        ratio = row["separate"] / row["ours"]
        rows.append([f"(b) {roundtrips.KINDS[row['path']]} {row['path']}: {roundtrips.N} "
                     f"keep-alive GETs / 1 batch of {roundtrips.N}", ratio, row["goal"],
                     verdict(ratio, row["goal"])])
    plain = next(row for row in loopback if row["path"] == "/views/")
    if plain["peer"]:
        ratio = plain["peer"] / plain["ours"]
        rows.append(["per item, drf-batch-requests 0.9.5 / ours, plain view (live, (b))", ratio,
                     roundtrips.PEER_GOAL, verdict(ratio, roundtrips.PEER_GOAL)])
    else:
        rows.append(["per item, drf-batch-requests 0.9.5 / ours, plain view", "did not run",
                     roundtrips.PEER_GOAL, "-"])
    inproc_plain = in_process[0]
    if inproc_plain["peer_ratio"]:
        rows.append([f"  the same in-process ((a), batch of {overhead.N})",
                     inproc_plain["peer_ratio"], roundtrips.PEER_GOAL,
                     verdict(inproc_plain["peer_ratio"], roundtrips.PEER_GOAL)])
    print("(a) in-process, DEBUG off, the project's middleware; (b) gunicorn -w 1 --threads 8, "
          "loopback, SQLite;\neach way repeated in interleaved rounds, medians.")
    print(table(["measure", "ratio", "goal", "met"], rows))
    print("\nthe batch's own work per item (batch - handler, (a)): " + ", ".join(
        f"{row['path']} {row['own']:.1f} µs of {row['batch']:.0f} µs" for row in in_process))
    print_ceilings(in_process, loopback, plain)
    print("\nother figures, no goal in the issue's table:")
    other = []
    for row in live:
        if row["latency"]:
            other.append([f"(b) {roundtrips.KINDS[row['path']]} {row['path']}, +20 ms "
                          "latency: speed-up", row["separate"] / row["ours"]])
    for name, _, _, ratio in sleep_rows:
        other.append([f"10 x sleep 100 ms, {name}: wall / 100 ms", ratio])
    other.append([f"4 x cpu ({cpu_rows[0][2]:.0f} ms each), process x2: speed-up "
                  "(2 cores: 2 at most)", cpu_rows[1][4]])
    print(table(["measure", "ratio"], other))


def print_ceilings(in_process: list[dict], loopback: list[dict], plain: dict) -> None:
    """What the goals of (b) and the peer's could reach in this run if the batch's own work
    were zero: each item then costs its handler path ((a)'s handler µs, which includes
    building the request; or, live, what the server's Server-Timing says the 50 items took),
    and the batch one round trip (one of the 50 GETs)."""
    handler = {row["path"]: row["handler"] / 1e6 for row in in_process}
    rows = []
    for row in loopback:
        if row["path"] in handler:
            floor = row["separate"] / roundtrips.N + roundtrips.N * handler[row["path"]]
            rows.append([f"(b) {row['path']}: 50 GETs / (1 GET + 50 x (a)'s handler path)",
                         row["separate"] / floor, row["goal"]])
        rows.append([f"(b) {row['path']}: 50 GETs / (1 GET + the 50 sub-requests as run live)",
                     roundtrips.live_ceiling(row), row["goal"]])
    inproc_plain = in_process[0]
    if inproc_plain.get("peer"):
        rows.append([f"peer per item / (a)'s handler path, {inproc_plain['path']}",
                     inproc_plain["peer"] / inproc_plain["handler"], roundtrips.PEER_GOAL])
    if plain["peer"] and plain["path"] in handler:
        floor = plain["separate"] / roundtrips.N + roundtrips.N * handler[plain["path"]]
        rows.append(["peer's batch of 50 (live) / the same floor", plain["peer"] / floor,
                     roundtrips.PEER_GOAL])
    print("\nceilings: the ratios if the batch's own work were zero (this run's figures):")
    print(table(["measure", "ceiling", "goal"], rows))


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    main()
