"""Benchmark 2 (and 4, the peer): one batch of 50 GETs against 50 keep-alive GETs.

A real gunicorn (1 worker, 8 threads, DEBUG off) on 127.0.0.1 serves test_project on a
migrated, seeded temp SQLite file (``tests.live.serve``). The client is one
``requests.Session`` (keep-alive, so no TCP handshake per GET). Each way is repeated and the
median taken. Then the same with 20 ms of network latency simulated on the client: it sleeps
20 ms before each HTTP round trip (50 sleeps for the GETs, one for the batch).

Every answer is checked: each GET and each batch item must be 200, and ``/api/me/`` must name
the token's user, so a fast wrong answer cannot pass for a fast one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from bench.common import median_time, section, table

N = 50
LATENCY = 0.020
VIEWS = ["/views/", "/api/me/"]
USER = "demo"


@dataclass
class Endpoint:
    """How to send a batch of GETs to one batch app and read the statuses and bodies back."""

    name: str
    path: str
    item: Callable[[str], dict]
    parse: Callable[[dict | list], list[tuple[int, str]]]


OURS = Endpoint(
    "batch_requests", "/api/v1/batch/",
    item=lambda path: {"method": "GET", "url": path},
    parse=lambda data: [(i["status_code"], i["body"]) for i in data["batch"]],
)
# drf-batch-requests: items name their URL "relative_url"; the answer is a bare list. Its
# method is passed to Django as written, so it must be upper case.
PEER = Endpoint(
    "drf-batch-requests", "/peer/batch/",
    item=lambda path: {"method": "GET", "relative_url": path},
    parse=lambda data: [(i["code"], i["body"]) for i in data],
)


def _check(path: str, status: int, body: str) -> None:
    if status != 200:
        raise AssertionError(f"{path} answered {status}: {body[:300]}")
    if path == "/api/me/" and json.loads(body).get("username") != USER:
        raise AssertionError(f"{path} answered for another user: {body[:300]}")


def measure(site_url: str, token: str, endpoint: Endpoint, path: str,
            latency: float) -> tuple[float, float]:
    """Median seconds of (50 separate GETs, one batch of 50) for ``path``."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    payload = json.dumps({"batch": [endpoint.item(path)] * N})

    def separate() -> None:
        for _ in range(N):
            if latency:
                time.sleep(latency)
            response = session.get(site_url + path, timeout=10)
            _check(path, response.status_code, response.text)

    def batch() -> None:
        if latency:
            time.sleep(latency)
        response = session.post(site_url + endpoint.path, data=payload, timeout=30,
                                headers={"Content-Type": "application/json"})
        if response.status_code != 200:
            raise AssertionError(f"batch answered {response.status_code}: "
                                 f"{response.text[:500]}")
        items = endpoint.parse(response.json())
        assert len(items) == N, len(items)
        for status, body in items:
            _check(path, status, body)

    repeats, budget = (3, 4.0) if latency else (9, 4.0)
    try:
        return median_time(separate, repeats, budget), median_time(batch, repeats, budget)
    finally:
        session.close()


def run(site_url: str, tokens: dict[str, str], endpoint: Endpoint = OURS,
        number: str = "2") -> list[list[object]]:
    section(f"{number}. Round trips, {endpoint.name}: 1 batch of {N} GETs vs {N} keep-alive "
            "GETs, gunicorn 1 worker x 8 threads, loopback")
    rows = []
    for latency in (0.0, LATENCY):
        for path in VIEWS:
            separate, batch = measure(site_url, tokens[USER], endpoint, path, latency)
            rows.append([endpoint.name, path, f"+{latency * 1000:.0f} ms",
                         separate * 1000, batch * 1000, separate / batch])
    print(table(["app", "view", "latency", f"{N} GETs ms", "batch ms", "speed-up x"], rows))
    print("target in the issue: speed-up >= 10x")
    return rows
