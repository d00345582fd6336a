"""Benchmark (a): one sub-request in a batch of 100, against the same GET through Django's
handler; in-process (no network, no server), DEBUG off, the project's middleware chain.

Three ways, run in turn round after round (``bench.common.interleaved``: one warm-up round,
then up to 25 rounds or 8 s per view), the median of each divided by N:

- handler: N times a ``RequestFactory`` GET (a ``WSGIRequest``, as a WSGI server builds one)
  through ``BaseHandler.get_response()`` of a handler whose middleware was loaded once: what
  the same request costs sent on its own (Django's test ``ClientHandler`` without signals);
- batch: one ``handle_batch_requests`` call with a ``RequestFactory`` POST of N items
  (``MAX_LIMIT`` raised to N by ``override_settings``), the answer JSON-encoded and read back;
- peer: the same N items to drf-batch-requests' ``BatchView`` (where it is installed),
  its ``Response`` rendered.

Views: ``/views/`` (a plain function view) and ``/api/me/`` (a DRF ``APIView``, token
authentication: one DB query a request; the token is sent on the batch request and each
item inherits it, as a client's credentials). The goal of the issue is batch / handler
<= 1.10; ``own µs`` is (batch - handler) per item: the batch machinery's own work.
"""

from __future__ import annotations

import json
from importlib.util import find_spec

from bench.common import bench_token, interleaved, section, setup_django, table, verdict

N = 100
REPEATS = 25
BUDGET = 8.0  # seconds per view at most (after one warm-up round)
GOAL = "<= 1.10"
PEER_GOAL = ">= 4"
# (label, path, token authentication)
VIEWS = [("plain function view", "/views/", False),
         ("DRF APIView, token auth", "/api/me/", True)]


def _check(path: str, status: int, body: bytes | str) -> None:
    assert status == 200, (path, status, body[:300])
    if path == "/api/me/":
        assert json.loads(body)["username"] == "bench", body[:300]


def measure(path: str, token: str | None, n: int = N, peer: bool = True) -> dict[str, float]:
    """Median µs per sub-request for handler, batch (and peer) on ``path``."""
    from django.core.handlers.base import BaseHandler
    from django.test import RequestFactory, override_settings

    from batch_requests.views import handle_batch_requests

    factory = RequestFactory()
    extra = {"HTTP_AUTHORIZATION": f"Token {token}"} if token else {}
    handler = BaseHandler()
    handler.load_middleware()

    def through_handler() -> None:
        for _ in range(n):
            response = handler.get_response(factory.get(path, **extra))
            _check(path, response.status_code, response.content)

    payload = json.dumps({"batch": [{"method": "GET", "url": path}] * n})

    def batch() -> None:
        request = factory.post("/api/v1/batch/", payload, content_type="application/json",
                               **extra)
        items = json.loads(handle_batch_requests(request).content)["batch"]
        assert len(items) == n, len(items)
        for item in items:
            _check(path, item["status_code"], item["body"])

    ways = {"handler": through_handler, "batch": batch}
    if peer and find_spec("drf_batch_requests") is not None:
        from drf_batch_requests.views import BatchView

        peer_view = BatchView.as_view()
        peer_payload = json.dumps({"batch": [{"method": "GET", "relative_url": path}] * n})

        def peer_batch() -> None:
            request = factory.post("/peer/batch/", peer_payload,
                                   content_type="application/json", **extra)
            response = peer_view(request)
            response.render()
            items = json.loads(response.content)
            assert len(items) == n, len(items)
            for item in items:
                _check(path, item["code"], item["body"])

        ways["peer"] = peer_batch

    with override_settings(BATCH_REQUESTS={"MAX_LIMIT": n}):
        results = interleaved(ways, REPEATS, BUDGET)
    return {key: seconds / n * 1e6 for key, seconds in results.items()}


def run() -> list[dict[str, object]]:
    """Print the table of (a); return one row a view (label, path, µs figures, ratios)."""
    setup_django()
    token = bench_token()
    section(f"(a) One sub-request in a batch of {N} vs the same GET through "
            f"BaseHandler.get_response, in-process, median of up to {REPEATS} interleaved "
            "rounds")
    rows, out = [], []
    for label, path, auth in VIEWS:
        us = measure(path, token if auth else None)
        ratio = us["batch"] / us["handler"]
        peer = us.get("peer")
        out.append({"label": label, "path": path, **us, "own": us["batch"] - us["handler"],
                    "ratio": ratio, "peer_ratio": peer / us["batch"] if peer else None})
        rows.append([f"{path} ({label})", us["handler"], us["batch"],
                     us["batch"] - us["handler"], ratio, GOAL, verdict(ratio, GOAL),
                     peer if peer else "-", peer / us["batch"] if peer else "-"])
    print(table(["view", "handler µs", "batch µs", "own µs", "batch/handler", "goal",
                 "met", "peer µs", "peer/ours"], rows))
    print("own µs: (batch - handler) per item, the batch machinery's own work. peer: "
          "drf-batch-requests 0.9.5,\nthe same items in-process (it loads the middleware "
          "again for every item).")
    return out


if __name__ == "__main__":
    run()
