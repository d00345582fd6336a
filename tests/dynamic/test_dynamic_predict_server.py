"""The predict demo behind a real gunicorn and uvicorn: every kind of view shares batches.

Under WSGI an ``async def`` view runs on a fresh event loop per request and a sync view in its
request thread; under ASGI a sync view runs in a thread per request and an async view on the
server's loop. All of them must hand their items to the process's one batching loop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from dynamic_helpers import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CONCURRENT = 50


def server_command(kind: str, port: int) -> list[str]:
    if kind == "gunicorn":
        return [sys.executable, "-m", "gunicorn", "test_project.wsgi:application",
                "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "64",
                "--log-level", "warning"]
    return [sys.executable, "-m", "uvicorn", "test_project.asgi:application",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]


@contextlib.contextmanager
def serve(kind: str, tmp_path: Path, backend_env: dict[str, str] | None = None) -> Iterator[str]:
    """The predict demo served by ``kind``; ``backend_env`` replaces the in-process settings."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "predict_server_settings",
        "DJANGO_DB_NAME": str(tmp_path / "predict.sqlite3"),
        "DJANGO_DEBUG": "0",
        **(backend_env or {
            "DYNAMIC_BATCHER__BACKEND": "inprocess",
            "DYNAMIC_BATCHER__BATCH_SIZE": "25",
            "DYNAMIC_BATCHER__BATCH_TIME": "5",
        }),
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env,
                   check=True, stdout=subprocess.DEVNULL, timeout=120)
    port = free_port()
    proc = subprocess.Popen(server_command(kind, port), cwd=ROOT, env=env,
                            start_new_session=True)
    try:
        def listening() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{kind} exited with {proc.returncode}")
            try:
                requests.get(f"http://127.0.0.1:{port}/api/v1/predict/", timeout=2)
            except requests.ConnectionError:
                return False
            return True

        wait_until(listening, 60, f"{kind} listening")
        yield f"http://127.0.0.1:{port}/api/v1/predict/"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.mark.server
@pytest.mark.parametrize(
    ("kind", "path"),
    [("gunicorn", ""), ("gunicorn", "async/"), ("uvicorn", ""), ("uvicorn", "async/")],
    ids=["wsgi-sync-view", "wsgi-async-view", "asgi-sync-view", "asgi-async-view"],
)
def test_fifty_concurrent_requests_ride_in_shared_batches(
    kind: str, path: str, tmp_path: Path
) -> None:
    with serve(kind, tmp_path) as url:
        assert requests.get(url + path, timeout=10).status_code == 405
        bad = requests.post(url + path, json={"features": "x"}, timeout=10)
        assert bad.status_code == 400

        def post(i: int) -> dict:
            response = requests.post(url + path, json={"features": [i, 1, 0, 0.5]}, timeout=30)
            assert response.status_code == 200, response.text
            return response.json()

        with ThreadPoolExecutor(CONCURRENT) as pool:
            answers = list(pool.map(post, range(CONCURRENT)))

    riders = Counter(answer["batch_id"] for answer in answers)
    assert sorted(riders.values()) == [25, 25]
    assert all(answer["batch_size"] == riders[answer["batch_id"]] for answer in answers)
    assert answers[0]["score"] < answers[-1]["score"]
