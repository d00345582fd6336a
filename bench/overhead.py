"""Benchmark 1: dispatch overhead per sub-request, in-process (no network, no server).

For N sub-requests to one view, three ways, run in turn for up to 15 rounds, the median of
each taken:

- bare: build a ``RequestFactory`` GET and call the view function directly (what earlier
  batch apps did), rendering the response as a server would;
- handler: the same ``WSGIRequest`` through ``BaseHandler.get_response()`` with the project's
  middleware loaded once (Django's test ``ClientHandler`` without its signals): the path a
  direct request takes;
- batch: one ``handle_batch_requests`` call with a ``RequestFactory`` POST of N items,
  ``MAX_LIMIT`` and ``MAX_REFERENCES`` raised to N: validation, environ building, the
  handler path per item and the JSON serialization of the answers;
- refs: the same batch in graph mode, each item holding a ``{result=...}`` reference to the
  first: what dependencies cost per item.

The batch runs every item through the middleware chain on purpose (see README "Equivalence"),
so its ratio against the bare view is mostly the middleware's cost; against the handler path
it is the batch machinery's own cost.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

from bench.common import section, setup_django, table, timed

N = 200
REPEATS = 15
BUDGET = 10.0  # seconds per view at most (after one warm-up round)
VIEWS = ["/api/ping/", "/views/"]


def measure(path: str, n: int = N) -> dict[str, float]:
    """Median µs per sub-request for bare, handler and batch on ``path``."""
    from django.core.handlers.base import BaseHandler
    from django.test import RequestFactory, override_settings
    from django.urls import resolve

    from batch_requests.views import handle_batch_requests

    factory = RequestFactory()
    view = resolve(path).func
    handler = BaseHandler()
    handler.load_middleware()

    def bare() -> None:
        for _ in range(n):
            response = view(factory.get(path))
            if hasattr(response, "render"):
                response.render()
            assert response.status_code == 200, response.status_code

    def through_handler() -> None:
        for _ in range(n):
            response = handler.get_response(factory.get(path))
            assert response.status_code == 200, response.status_code

    payload = json.dumps({"batch": [{"method": "GET", "url": path}] * n})

    def batch() -> None:
        request = factory.post("/api/v1/batch/", payload, content_type="application/json")
        response = handle_batch_requests(request)
        items = json.loads(response.content)["batch"]
        assert len(items) == n and all(i["status_code"] == 200 for i in items), items[:1]

    # The same batch in graph mode: item 0 is named, every other item holds a reference to
    # it, so each is prepared, has its reference filled in and its sub-request built again.
    refs = json.dumps({"batch": [{"method": "GET", "url": "/api/ping/", "name": "p"}] + [
        {"method": "GET", "url": path + "?v={result=p:$.pong}"}] * (n - 1)})

    def batch_refs() -> None:
        request = factory.post("/api/v1/batch/", refs, content_type="application/json")
        items = json.loads(handle_batch_requests(request).content)["batch"]
        assert len(items) == n and all(i["status_code"] == 200 for i in items), items[:2]

    ways = {"bare": bare, "handler": through_handler, "batch": batch, "refs": batch_refs}
    with override_settings(BATCH_REQUESTS={"MAX_LIMIT": n, "MAX_REFERENCES": n}):
        results = interleaved(ways, REPEATS, BUDGET)
    return {key: seconds / n * 1e6 for key, seconds in results.items()}


def interleaved(ways: dict[str, Callable[[], None]], repeats: int,
                budget: float) -> dict[str, float]:
    """Median seconds of each way, run in turn round after round (after one warm-up round),
    so that a burst of load from elsewhere on the machine hits all of them alike."""
    for func in ways.values():
        func()
    samples: dict[str, list[float]] = {name: [] for name in ways}
    deadline = time.monotonic() + budget
    for _ in range(repeats):
        for name, func in ways.items():
            samples[name].append(timed(func))
        if time.monotonic() > deadline:
            break
    return {name: statistics.median(values) for name, values in samples.items()}


def run() -> list[list[object]]:
    setup_django()
    section(f"1. Dispatch overhead, in-process, N={N} sub-requests, median of up to "
            f"{REPEATS} runs")
    rows = []
    for path in VIEWS:
        us = measure(path)
        rows.append([path, us["bare"], us["handler"], us["batch"],
                     us["batch"] - us["handler"], us["refs"] - us["batch"],
                     us["batch"] / us["bare"], us["batch"] / us["handler"]])
    print(table(["view", "bare µs", "handler µs", "batch µs", "batch-handler µs",
                 "reference µs", "batch/bare", "batch/handler"], rows))
    print("reference µs: extra cost per item when each item holds a {result=...} reference "
          "(graph mode).")
    print("target in the issue: batch/bare <= 1.15. Not met by design: every sub-request "
          "passes the\nproject's middleware, as a direct request does (batch/handler is the "
          "batch's own cost).")
    return rows


if __name__ == "__main__":
    run()
