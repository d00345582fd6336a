"""Fixtures for dynamic batching: a real redis-server, in-thread workers, worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dynamic_helpers import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A private redis-server on 127.0.0.1 (no persistence); yields its URL."""
    pytest.importorskip("redis")
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    import redis

    port = free_port()
    workdir = tempfile.mkdtemp(prefix="dynamic-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError("redis-server exited early")
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(ready, 10, "redis-server ready")
        yield url
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty database on the shared server, also exported through REDIS__* variables."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushall()
    host_port = redis_server.split("//")[1].split("/")[0]
    host, port = host_port.split(":")
    monkeypatch.setenv("REDIS__HOST", host)
    monkeypatch.setenv("REDIS__PORT", port)
    monkeypatch.setenv("REDIS__DB", "0")
    yield redis_server
    client.close()


@pytest.fixture
def worker_thread(redis_url: str) -> Iterator[Callable[..., Any]]:
    """Start RedisWorkers in threads (each on its own loop); all are stopped at teardown."""
    from batch_requests.dynamic import RedisWorker

    started: list[tuple[RedisWorker, asyncio.AbstractEventLoop, threading.Thread]] = []

    def start(func: Callable[[list[Any]], Any], name: str = "default", **options: Any):
        worker = RedisWorker(func, name, redis_url=redis_url, **options)
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_until_complete(worker.run(handle_signals=False))
            loop.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        ready.wait(5)
        started.append((worker, loop, thread))
        return worker

    yield start
    for worker, loop, thread in started:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(worker.request_stop)
        thread.join(15)
        assert not thread.is_alive(), "worker thread did not stop"


@pytest.fixture
def worker_process(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start ``manage.py batch_worker`` processes; any still running are killed at teardown."""
    procs: list[subprocess.Popen] = []

    def start(target: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        full_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
            "DJANGO_SETTINGS_MODULE": "test_project.settings",
            "WORKFUNC_DIR": str(tmp_path),
            **(env or {}),
        }
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "batch_worker", target, "--redis-url", redis_url,
             *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
