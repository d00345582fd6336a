"""The predict demo with the Redis backend behind a real gunicorn and uvicorn.

Every kind of view (sync or async, under WSGI or ASGI) hands its item to the process's one Redis
client, so 50 concurrent requests ride in two full batches of a ``batch_worker`` process; and
when Redis is down, the view's ``except BatchError`` answers 503 instead of a 500.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("redis")
requests = pytest.importorskip("requests")

from test_dynamic_predict_server import serve as serve_predict  # noqa: E402

CONCURRENT = 50
BATCH = 25


@contextlib.contextmanager
def serve(kind: str, redis_url: str, tmp_path: Path) -> Iterator[str]:
    """The predict demo (the same launcher as the in-process test) with the Redis backend."""
    host, port_text = redis_url.split("//")[1].split("/")[0].split(":")
    with serve_predict(kind, tmp_path, {
        "DYNAMIC_BATCHER__BACKEND": "redis",
        "DYNAMIC_BATCHER__BATCH_SIZE": str(BATCH),
        "REDIS__HOST": host, "REDIS__PORT": port_text, "REDIS__DB": "0",
    }) as url:
        yield url


def post(url: str, i: int) -> requests.Response:
    return requests.post(url, json={"features": [i, 1, 0, 0.5]}, timeout=60)


@pytest.mark.server
@pytest.mark.parametrize(
    ("kind", "path"),
    [("gunicorn", ""), ("gunicorn", "async/"), ("uvicorn", ""), ("uvicorn", "async/")],
    ids=["wsgi-sync-view", "wsgi-async-view", "asgi-sync-view", "asgi-async-view"],
)
def test_fifty_concurrent_requests_ride_in_two_batches_of_a_redis_worker(
    kind: str, path: str, redis_url: str, worker_process, tmp_path: Path
) -> None:
    # A full batch leaves at once; the 10 s only matter when requests straggle.
    worker = worker_process("test_project.predict.model:score", "--batch-size", str(BATCH),
                            "--batch-time", "10")
    with serve(kind, redis_url, tmp_path) as url, ThreadPoolExecutor(CONCURRENT) as pool:
        responses = list(pool.map(lambda i: post(url + path, i), range(CONCURRENT)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses][:3]
    answers = [r.json() for r in responses]
    riders = Counter(answer["batch_id"] for answer in answers)
    assert sorted(riders.values()) == [BATCH, BATCH]
    assert all(answer["batch_id"].startswith(f"{worker.pid}-") for answer in answers)
    assert answers[0]["score"] < answers[-1]["score"]


@pytest.mark.server
def test_a_view_answers_503_when_redis_is_down(restartable_redis, tmp_path: Path) -> None:
    server = restartable_redis
    with serve("gunicorn", server.url, tmp_path) as url:
        server.stop()
        response = post(url, 1)
    assert response.status_code == 503, response.text
    assert "unavailable" in response.json()["error"]
