"""Metrics of dynamic batching: the recorder, its snapshot, Prometheus, and the real engine."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from batch_requests.dynamic import InProcessBatcher, metrics

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DYNAMIC_BATCHER__METRICS", raising=False)
    metrics.reset()


# --- the recorder ---------------------------------------------------------------------------


def test_batch_observations_give_counts_sums_extremes_and_cumulative_buckets() -> None:
    rec = metrics.recorder("tests.metrics.counts", "inprocess")
    observed = [(1, 0.0001, 0.2), (3, 0.0005, 0.003), (64, 0.003, 0.003), (1000, 100.0, 0.5),
                (2000, 0.02, 61.0)]
    for size, waited, ran in observed:
        rec.observe_batch(size, waited, ran)

    numbers = metrics.snapshot()["tests.metrics.counts"]
    assert numbers["backend"] == "inprocess"
    assert (numbers["calls"], numbers["items"]) == (5, 3068)
    size = numbers["batch_size"]
    assert (size["count"], size["sum"], size["min"], size["max"]) == (5, 3068, 1, 2000)
    assert size["buckets"] == {"1": 1, "2": 1, "4": 2, "8": 2, "16": 2, "32": 2, "64": 3,
                               "128": 3, "256": 3, "512": 3, "1024": 4, "+Inf": 5}
    wait = numbers["wait_seconds"]
    assert list(wait["buckets"]) == [f"{b:g}" for b in metrics.SECONDS_BUCKETS] + ["+Inf"]
    # Upper bounds are inclusive ("le"): 0.0005 counts in the 0.0005 bucket.
    assert wait["buckets"]["0.0005"] == 2
    assert wait["buckets"]["0.001"] == 2
    assert wait["buckets"]["0.005"] == 3
    assert wait["buckets"]["0.025"] == 4
    assert wait["buckets"]["60"] == 4
    assert wait["buckets"]["+Inf"] == 5
    assert wait["sum"] == pytest.approx(100.0236)
    assert (wait["min"], wait["max"]) == (0.0001, 100.0)
    run = numbers["run_seconds"]
    assert run["count"] == 5
    assert run["buckets"]["0.0025"] == 0
    assert run["buckets"]["0.005"] == 2
    assert run["buckets"]["0.25"] == 3
    assert run["buckets"]["0.5"] == 4
    assert run["buckets"]["60"] == 4
    assert run["buckets"]["+Inf"] == 5
    assert numbers["errors"] == 0


def test_errors_queue_depth_redeliveries_and_dead_letters_are_counted() -> None:
    rec = metrics.recorder("tests.metrics.faults", "redis")
    rec.observe_error(8)
    rec.observe_error(4)
    rec.set_queue_depth(17)
    rec.set_queue_depth(5)
    rec.observe_redeliveries(3)
    rec.observe_redeliveries(2)
    rec.observe_dead_letters(1)

    numbers = metrics.snapshot()["tests.metrics.faults"]
    assert numbers["backend"] == "redis"
    assert (numbers["errors"], numbers["error_items"]) == (2, 12)
    assert numbers["queue_depth"] == 5, "the queue depth is a gauge: its last value"
    assert (numbers["redeliveries"], numbers["dead_letters"]) == (5, 1)
    assert numbers["calls"] == 0
    assert numbers["batch_size"] == {
        "count": 0, "sum": 0.0, "min": None, "max": None,
        "buckets": {**{f"{b:g}": 0 for b in metrics.BATCH_SIZE_BUCKETS}, "+Inf": 0}}


def test_recorders_are_cached_per_function_and_backend() -> None:
    first = metrics.recorder("tests.metrics.cached", "inprocess")
    assert metrics.recorder("tests.metrics.cached", "inprocess") is first
    other = metrics.recorder("tests.metrics.cached", "redis")
    assert other is not first

    first.observe_batch(2, 0.0, 0.0)
    other.observe_batch(5, 0.0, 0.0)
    shown = metrics.snapshot()
    assert "tests.metrics.cached" not in shown, "one name under two backends must not collide"
    assert shown["tests.metrics.cached[inprocess]"]["items"] == 2
    assert shown["tests.metrics.cached[redis]"]["items"] == 5


def test_observations_from_many_threads_add_up_exactly() -> None:
    rec = metrics.recorder("tests.metrics.threads", "inprocess")
    threads, rounds = 8, 5000
    start = threading.Barrier(threads)

    def observe(worker: int) -> None:
        start.wait()
        for n in range(rounds):
            rec.observe_batch(worker + 1, 0.001, 0.002)
            if n % 10 == 0:
                rec.observe_error(worker + 1)
                rec.observe_redeliveries(1)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(observe, range(threads)))

    numbers = metrics.snapshot()["tests.metrics.threads"]
    assert numbers["calls"] == threads * rounds
    assert numbers["items"] == rounds * sum(range(1, threads + 1))
    assert numbers["batch_size"]["count"] == threads * rounds
    assert numbers["batch_size"]["sum"] == rounds * sum(range(1, threads + 1))
    assert numbers["batch_size"]["buckets"]["8"] == threads * rounds
    assert numbers["wait_seconds"]["count"] == numbers["run_seconds"]["count"] == threads * rounds
    assert numbers["errors"] == numbers["redeliveries"] == threads * rounds // 10
    assert numbers["error_items"] == rounds // 10 * sum(range(1, threads + 1))


def test_snapshot_is_a_json_serializable_copy() -> None:
    rec = metrics.recorder("tests.metrics.copy", "inprocess")
    rec.observe_batch(4, 0.01, 0.02)
    before = metrics.snapshot()

    assert json.loads(json.dumps(before)) == before
    before["tests.metrics.copy"]["calls"] = 99
    before["tests.metrics.copy"]["batch_size"]["buckets"]["4"] = 99
    rec.observe_batch(4, 0.01, 0.02)

    after = metrics.snapshot()["tests.metrics.copy"]
    assert after["calls"] == 2
    assert after["batch_size"]["buckets"]["4"] == 2
    assert before["tests.metrics.copy"]["calls"] == 99, "an old snapshot must not follow along"


def test_reset_forgets_everything_and_held_recorders_keep_working() -> None:
    rec = metrics.recorder("tests.metrics.reset", "inprocess")
    rec.observe_batch(3, 0.0, 0.0)
    rec.observe_dead_letters(2)
    metrics.reset()
    assert metrics.snapshot() == {}

    rec.observe_batch(1, 0.0, 0.0)  # a running batcher keeps the recorder it was given
    numbers = metrics.snapshot()["tests.metrics.reset"]
    assert (numbers["calls"], numbers["items"], numbers["dead_letters"]) == (1, 1, 0)
    assert metrics.recorder("tests.metrics.reset", "inprocess") is rec


# --- turned off -----------------------------------------------------------------------------


def test_metrics_off_in_settings_gives_a_recorder_that_records_nothing() -> None:
    with override_settings(BATCH_REQUESTS={"DYNAMIC": {"METRICS": False}}):
        rec = metrics.recorder("tests.metrics.off", "inprocess")
        assert rec is metrics.NOOP and not rec.enabled
        rec.observe_batch(3, 0.1, 0.1)
        rec.observe_error(3)
        rec.set_queue_depth(3)
        rec.observe_redeliveries(3)
        rec.observe_dead_letters(3)
    assert metrics.snapshot() == {}
    # The option is read on each call of recorder(), not at import.
    assert metrics.recorder("tests.metrics.off", "inprocess").enabled


def test_metrics_off_by_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNAMIC_BATCHER__METRICS", "0")
    assert metrics.recorder("tests.metrics.env-off", "redis") is metrics.NOOP
    monkeypatch.setenv("DYNAMIC_BATCHER__METRICS", "1")
    assert isinstance(metrics.recorder("tests.metrics.env-off", "redis"), metrics.Recorder)


def test_the_engine_records_nothing_when_metrics_are_off() -> None:
    calls: list[int] = []

    async def double(items: list[int]) -> list[int]:
        calls.append(len(items))
        return [item * 2 for item in items]

    with override_settings(BATCH_REQUESTS={"DYNAMIC": {"METRICS": False}}):
        batcher = InProcessBatcher(double, max_batch_size=8, max_wait=0.001,
                                   name="tests.metrics.engine-off")

        async def main() -> list[int]:
            try:
                return await asyncio.gather(*(batcher.acall(i) for i in range(20)))
            finally:
                await batcher.astop()

        assert asyncio.run(main()) == [i * 2 for i in range(20)]
    assert sum(calls) == 20
    assert "tests.metrics.engine-off" not in metrics.snapshot()


# --- Prometheus -----------------------------------------------------------------------------


def test_prometheus_metrics_carry_the_same_numbers_with_function_and_backend_labels() -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    registry = prometheus_client.REGISTRY
    labels = {"function": "tests.metrics.prom", "backend": "redis"}

    def sample(name: str, **extra: str) -> float | None:
        return registry.get_sample_value(f"batch_requests_dynamic_{name}", {**labels, **extra})

    rec = metrics.recorder("tests.metrics.prom", "redis")
    rec.observe_batch(64, 0.0004, 0.2)
    rec.observe_batch(3, 0.003, 0.004)
    rec.observe_error(3)
    rec.set_queue_depth(11)
    rec.observe_redeliveries(4)
    rec.observe_dead_letters(2)

    assert sample("calls_total") == 2
    assert sample("items_total") == 67
    assert sample("errors_total") == 1
    assert sample("queue_depth") == 11
    assert sample("redeliveries_total") == 4
    assert sample("dead_letters_total") == 2
    assert sample("batch_size_count") == 2
    assert sample("batch_size_sum") == 67
    assert sample("batch_size_bucket", le="2.0") == 0
    assert sample("batch_size_bucket", le="4.0") == 1
    assert sample("batch_size_bucket", le="64.0") == 2
    assert sample("batch_size_bucket", le="1024.0") == 2
    assert sample("batch_size_bucket", le="+Inf") == 2
    assert sample("wait_seconds_bucket", le="0.0005") == 1
    assert sample("wait_seconds_bucket", le="0.005") == 2
    assert sample("wait_seconds_sum") == pytest.approx(0.0034)
    assert sample("run_seconds_bucket", le="0.005") == 1
    assert sample("run_seconds_bucket", le="60.0") == 2
    assert sample("run_seconds_count") == 2

    exposition = prometheus_client.generate_latest(registry).decode()
    assert exposition.count("# TYPE batch_requests_dynamic_batch_size histogram") == 1
    assert exposition.count("# TYPE batch_requests_dynamic_queue_depth gauge") == 1
    assert exposition.count("# TYPE batch_requests_dynamic_calls_total counter") == 1

    metrics.reset()
    assert sample("calls_total") is None, "reset() also empties the Prometheus view"
    assert sample("queue_depth") is None
    rec.observe_batch(2, 0.0, 0.0)  # the recorder a batcher holds goes on recording
    assert (sample("calls_total"), sample("items_total"), sample("queue_depth")) == (1, 2, 0)


def test_importing_the_package_imports_neither_prometheus_nor_settings() -> None:
    code = (
        "import sys\n"
        "import batch_requests.dynamic\n"
        "from batch_requests.dynamic import metrics\n"
        "assert 'prometheus_client' not in sys.modules, 'imported at import time'\n"
        "from django.conf import settings\n"
        "assert not settings.configured, 'settings were read at import time'\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_everything_works_without_prometheus_client() -> None:
    code = (
        "import sys, json\n"
        "sys.modules['prometheus_client'] = None  # as if it were not installed\n"
        "from batch_requests.dynamic import metrics\n"
        "rec = metrics.recorder('f', 'inprocess')\n"
        "rec.observe_batch(2, 0.001, 0.002)\n"
        "rec.observe_error(2)\n"
        "rec.set_queue_depth(1)\n"
        "print(json.dumps(metrics.snapshot()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    numbers = json.loads(result.stdout)["f"]
    assert (numbers["calls"], numbers["items"], numbers["errors"], numbers["queue_depth"]) == (
        1, 2, 1, 1)


# --- the real in-process engine -------------------------------------------------------------


class CountingFunction:
    """An async batch function that records the size of every call it gets."""

    def __init__(self, poison: int | None = None) -> None:
        self.sizes: list[int] = []
        self.raised_sizes: list[int] = []
        self.poison = poison

    async def __call__(self, items: list[int]) -> list[int]:
        self.sizes.append(len(items))
        if self.poison is not None and self.poison in items:
            self.raised_sizes.append(len(items))
            raise ValueError(f"poison {self.poison}")
        return [item + 1 for item in items]


def run_concurrently(batcher: InProcessBatcher, count: int) -> list[Any]:
    async def main() -> list[Any]:
        try:
            return await asyncio.gather(*(batcher.acall(i) for i in range(count)),
                                        return_exceptions=True)
        finally:
            await batcher.astop()

    return asyncio.run(main())


def test_the_number_of_observed_batch_sizes_equals_the_number_of_function_calls() -> None:
    func = CountingFunction()
    batcher = InProcessBatcher(func, max_batch_size=16, max_wait=0.002,
                               name="tests.metrics.engine")

    assert run_concurrently(batcher, 200) == [i + 1 for i in range(200)]

    numbers = metrics.snapshot()["tests.metrics.engine"]
    assert len(func.sizes) >= 13, "200 items in batches of at most 16"
    assert numbers["backend"] == "inprocess"
    assert numbers["batch_size"]["count"] == numbers["calls"] == len(func.sizes)
    assert numbers["batch_size"]["sum"] == numbers["items"] == sum(func.sizes) == 200
    assert numbers["batch_size"]["max"] == max(func.sizes) <= 16
    assert numbers["batch_size"]["min"] == min(func.sizes)
    assert numbers["wait_seconds"]["count"] == numbers["run_seconds"]["count"] == len(func.sizes)
    assert numbers["errors"] == 0
    assert numbers["queue_depth"] == 0, "nothing is left waiting"


def test_sync_callers_from_many_threads_are_counted_per_function_call() -> None:
    calls: list[int] = []

    def add_one(items: list[int]) -> list[int]:  # sync: runs in the home loop's thread pool
        calls.append(len(items))
        return [item + 1 for item in items]

    batcher = InProcessBatcher(add_one, max_batch_size=8, max_wait=0.002,
                               name="tests.metrics.engine-sync")
    try:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda i: batcher.call(i, timeout=30), range(64)))
    finally:
        batcher.stop()

    assert results == [i + 1 for i in range(64)]
    numbers = metrics.snapshot()["tests.metrics.engine-sync"]
    assert numbers["batch_size"]["count"] == len(calls)
    assert numbers["items"] == sum(calls) == 64


def test_a_raising_batch_counts_every_call_and_each_error_including_retried_halves() -> None:
    func = CountingFunction(poison=37)
    # A long max_wait keeps the poison item in a full batch of 64, whatever the machine's speed.
    batcher = InProcessBatcher(func, max_batch_size=64, max_wait=0.05,
                               name="tests.metrics.engine-errors")

    results = run_concurrently(batcher, 200)

    assert isinstance(results[37], ValueError)
    assert [r for i, r in enumerate(results) if i != 37] == [i + 1 for i in range(200) if i != 37]
    numbers = metrics.snapshot()["tests.metrics.engine-errors"]
    assert len(func.raised_sizes) >= 2, "the poison item's batch failed, then its half did"
    assert numbers["batch_size"]["count"] == numbers["calls"] == len(func.sizes)
    assert numbers["items"] == sum(func.sizes) > 200, "retried halves count their items again"
    assert numbers["errors"] == len(func.raised_sizes)
    assert numbers["error_items"] == sum(func.raised_sizes)
    assert func.raised_sizes[-1] == 1, "the poison item ends up called alone"
    assert numbers["batch_size"]["buckets"]["1"] >= 1


async def module_level_batch_function(items: list[int]) -> list[int]:
    return items


def test_by_default_a_batcher_is_named_after_its_function() -> None:
    batcher = InProcessBatcher(module_level_batch_function, max_batch_size=4, max_wait=0.001)
    assert run_concurrently(batcher, 10) == list(range(10))
    name = f"{__name__}.module_level_batch_function"
    assert metrics.snapshot()[name]["items"] == 10
