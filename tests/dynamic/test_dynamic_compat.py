"""dynamic_batcher's API and configuration: DynamicBatcher, BatchProcessor, env vars, settings."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from batch_requests.dynamic import conf

ROOT = Path(__file__).resolve().parents[2]


def test_priority_is_passed_then_env_then_settings_then_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DYNAMIC_BATCHER__BATCH_SIZE", raising=False)
    assert conf.get("BATCH_SIZE") == 64
    with override_settings(BATCH_REQUESTS={"DYNAMIC": {"BATCH_SIZE": 16}}):
        assert conf.get("BATCH_SIZE") == 16
        monkeypatch.setenv("DYNAMIC_BATCHER__BATCH_SIZE", "32")
        assert conf.get("BATCH_SIZE") == 32
        assert conf.get("BATCH_SIZE", 8) == 8


def test_redis_url_is_built_from_the_seed_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {"REDIS__HOST": "cache.internal", "REDIS__PORT": "6380",
                        "REDIS__DB": "2", "REDIS__PASSWORD": "s3cret"}.items():
        monkeypatch.setenv(name, value)
    assert conf.redis_url() == "redis://:s3cret@cache.internal:6380/2"
    assert conf.redis_url("redis://other:1/0") == "redis://other:1/0"


def test_works_without_django_settings_or_redis_configured() -> None:
    code = (
        "import asyncio\n"
        "from batch_requests.dynamic import InProcessBatcher, conf\n"
        "b = InProcessBatcher(lambda items: [i + 1 for i in items], max_wait=0.001)\n"
        "print(conf.get('TIMEOUT'), asyncio.run(b.acall(1)), b(2))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    assert out.split() == ["100.0", "2", "3"]


def test_dynamic_batcher_and_batch_processor_work_together_configured_by_env(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("redis")
    from batch_requests.dynamic import BatchProcessor, DynamicBatcher

    monkeypatch.setenv("DYNAMIC_BATCHER__BATCH_SIZE", "5")
    monkeypatch.setenv("DYNAMIC_BATCHER__BATCH_TIME", "5")
    sizes: list[int] = []

    def sum_values(bodies: list[dict[str, Any]]) -> list[dict[str, int]]:
        sizes.append(len(bodies))
        return [{"sum": sum(body["values"])} for body in bodies]

    processor = BatchProcessor()
    assert (processor.batch_size, processor.batch_time) == (5, 5.0)
    assert BatchProcessor(batch_size=3).batch_size == 3
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(processor.start_daemon(sum_values)), daemon=True
    )
    thread.start()

    async def main() -> list[Any]:
        batcher = DynamicBatcher(delay=0.5, timeout=20)
        try:
            return await asyncio.gather(
                *(batcher.asend({"values": [i, i, 1]}) for i in range(10))
            )
        finally:
            await batcher.astop()

    try:
        results = asyncio.run(main())
    finally:
        loop.call_soon_threadsafe(processor.stop)
        thread.join(15)
    assert results == [{"sum": 2 * i + 1} for i in range(10)]
    assert sizes == [5, 5], "batches fill to DYNAMIC_BATCHER__BATCH_SIZE before the 5 s timer"
    assert not thread.is_alive()
