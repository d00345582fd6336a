"""Attacks on the server through the batch endpoint (issue 11, items 1, 3, 4 and 5).

1. Nesting: a batch item must never reach the batch endpoint, however its url is spelled
   (percent-encoded, absolute) or filled in at run time by a reference; nested batches
   on a shared thread pool must not deadlock it.
3. Slow streams: a sub-response that trickles in is cut at the batch's time budget; the
   stream is closed and the server's threads are free again.
4. Shared-pool starvation: one client's batch of long requests cannot take every pool
   worker; another client's small batch still answers while they run.
5. Process pool: one client's short timeout does not kill the worker processes that run
   another client's items.

The nesting payloads of item 1 run through Django's test client; the rest over real HTTP
against gunicorn or uvicorn on 127.0.0.1 (see tests/live.py). One migrated database is
prepared per module and copied for each server. Every wait is bounded; every load loop
stops by itself; assertions are about states, never durations.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from test_project.articles.models import Article
from tests.helpers import post_batch
from tests.live import LiveSite, free_port, prepare_db, running, server_command

BATCH = "/api/v1/batch/"
STREAMS = "/attack/streams/"
PING = {"method": "get", "url": "/api/ping/"}
NUM_WORKERS = 4

# --------------------------------------------------------------------------------------
# Servers: one migrated database per module, copied for each server.
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A migrated, seeded SQLite file and its users' tokens (prepare_db takes ~10 s)."""
    db_path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    tokens = prepare_db(db_path, _env(db_path, {}))
    return db_path, tokens


def _env(db_path: Path, settings_env: dict[str, str]) -> dict[str, str]:
    # BATCH_* of the caller's environment would change the executor under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCH_")}
    return {**env, "DJANGO_SETTINGS_MODULE": "test_project.settings",
            "DJANGO_DB_NAME": str(db_path), "DJANGO_DEBUG": "0", **settings_env}


def gunicorn_command(port: int, threads: int) -> list[str]:
    """live.server_command("gunicorn") with the thread count of the test's choosing."""
    return [sys.executable, "-m", "gunicorn", "test_project.wsgi:application",
            "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread", "--workers", "1",
            "--threads", str(threads), "--graceful-timeout", "2", "--log-level", "warning"]


@contextlib.contextmanager
def serve(template: tuple[Path, dict[str, str]], tmp_dir: Path, kind: str,
          settings_env: dict[str, str], threads: int = 8) -> Iterator[LiveSite]:
    """As tests.live.serve, on a copy of ``template``, with ``threads`` gunicorn threads.

    In-flight requests get 2 s to finish at shutdown (a test that failed may leave some).
    """
    db_path = tmp_dir / "live.sqlite3"
    shutil.copyfile(template[0], db_path)
    port = free_port()
    command = (gunicorn_command(port, threads) if kind == "gunicorn"
               else server_command(kind, port, ["--timeout-graceful-shutdown", "2"]))
    with running(command, port, _env(db_path, settings_env)):
        yield LiveSite(f"http://127.0.0.1:{port}", template[1], db_path)


@pytest.fixture(scope="module")
def nesting_site(template_db, tmp_path_factory) -> Iterator[LiveSite]:
    """gunicorn, 8 threads, thread executor with 4 workers (its own, for item 1 only)."""
    env = {"BATCH_EXECUTOR": "thread", "BATCH_NUM_WORKERS": str(NUM_WORKERS)}
    with serve(template_db, tmp_path_factory.mktemp("nesting"), "gunicorn", env) as site:
        yield site


@pytest.fixture(scope="module")
def sequential_site(template_db, tmp_path_factory) -> Iterator[LiveSite]:
    """gunicorn gthread, 1 worker, 4 threads; default settings (sequential executor)."""
    with serve(template_db, tmp_path_factory.mktemp("sequential"), "gunicorn", {},
               threads=4) as site:
        yield site


@pytest.fixture(scope="module")
def thread_site(template_db, tmp_path_factory) -> Iterator[LiveSite]:
    """gunicorn, 1 worker, 8 threads, thread executor with 4 workers."""
    env = {"BATCH_EXECUTOR": "thread", "BATCH_NUM_WORKERS": str(NUM_WORKERS)}
    with serve(template_db, tmp_path_factory.mktemp("thread"), "gunicorn", env) as site:
        yield site


@pytest.fixture(scope="module")
def async_site(template_db, tmp_path_factory) -> Iterator[LiveSite]:
    """uvicorn, async executor with 4 workers."""
    env = {"BATCH_EXECUTOR": "async", "BATCH_NUM_WORKERS": str(NUM_WORKERS)}
    with serve(template_db, tmp_path_factory.mktemp("async"), "uvicorn", env) as site:
        yield site


@pytest.fixture(scope="module")
def process_site(template_db, tmp_path_factory) -> Iterator[LiveSite]:
    """gunicorn, 1 worker, 8 threads, process executor with 2 worker processes."""
    env = {"BATCH_EXECUTOR": "process", "BATCH_NUM_WORKERS": "2"}
    with serve(template_db, tmp_path_factory.mktemp("process"), "gunicorn", env) as site:
        yield site


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _auth(site: LiveSite, user: str) -> dict[str, str]:
    return {"Authorization": f"Token {site.tokens[user]}"}


def _statuses(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["status_code"] for item in response.json()["batch"]]


def _is_batch_document(body: str) -> bool:
    """Whether an item's body is the answer of a (nested) batch endpoint that ran items."""
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and "batch" in data


def wait_for_state(http: httpx.Client, site: LiveSite, condition: Callable[[dict], bool],
                   deadline: float = 30.0, every: float = 0.05) -> dict[str, int]:
    """Poll /attack/streams/ until ``condition`` holds or ``deadline`` s pass; the last state.

    A bounded wait-for-condition: the caller asserts the condition on the state returned.
    """
    end = time.monotonic() + deadline
    while True:
        state = http.get(f"{site.url}{STREAMS}").json()
        if condition(state) or time.monotonic() >= end:
            return state
        time.sleep(every)


# --------------------------------------------------------------------------------------
# 1. Nesting
# --------------------------------------------------------------------------------------

# Each one is the batch endpoint once the sub-request's PATH_INFO is decoded.
ENCODED_BATCH_URLS = [
    "/api/v1/%62atch/",
    "/api/v1%2Fbatch/",
    "/%61pi/v1/batch/",
    "/api/v1/batch/",
    "http://testserver/api/v1/%62atch/",
    "http://testserver/%61pi/v1/batch/",
]
NESTED_TITLE = "written by a nested batch"


def _nested_document(title: str = NESTED_TITLE) -> dict[str, Any]:
    """A batch document that writes, so a nested run leaves a trace in the database."""
    return {"batch": [{"method": "post", "url": "/api/articles/", "body": {"title": title}}]}


@pytest.mark.parametrize("url", ENCODED_BATCH_URLS)
def test_encoded_batch_url_is_refused_before_anything_runs(client, alice_token: str,
                                                           url: str) -> None:
    """The whole batch is a 400 naming item 1's url; not even item 0's write ran."""
    auth = {"Authorization": f"Token {alice_token}"}
    response = post_batch(client, [
        {"method": "post", "url": "/api/articles/", "headers": auth,
         "body": {"title": "outer write"}},
        {"method": "post", "url": url, "headers": auth, "body": _nested_document()},
    ])

    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "url")], errors
    assert list(Article.objects.values_list("title", flat=True)) == []


# Item 0 answers JSON that holds the batch endpoint's path: whole, without its leading "/",
# and as its last segment. A reference's value is percent-encoded into the url ("/" too), so
# only the decoded PATH_INFO of the item is the batch endpoint.
REFERENCE_SOURCE = {"name": "first", "method": "get", "url": "/views/whoami/?tail=batch%2F"
                    "&rest=api%2Fv1%2Fbatch%2F&whole=%2Fapi%2Fv1%2Fbatch%2F"}
TAIL = "{result=first:$.query.tail[0]}"  # "batch/"
REST = "{result=first:$.query.rest[0]}"  # "api/v1/batch/"
WHOLE = "{result=first:$.query.whole[0]}"  # "/api/v1/batch/"
RUNTIME_NESTING = {
    "get-tail": ("get", f"/api/v1/{TAIL}"),
    "get-rest": ("get", f"/{REST}"),
    "post-tail": ("post", f"/api/v1/{TAIL}"),
    "post-rest": ("post", f"/{REST}"),
    "post-absolute-tail": ("post", f"http://testserver/api/v1/{TAIL}"),
}


@pytest.mark.parametrize(("method", "url"), list(RUNTIME_NESTING.values()),
                         ids=list(RUNTIME_NESTING))
def test_batch_url_from_a_reference_is_refused_as_an_item(client, alice_token: str,
                                                          method: str, url: str) -> None:
    """A url that only becomes the batch endpoint at run time: the item is a 400/424."""
    item: dict[str, Any] = {"method": method, "url": url,
                            "headers": {"Authorization": f"Token {alice_token}"}}
    if method == "post":
        item["body"] = _nested_document()
    response = post_batch(client, [REFERENCE_SOURCE, item])

    assert response.status_code == 200, response.content
    source, nested = response.json()["batch"]
    assert source["status_code"] == 200, source
    assert nested["status_code"] in (400, 424), nested
    assert not _is_batch_document(nested["body"]), nested
    assert not Article.objects.filter(title=NESTED_TITLE).exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_whole_url_from_a_reference_never_nests(client, alice_token: str, method: str) -> None:
    """A url that is nothing but a reference: refused up front (400), or as an item (4xx)."""
    item: dict[str, Any] = {"method": method, "url": WHOLE,
                            "headers": {"Authorization": f"Token {alice_token}"}}
    if method == "post":
        item["body"] = _nested_document()
    response = post_batch(client, [REFERENCE_SOURCE, item])

    if response.status_code == 400:
        errors = response.json()["errors"]
        assert [(e["index"], e["field"]) for e in errors] == [(1, "url")], errors
    else:
        assert response.status_code == 200, response.content
        nested = response.json()["batch"][1]
        assert nested["status_code"] in (400, 424), nested
        assert not _is_batch_document(nested["body"]), nested
    assert not Article.objects.filter(title=NESTED_TITLE).exists()


def _nesting_batch(n: int) -> dict[str, Any]:
    """Dependency mode: item 0 gives the path, items 1.. try to nest through references."""
    sleeps = {"batch": [{"method": "get", "url": f"/views/sleep/?seconds=0.05&n={n}.{i}"}
                        for i in range(NUM_WORKERS)]}
    return {"timeout": 10, "batch": [
        REFERENCE_SOURCE,
        {"method": "post", "url": f"/api/v1/{TAIL}", "body": sleeps},
        {"method": "get", "url": f"/api/v1/{TAIL}", "depends_on": "first"},
        {"method": "post", "url": f"/{REST}", "body": sleeps},
        {"method": "post", "url": f"http://127.0.0.1/api/v1/{TAIL}", "body": sleeps},
    ]}


@pytest.mark.server
def test_nesting_through_references_does_not_deadlock_the_thread_pool(
        nesting_site: LiveSite) -> None:
    """12 concurrent batches try to nest; each item is refused; the pool still serves."""
    site = nesting_site

    def send(n: int) -> list[str]:
        with httpx.Client(timeout=60) as http:
            response = http.post(f"{site.url}{BATCH}", json=_nesting_batch(n))
        if response.status_code != 200:
            return [f"batch {n} answered {response.status_code}: {response.text[:200]}"]
        problems = []
        source, *nesting = response.json()["batch"]
        if source["status_code"] != 200:
            problems.append(f"batch {n} item 0 answered {source['status_code']}")
        for index, item in enumerate(nesting, 1):
            if item["status_code"] not in (400, 424) or _is_batch_document(item["body"]):
                problems.append(f"batch {n} item {index} answered {item['status_code']}: "
                                f"{item['body'][:120]}")
        return problems

    with ThreadPoolExecutor(12) as pool:
        problems = [p for found in pool.map(send, range(12)) for p in found]
    with httpx.Client(timeout=20) as http:
        try:
            plain = http.post(f"{site.url}{BATCH}", json={"batch": [PING, PING]})
            if plain.status_code != 200 or _statuses(plain) != [200, 200]:
                problems.append(f"plain batch answered {plain.status_code}: {plain.text}")
        except httpx.TimeoutException as exc:
            problems.append(f"plain batch of 2 GETs got no answer (pool deadlocked?): {exc!r}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------
# 3. Slow streams
# --------------------------------------------------------------------------------------

SLOW_STREAM = {"method": "get", "url": "/attack/slow-stream/?interval=0.5&limit=120"}


@pytest.mark.server
def test_slow_streams_are_cut_at_the_batch_timeout(sequential_site: LiveSite) -> None:
    """4 batches of one slow stream on 4 server threads: each is a 504, the streams close."""
    site = sequential_site

    def send(_: int) -> httpx.Response:
        # An unfixed server reads the stream for 120 s: the client gives up at 60 s.
        with httpx.Client(timeout=60) as http:
            return http.post(f"{site.url}{BATCH}", json={"batch": [SLOW_STREAM], "timeout": 1})

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(send, range(4)))

    assert [_statuses(r) for r in responses] == [[504]] * 4
    with httpx.Client(timeout=10) as http:
        state = wait_for_state(http, site, lambda s: s["streams_open"] == 0)
        assert state["streams_open"] == 0, state
        assert http.get(f"{site.url}/api/ping/").status_code == 200


# --------------------------------------------------------------------------------------
# 4. Shared-pool starvation
# --------------------------------------------------------------------------------------


@pytest.mark.server
@pytest.mark.parametrize("site_fixture", ["thread_site", "async_site"],
                         ids=["gunicorn-thread", "uvicorn-async"])
def test_long_requests_of_one_client_leave_workers_for_another(request,
                                                               site_fixture: str) -> None:
    """A's 20 held requests time out; B's 2 pings answer 200 while A's holds still wait."""
    site: LiveSite = request.getfixturevalue(site_fixture)
    name = f"starve-{uuid.uuid4().hex}"
    hold = {"method": "get", "url": f"/attack/hold/?name={name}&seconds=30"}
    with httpx.Client(base_url=site.url, timeout=20) as http:
        try:
            a = _send(http, "A's batch of 20 holds", "POST", BATCH, headers=_auth(site, "user0"),
                      json={"batch": [hold] * 20, "timeout": 0.5})
            assert _statuses(a) == [504] * 20
            after_a = _send(http, "streams after A", "GET", STREAMS).json()
            # Some of A's items started and are still held; not every pool worker is theirs.
            assert 0 < after_a["held"] < NUM_WORKERS, after_a

            b = _send(http, "B's batch of 2 pings (while A's holds wait)", "POST", BATCH,
                      headers=_auth(site, "user1"), json={"batch": [PING, PING]})
            assert _statuses(b) == [200, 200]
            after_b = _send(http, "streams after B", "GET", STREAMS).json()
            assert after_b["held"] > 0, after_b  # B did not wait for A's holds to end
        finally:
            _release(site, name)
        state = wait_for_state(http, site, lambda s: s["held"] == 0)
        assert state["held"] == 0, state


def _send(http: httpx.Client, what: str, method: str, url: str, **kwargs: Any
          ) -> httpx.Response:
    """``http.request``; a client timeout fails the test saying which request hung."""
    try:
        return http.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        pytest.fail(f"{what}: no answer within the client's timeout ({exc!r})")


def _release(site: LiveSite, name: str) -> None:
    """Release the holds on ``name`` (never masks the test's own failure)."""
    with contextlib.suppress(httpx.HTTPError), httpx.Client(timeout=10) as http:
        http.get(f"{site.url}/attack/release/?name={name}")


# --------------------------------------------------------------------------------------
# 5. Process pool
# --------------------------------------------------------------------------------------


@pytest.mark.server
def test_short_timeout_of_one_client_spares_another_clients_processes(
        process_site: LiveSite) -> None:
    """B's 0.05 s budget runs out while A's items run in the pool: A's items still answer."""
    site = process_site
    url = f"{site.url}{BATCH}"
    batch_a = {"batch": [{"method": "get", "url": "/views/sleep/?seconds=2"}] * 2}
    batch_b = {"batch": [{"method": "get", "url": "/views/sleep/?seconds=1"}], "timeout": 0.05}
    rounds = []
    with httpx.Client(timeout=60) as http_a, httpx.Client(timeout=60) as http_b, \
            ThreadPoolExecutor(1) as background:
        # Start the worker processes first, so that A's items are in the pool soon after A
        # is sent.
        assert _statuses(http_a.post(url, json={"batch": [PING]})) == [200]
        for _ in range(3):
            sent = threading.Event()

            def trace(event: str, info: dict, sent: threading.Event = sent) -> None:
                if event == "http11.send_request_body.complete":
                    sent.set()

            a_future = background.submit(http_a.post, url, json=batch_a,
                                         extensions={"trace": trace})
            assert sent.wait(30), "A's request was not sent"
            b = http_b.post(url, json=batch_b)
            rounds.append((_statuses(a_future.result()), _statuses(b)))

    assert [a for a, _b in rounds] == [[200, 200]] * 3, rounds
    assert all(b[0] in (200, 504) for _a, b in rounds), rounds
