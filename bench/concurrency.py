"""Benchmark 3: executors. Wall time of one batch, sequential against parallel.

- I/O-bound, in-process: a batch of 10 ``/views/sleep/?seconds=0.1`` through Django's test
  client, with ``override_settings(BATCH_REQUESTS=...)`` choosing sequential, the thread
  executor or the async executor (``NUM_WORKERS`` = 10, one per item). Ideal: 1.0 s
  sequential, 0.1 s parallel; the target is parallel <= 1.2 x 100 ms.
- CPU-bound, live: a batch of 4 ``/views/cpu/?n=...`` (a pure-Python loop; one item alone
  takes about a quarter of a second) to a gunicorn that runs batches sequentially, and to one
  started with ``BATCH_EXECUTOR=process`` and ``BATCH_NUM_WORKERS=2``. The process executor
  needs a database file its worker processes can open, so both run on ``tests.live.serve``'s
  temp SQLite file. Threads cannot speed this up (the GIL); 2 processes on 2 cores can, at
  most 2x.
"""

from __future__ import annotations

import json

import requests

from bench.common import median_time, section, setup_django, table

SLEEP_ITEMS = 10
SLEEP_SECONDS = 0.1
CPU_ITEMS = 4
CPU_N = 2_000_000
EXECUTORS = {
    "thread": "batch_requests.concurrent.executor.ThreadBasedExecutor",
    "async": "batch_requests.concurrent.executor.AsyncExecutor",
}


def _check_items(items: list[dict], count: int) -> None:
    assert len(items) == count, len(items)
    for item in items:
        assert item["status_code"] == 200, item


def sleep_batch() -> list[list[object]]:
    """Wall ms of a batch of sleeps per executor, in-process."""
    setup_django()
    from django.test import Client, override_settings

    from batch_requests.concurrent.executor import reset_executors

    client = Client()
    url = f"/views/sleep/?seconds={SLEEP_SECONDS}"
    payload = json.dumps({"batch": [{"method": "GET", "url": url}] * SLEEP_ITEMS})

    def batch() -> None:
        response = client.post("/api/v1/batch/", payload, content_type="application/json")
        assert response.status_code == 200, response.content[:300]
        _check_items(response.json()["batch"], SLEEP_ITEMS)

    rows = []
    modes = {"sequential": {}} | {
        name: {"EXECUTE_PARALLEL": True, "CONCURRENT_EXECUTOR": path,
               "NUM_WORKERS": SLEEP_ITEMS} for name, path in EXECUTORS.items()}
    for name, extra in modes.items():
        with override_settings(BATCH_REQUESTS={"MAX_LIMIT": 50, **extra}):
            repeats = 2 if name == "sequential" else 7
            seconds = median_time(batch, repeats, budget=3.0)
        reset_executors()
        rows.append([name, SLEEP_ITEMS, seconds * 1000, seconds / SLEEP_SECONDS])
    return rows


def cpu_batch(site_url: str, label: str) -> tuple[float, float]:
    """Median ms of one CPU item sent alone and of a batch of CPU_ITEMS, against a server."""
    url = f"/views/cpu/?n={CPU_N}"
    payload = json.dumps({"batch": [{"method": "GET", "url": url}] * CPU_ITEMS})
    with requests.Session() as session:
        single = median_time(lambda: session.get(site_url + url, timeout=30).raise_for_status(),
                             repeats=3, budget=2.0)

        def batch() -> None:
            response = session.post(site_url + "/api/v1/batch/", data=payload, timeout=60,
                                    headers={"Content-Type": "application/json"})
            assert response.status_code == 200, f"{label}: {response.text[:300]}"
            _check_items(response.json()["batch"], CPU_ITEMS)

        # The warm-up batch also starts the process executor's worker pool.
        return single * 1000, median_time(batch, repeats=3, budget=6.0) * 1000


def run(sequential_url: str, process_url: str) -> tuple[list, list]:
    section(f"3a. Concurrency, I/O-bound: 1 batch of {SLEEP_ITEMS} x sleep "
            f"{SLEEP_SECONDS * 1000:.0f} ms, in-process test client, NUM_WORKERS="
            f"{SLEEP_ITEMS}")
    sleep_rows = sleep_batch()
    print(table(["executor", "items", "wall ms", "x 100 ms"], sleep_rows))
    print("target in the issue: parallel <= 1.2 x 100 ms")

    section(f"3b. Concurrency, CPU-bound: 1 batch of {CPU_ITEMS} x /views/cpu/?n={CPU_N}, "
            "live gunicorn, 2 cores")
    single, sequential = cpu_batch(sequential_url, "sequential")
    single_p, process = cpu_batch(process_url, "process")
    cpu_rows = [["sequential", CPU_ITEMS, single, sequential, 1.0],
                ["process (NUM_WORKERS=2)", CPU_ITEMS, single_p, process, sequential / process]]
    print(table(["executor", "items", "1 item alone ms", "batch ms", "speed-up x"], cpu_rows))
    print("ceiling on 2 cores: 2x")
    return sleep_rows, cpu_rows
