"""Benchmark (b): 50 keep-alive GETs against one batch of 50 GETs, ours and the peer's.

A real gunicorn (1 worker, 8 threads, DEBUG off) on 127.0.0.1 serves test_project on a
migrated, seeded temp SQLite file (``tests.live.serve``). The client is one
``requests.Session`` (keep-alive, so no TCP handshake per GET). Each way is repeated and the
median taken; the three ways (50 GETs, our batch, the peer's batch) run in turn round after
round. Then the same with 20 ms of network latency simulated on the client: it sleeps
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

from bench.common import interleaved, section, table, verdict

N = 50
LATENCY = 0.020
VIEWS = ["/views/", "/api/me/"]
KINDS = {"/views/": "plain view", "/api/me/": "DRF, token auth"}
GOALS = {"/views/": ">= 10", "/api/me/": ">= 4.5"}
PEER_GOAL = ">= 4"  # per item, the peer's batch over ours, plain view
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


def measure(site_url: str, token: str, path: str, latency: float,
            endpoints: list[Endpoint]) -> dict[str, float]:
    """Median seconds of 50 separate GETs of ``path`` ("separate") and of one batch of 50 to
    each endpoint (by name), run in turn round after round."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"

    def separate() -> None:
        for _ in range(N):
            if latency:
                time.sleep(latency)
            response = session.get(site_url + path, timeout=10)
            _check(path, response.status_code, response.text)

    def batch_to(endpoint: Endpoint) -> Callable[[], None]:
        payload = json.dumps({"batch": [endpoint.item(path)] * N})

        def batch() -> None:
            if latency:
                time.sleep(latency)
            response = session.post(site_url + endpoint.path, data=payload, timeout=30,
                                    headers={"Content-Type": "application/json"})
            if response.status_code != 200:
                raise AssertionError(f"{endpoint.name}: batch answered "
                                     f"{response.status_code}: {response.text[:500]}")
            items = endpoint.parse(response.json())
            assert len(items) == N, len(items)
            for status, body in items:
                _check(path, status, body)
        return batch

    ways = {"separate": separate} | {e.name: batch_to(e) for e in endpoints}
    repeats, budget = (3, 6.0) if latency else (15, 6.0)
    try:
        return interleaved(ways, repeats, budget)
    finally:
        session.close()


def run(site_url: str, tokens: dict[str, str], peer: bool = True) -> list[dict[str, object]]:
    """Print the table of (b); return one row per view and latency."""
    endpoints = [OURS, PEER] if peer else [OURS]
    section(f"(b) {N} keep-alive GETs vs 1 batch of {N}, gunicorn -w 1 --threads 8, "
            "loopback, median of interleaved rounds")
    out, rows = [], []
    for latency in (0.0, LATENCY):
        for path in VIEWS:
            seconds = measure(site_url, tokens[USER], path, latency, endpoints)
            ours, other = seconds[OURS.name], seconds.get(PEER.name)
            goal = GOALS[path] if not latency else None
            out.append({"path": path, "latency": latency, "separate": seconds["separate"],
                        "ours": ours, "peer": other, "goal": goal})
            speedup = seconds["separate"] / ours
            rows.append([
                f"{path} ({KINDS[path]})", f"+{latency * 1000:.0f} ms",
                seconds["separate"] * 1000, ours * 1000, speedup, goal or "(context)",
                verdict(speedup, goal) if goal else "",
                other * 1000 if other else "-",
                seconds["separate"] / other if other else "-",
                other / ours if other else "-"])
    print(table(["view", "latency", f"{N} GETs ms", "batch ms", "speed-up x", "goal", "met",
                 "peer batch ms", "peer speed-up x", "peer/ours per item"], rows))
    print("peer: drf-batch-requests 0.9.5 on the same server and views. +20 ms: a 20 ms sleep "
          "before each HTTP\nround trip (50 for the GETs, 1 for a batch), for context; the "
          "goals are on loopback.")
    return out
