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
import re
import statistics
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


WARMUP = 3  # rounds before the timed ones: the server's code paths are warm by then
_TIMING = re.compile(r"(batch|sub\d+);dur=([0-9.]+)")


def server_timing(header: str) -> tuple[float, float]:
    """(the batch view's seconds, the sum of its sub-requests' seconds) from our
    ``Server-Timing`` header (``batch;dur=9.120, sub0;dur=0.210, ...``, in ms)."""
    view = subs = 0.0
    for name, ms in _TIMING.findall(header):
        if name == "batch":
            view = float(ms) / 1000
        else:
            subs += float(ms) / 1000
    if not view:
        raise AssertionError(f"the batch answered without its Server-Timing: {header!r}")
    return view, subs


def live_ceiling(row: dict) -> float:
    """The ratio (b) would reach if the batch cost one GET's round trip plus its
    sub-requests as they ran (no own work, no larger request or answer)."""
    return row["separate"] / (row["separate"] / N + row["subs"])


def measure(site_url: str, token: str, path: str, latency: float,
            endpoints: list[Endpoint]) -> dict[str, float]:
    """Median seconds of 50 separate GETs of ``path`` ("separate") and of one batch of 50 to
    each endpoint (by name), run in turn round after round; for our batch also the medians,
    from its ``Server-Timing`` header, of the batch view ("ours.view") and of the sum of its
    sub-requests ("ours.subs").

    The client's garbage collector is not run before each sample (``collect=False``): this
    process holds the in-process benchmarks' large heap, and a full collection of it just
    before a sample evicts the caches the server shares. Measured (a probe, 2026-12-01):
    the batch took 13.3-14.2 ms right after such a collection, 10.8-10.9 ms without; the 50
    GETs 82-87 ms and 74-75 ms."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"

    def separate() -> None:
        for _ in range(N):
            if latency:
                time.sleep(latency)
            response = session.get(site_url + path, timeout=10)
            _check(path, response.status_code, response.text)

    timings: list[tuple[float, float]] = []  # ours: (view, sum of sub-requests), seconds

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
            if endpoint is OURS:
                timings.append(server_timing(response.headers.get("Server-Timing", "")))
            items = endpoint.parse(response.json())
            assert len(items) == N, len(items)
            for status, body in items:
                _check(path, status, body)
        return batch

    ways = {"separate": separate} | {e.name: batch_to(e) for e in endpoints}
    repeats, budget = (3, 6.0) if latency else (15, 6.0)
    warmup = 1 if latency else WARMUP
    try:
        seconds = interleaved(ways, repeats, budget, warmup=warmup, collect=False)
    finally:
        session.close()
    timed_rounds = timings[warmup:]
    if timed_rounds:  # our batch was one of the ways
        seconds["ours.view"] = statistics.median(view for view, _ in timed_rounds)
        seconds["ours.subs"] = statistics.median(subs for _, subs in timed_rounds)
    return seconds


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
                        "ours": ours, "peer": other, "goal": goal,
                        "view": seconds["ours.view"], "subs": seconds["ours.subs"]})
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
    print_breakdown([row for row in out if not row["latency"]])
    return out


def print_breakdown(loopback: list[dict]) -> None:
    """Where our batch of 50 goes on loopback, from the server's ``Server-Timing`` header."""
    rows = []
    for row in loopback:
        get = row["separate"] / N
        around = row["ours"] - row["view"]  # HTTP, client, server and middleware around it
        own = row["view"] - row["subs"]  # parse, build, serialize, headers
        rows.append([row["path"], get * 1000, row["ours"] * 1000, around * 1000,
                     row["subs"] * 1000, row["subs"] / N * 1e6, own * 1000,
                     row["separate"] / (row["ours"] - own), live_ceiling(row)])
    print(f"\nwhere our batch of {N} goes (medians; view and sub-requests from the server's "
          "Server-Timing header):")
    print(table(["view", "1 GET ms", "batch ms", "around the view ms", "sub-requests ms",
                 "µs each", "batch's own ms", "x without own", "x as 1 GET + subs"], rows))
    print("around the view: the batch's round trip minus its view (HTTP, the client, gunicorn, "
          "the middleware);\nsub-requests: the 50 items as they ran (the request built, "
          "Django's handler with all the\nmiddleware, the answer captured); the batch's own "
          "work: the view minus its sub-requests\n(parse, build, run loop, serialize, "
          "headers). x without own: 50 GETs / (batch - own);\nx as 1 GET + subs: 50 GETs / "
          "(one GET's round trip + the sub-requests).")
