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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from dynamic_helpers import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


class RedisProcess:
    """A private redis-server (no persistence) that a test can stop and start on the same port."""

    def __init__(self, binary: str, port: int, workdir: str,
                 extra_args: Sequence[str] = ()) -> None:
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self.extra_args = tuple(extra_args)  # more redis-server options, after the defaults
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import redis

        assert self.proc is None, "already running"
        proc = self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir, *self.extra_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=2)

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError("redis-server exited early")
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            wait_until(ready, 20, "redis-server ready")
        finally:
            client.close()

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGKILL with ``kill``); everything in it is lost."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def restart(self, kill: bool = False) -> None:
        self.stop(kill)
        self.start()


@contextlib.contextmanager
def _redis_process(extra_args: Sequence[str] = ()) -> Iterator[RedisProcess]:
    pytest.importorskip("redis")
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    workdir = tempfile.mkdtemp(prefix="dynamic-redis-")
    server = RedisProcess(binary, free_port(), workdir, extra_args)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A private redis-server on 127.0.0.1 (no persistence), shared by the session; its URL."""
    with _redis_process() as server:
        yield server.url


def _export(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    host, port = url.split("//")[1].split("/")[0].split(":")
    monkeypatch.setenv("REDIS__HOST", host)
    monkeypatch.setenv("REDIS__PORT", port)
    monkeypatch.setenv("REDIS__DB", "0")


@pytest.fixture
def restartable_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisProcess]:
    """A redis-server of this test's own, to stop and restart (same port), exported as REDIS__*."""
    with _redis_process() as server:
        _export(server.url, monkeypatch)
        yield server


@pytest.fixture
def blmpop_less_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisProcess]:
    """A redis-server of this test's own that refuses BLMPOP (``--rename-command BLMPOP ""``),
    as Redis < 7 or an ACL would; exported as REDIS__*."""
    with _redis_process(["--rename-command", "BLMPOP", ""]) as server:
        _export(server.url, monkeypatch)
        yield server


@pytest.fixture
def redis_url(redis_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty database on the shared server, also exported through REDIS__* variables."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushall()
    _export(redis_server, monkeypatch)
    yield redis_server
    client.close()


@contextlib.contextmanager
def _thread_workers(redis_url: str) -> Iterator[Callable[..., Any]]:
    from batch_requests.dynamic import RedisWorker

    started: list[tuple[RedisWorker, asyncio.AbstractEventLoop, threading.Thread]] = []

    def start(func: Callable[[list[Any]], Any], name: str = "default", **options: Any):
        options.setdefault("redis_url", redis_url)
        worker = RedisWorker(func, name, **options)
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

    try:
        yield start
    finally:
        for worker, loop, _thread in started:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(worker.request_stop)
        for _worker, _loop, thread in started:
            thread.join(30)
            assert not thread.is_alive(), "worker thread did not stop"


@pytest.fixture
def worker_thread(redis_url: str) -> Iterator[Callable[..., Any]]:
    """Start RedisWorkers in threads (each on its own loop); all are stopped at teardown."""
    with _thread_workers(redis_url) as start:
        yield start


@pytest.fixture
def restartable_worker_thread(restartable_redis: RedisProcess) -> Iterator[Callable[..., Any]]:
    """:func:`worker_thread` for the test's own :func:`restartable_redis` server."""
    with _thread_workers(restartable_redis.url) as start:
        yield start


@pytest.fixture
def blmpop_less_worker_thread(blmpop_less_redis: RedisProcess) -> Iterator[Callable[..., Any]]:
    """:func:`worker_thread` for the test's own :func:`blmpop_less_redis` server."""
    with _thread_workers(blmpop_less_redis.url) as start:
        yield start


@pytest.fixture
def worker_process(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start ``manage.py batch_worker`` processes; any still running are killed at teardown.

    ``url=`` serves another server than the shared one (a :func:`restartable_redis`).
    """
    procs: list[subprocess.Popen] = []

    def start(target: str, *args: str, env: dict[str, str] | None = None,
              url: str | None = None) -> subprocess.Popen:
        full_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
            "DJANGO_SETTINGS_MODULE": "test_project.settings",
            "WORKFUNC_DIR": str(tmp_path),
            **(env or {}),
        }
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "batch_worker", target, "--redis-url", url or redis_url,
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
            if not proc.stdout.closed:
                # shown with a failing test's captured output
                print(f"--- worker {proc.pid} exited {proc.returncode}:\n{proc.stdout.read()}")
            proc.stdout.close()
