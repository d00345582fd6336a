"""Attacks of a fresh review that found holes (each test fails until its hole is fixed).

1. References past the limits of a direct request: a ``{result=...}`` reference is filled in
   after the item's limits were checked, so repeating it grows a header past
   ``MAX_HEADER_SIZE`` (a direct request gets 431 from the server) and a url past anything a
   direct request could carry (gunicorn refuses a request line over 4094 bytes with 414).
   Against gunicorn, a 5 KB batch with ``"timeout": 1`` built a 30 MB path this way: 15 s
   of server time and 2.3 GB of memory for a 404.
2. A multipart batch whose ``batch`` part is a file part: Django's
   ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bounds form fields only, so the batch document skips the
   413 that the same document gets as a JSON body or as a form field.
3. Item paths kept after the batch: an item's url goes through ``urllib.parse.urlsplit``
   (an LRU cache of 128 in Python 3.11+) and the nesting check caches its answer per path
   (``_is_batch_endpoint``, an LRU of 1024), so long item paths (2.5 MB each, without any
   reference) stay in memory after their batch has answered; a direct request's path is
   never kept.
4. Atomic batches and the database lock: an atomic batch's transaction stays open while an
   item runs past the batch's own ``timeout``, so on SQLite another client's direct write
   waits for the lock and fails with ``database is locked`` (500).

1 to 3 run through Django's test client; 4 over real HTTP against gunicorn on 127.0.0.1
(see tests/live.py). Every wait is bounded; the held request is released at the end.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import sys
import threading
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from batch_requests.conf import batch_settings
from tests.helpers import post_batch
from tests.live import LiveSite, free_port, prepare_db, running

BATCH = "/api/v1/batch/"

# --------------------------------------------------------------------------------------
# 1. References past the limits of a direct request
# --------------------------------------------------------------------------------------


def _source(text: str) -> dict[str, Any]:
    """An item named "a" whose JSON answer holds ``text`` at ``$.body``.

    (Set-up fix: the value used to travel in the source's own url, ``/views/whoami/?q=``,
    and a 200,000-character url is now refused by MAX_URL_LENGTH before anything runs, as a
    direct request's would be by the server. A body carries it as the attack needs.)
    """
    return {"name": "a", "method": "post", "url": "/views/echo/", "body": text,
            "headers": {"Content-Type": "text/plain"}}


REF = "{result=a:$.body}"


def test_a_reference_cannot_grow_a_header_past_max_header_size(client) -> None:
    """10 references to a 1000-character value: a 10,000-byte header, over 8190."""
    response = post_batch(client, [
        _source("a" * 1000),
        {"method": "get", "url": "/views/whoami/", "headers": {"X-Custom": REF * 10}},
    ])

    assert response.status_code == 200, response.content
    source, item = response.json()["batch"]
    assert source["status_code"] == 200, source
    seen = json.loads(item["body"]).get("x_custom") if item["status_code"] == 200 else None
    assert item["status_code"] in (400, 424), (
        f"the view ran with a {len(seen or '')}-byte X-Custom header; MAX_HEADER_SIZE is "
        f"{batch_settings.MAX_HEADER_SIZE}")


def test_references_cannot_build_a_url_larger_than_the_batch_request(client) -> None:
    """15 references to a 200 KB value: a 3 MB url, larger than the whole batch request
    may be (DATA_UPLOAD_MAX_MEMORY_SIZE), sent by a batch of 200 KB."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = post_batch(client, [
        _source("a" * 200_000),
        {"method": "get", "url": "/views/whoami/?q=" + REF * 15},
    ])

    assert response.status_code == 200, response.content
    source, item = response.json()["batch"]
    assert source["status_code"] == 200, source
    seen = json.loads(item["body"])["full_path"] if item["status_code"] == 200 else ""
    assert item["status_code"] in (400, 414, 424), (
        f"the view ran with a url of {len(seen)} characters; the batch request itself may "
        f"be at most {limit} bytes")


# --------------------------------------------------------------------------------------
# 2. The batch document as a file part
# --------------------------------------------------------------------------------------


def _large_document() -> bytes:
    """A valid batch document of about 3 MB (each item's body under 2.5 MB on its own)."""
    body = "a" * 300_000
    return json.dumps({"batch": [{"method": "post", "url": "/views/echo/", "body": body,
                                  "headers": {"Content-Type": "text/plain"}}] * 10}).encode()


def test_a_batch_document_over_the_body_limit_is_a_413_as_json_and_as_a_field(client) -> None:
    """The reference behaviour that the next test expects of a file part too."""
    raw = _large_document()
    assert len(raw) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    as_json = client.post(BATCH, raw, content_type="application/json")
    as_field = client.post(BATCH, {"batch": raw.decode()})
    assert (as_json.status_code, as_field.status_code) == (413, 413)


def test_a_batch_document_sent_as_a_file_part_meets_the_body_limit(client) -> None:
    """The same 3 MB document in a file part named "batch": still a 413, nothing runs."""
    raw = _large_document()
    response = client.post(BATCH, {"batch": SimpleUploadedFile("batch.json", raw,
                                                               "application/json")})

    assert response.status_code == 413, (
        f"a {len(raw)}-byte batch document (DATA_UPLOAD_MAX_MEMORY_SIZE is "
        f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE}) answered {response.status_code}")


# --------------------------------------------------------------------------------------
# 3. Item paths kept after the batch
# --------------------------------------------------------------------------------------


def test_long_item_paths_are_not_kept_after_their_batch(client, settings) -> None:
    """Five batches of one 1 MB path each (a 404): no megabytes stay allocated after them."""
    # Set-up fix: MAX_URL_LENGTH (8192 by default) refuses such a url with a 400 before it
    # reaches any cache; raised here so that the paths do reach them.
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "MAX_URL_LENGTH": 2_000_000}
    post_batch(client, [{"method": "get", "url": "/warm-up-404/"}])  # first-use allocations
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(5):
            response = post_batch(client, [{"method": "get",
                                            "url": f"/long-{n}/" + "a" * 1_000_000}])
            assert response.status_code == 200, response.content[:300]
            assert response.json()["batch"][0]["status_code"] == 404
            del response
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 1_000_000, f"{kept} bytes are still allocated after the five batches"


# --------------------------------------------------------------------------------------
# 1-3, one limit at a time: MAX_URL_LENGTH, the filled-in item's limits, the running bound
# --------------------------------------------------------------------------------------


def _refusal(response) -> dict:
    assert response.status_code == 400, response.content[:500]
    errors = response.json()["errors"]
    assert len(errors) == 1, errors
    return errors[0]


def _error_of(item: dict) -> str:
    assert item["status_code"] == 424, item
    return json.loads(item["body"])["error"]


@pytest.mark.django_db
def test_a_url_over_max_url_length_is_a_400_before_anything_runs(client, settings) -> None:
    from django.contrib.auth.models import User

    from test_project.articles.models import Article

    user = User.objects.create_user("url-limit", password="pw")
    client.force_login(user)
    url = "/views/whoami/?q=" + "a" * (batch_settings.MAX_URL_LENGTH - 16)
    assert len(url) == batch_settings.MAX_URL_LENGTH + 1
    items = [{"method": "post", "url": "/api/articles/", "body": {"title": "must not run"}},
             {"method": "get", "url": url}]
    error = _refusal(post_batch(client, items))
    assert (error["index"], error["field"]) == (1, "url")
    assert "MAX_URL_LENGTH" in error["message"] and "8193 characters" in error["message"]
    assert "a" * 100 not in error["message"]  # an excerpt only
    assert not Article.objects.exists()
    # At the limit it runs.
    item = post_batch(client, [{"method": "get", "url": url[:-1]}]).json()["batch"][0]
    assert item["status_code"] == 200
    # The setting is live.
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "MAX_URL_LENGTH": 100}
    error = _refusal(post_batch(client, [{"method": "get", "url": "/views/whoami/"},
                                         {"method": "get", "url": "/" + "b" * 100}]))
    assert (error["index"], error["field"]) == (1, "url") and "limit is 100" in error["message"]


def test_max_url_length_counts_the_url_as_it_travels_percent_encoded(client) -> None:
    """700 emoji are 700 characters as written, 8400 once percent-encoded (12 each)."""
    error = _refusal(post_batch(client, [{"method": "get",
                                          "url": "/views/whoami/?q=" + "\U0001F600" * 700}]))
    assert error["field"] == "url"
    assert "8417 characters long once percent-encoded" in error["message"]


def test_a_reference_value_is_counted_percent_encoded_in_a_url(client) -> None:
    items = post_batch(client, [_source("\U0001F600" * 700),
                                {"method": "get", "url": "/views/whoami/?q=" + REF}]).json()
    message = _error_of(items["batch"][1])
    assert message.startswith("Not run: after its references are filled in, url")
    assert "MAX_URL_LENGTH" in message
    # Just under the limit, it runs with the value whole.
    items = post_batch(client, [_source("\U0001F600" * 600),
                                {"method": "get", "url": "/views/whoami/?q=" + REF}]).json()
    assert json.loads(items["batch"][1]["body"])["query"]["q"] == ["\U0001F600" * 600]


def test_a_filled_in_header_is_checked_whole(client) -> None:
    """The values add 1000 bytes to a header of 7500 as sent: 8508 in all, over 8190."""
    items = post_batch(client, [_source("a" * 1000), {
        "method": "get", "url": "/views/whoami/", "headers": {"X-Custom": "b" * 7500 + REF}}])
    message = _error_of(items.json()["batch"][1])
    assert "header 'X-Custom' is 8508 bytes" in message and "MAX_HEADER_SIZE" in message


def test_a_filled_in_body_meets_data_upload_max_memory_size(client, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    for body in (REF * 5, {"v": [REF] * 5}):
        items = post_batch(client, [_source("a" * 3000), {
            "method": "post", "url": "/views/echo/", "body": body,
            "headers": {"Content-Type": "text/plain"}}]).json()["batch"]
        assert items[0]["status_code"] == 200
        message = _error_of(items[1])
        assert "body" in message and "DATA_UPLOAD_MAX_MEMORY_SIZE" in message
    # JSON bodies are counted as sent: "\u00e9" is 6 bytes of the body.
    items = post_batch(client, [_source("\u00e9" * 1000), {
        "method": "post", "url": "/views/echo/", "body": {"v": [REF] * 2}}]).json()["batch"]
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in _error_of(items[1])
    items = post_batch(client, [_source("\u00e9" * 1000), {
        "method": "post", "url": "/views/echo/", "body": {"v": [REF]}}]).json()["batch"]
    assert items[1]["status_code"] == 200, items[1]


def test_filling_in_stops_at_the_bound_before_the_value_is_built(client, settings) -> None:
    """With no body limit, the values may still add only BODY_FILL_FALLBACK bytes to a body:
    50 references to a 1 MB value stop after the third, and the 50 MB body is never built."""
    from batch_requests.references import BODY_FILL_FALLBACK

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    items = [_source("a" * 1_000_000), {"method": "post", "url": "/views/echo/",
                                        "body": REF * 50,
                                        "headers": {"Content-Type": "text/plain"}}]
    gc.collect()
    tracemalloc.start()
    try:
        response = post_batch(client, items)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = _error_of(response.json()["batch"][1])
    assert "BODY_FILL_FALLBACK" in message and str(BODY_FILL_FALLBACK) in message
    assert peak < 25_000_000, f"{peak} bytes at the peak"


def test_a_lone_surrogate_filled_into_a_url_or_body_is_a_424_not_a_500() -> None:
    from batch_requests.dispatch import SubResult
    from batch_requests.payload import parse_batch
    from batch_requests.references import Unresolved, resolve

    answer = SubResult(0, 200, "OK", [("Content-Type", "application/json")],
                       b'{"v": "\\ud800"}')
    for item in ({"method": "get", "url": "/x/?v={result=a:$.v}"},
                 {"method": "post", "url": "/x/", "body": "{result=a:$.v}"}):
        spec = parse_batch(json.dumps({"batch": [{"method": "get", "url": "/x/", "name": "a"},
                                                 item]}).encode()).items[1]
        with pytest.raises(Unresolved, match="lone surrogate"):
            resolve(spec, {"a": (0, answer)})


def test_a_batch_document_within_the_limit_runs_from_a_file_part(client) -> None:
    raw = json.dumps({"batch": [{"method": "get", "url": "/views/whoami/"}]}).encode()
    response = client.post(BATCH, {"batch": SimpleUploadedFile("batch.json", raw,
                                                               "application/json")})
    assert response.status_code == 200, response.content
    assert response.json()["batch"][0]["status_code"] == 200


def _long_batch_routes() -> list:
    """The test project's URLconf, with a batch endpoint that takes any longer path too."""
    from django.urls import include, re_path

    from batch_requests.views import handle_batch_requests

    return [re_path(r"^api/v1/batch/.+$", handle_batch_requests),
            re_path(r"^", include("test_project.urls"))]


urlpatterns = _long_batch_routes()  # for @pytest.mark.urls(__name__) below


@pytest.mark.urls(__name__)
def test_long_paths_are_still_refused_as_nested_batches(client, settings) -> None:
    """Paths past the cached length are resolved uncached: the nesting check still holds."""
    from batch_requests.subrequest import CACHED_LENGTH

    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "MAX_URL_LENGTH": 100_000}
    for url in (BATCH + "a" * CACHED_LENGTH, "/api/v1/%62atch/" + "%61" * 5000,
                "http://testserver" + BATCH + "b" * 5000, BATCH + "?" + "a" * 5000):
        error = _refusal(post_batch(client, [{"method": "get", "url": "/views/whoami/"},
                                             {"method": "get", "url": url}]))
        assert (error["index"], error["field"]) == (1, "url"), error
        assert "nested" in error["message"]


@pytest.mark.parametrize(("value", "expected"), [(0, "batch_requests.E004"),
                                                 (-5, "batch_requests.E004"),
                                                 ("8192", "batch_requests.E003"),
                                                 (True, "batch_requests.E003"),
                                                 (None, "batch_requests.E003"),
                                                 (4094, None)])
def test_max_url_length_is_checked(settings, value, expected) -> None:
    from batch_requests.checks import check_settings

    settings.BATCH_REQUESTS = {"MAX_URL_LENGTH": value}
    assert [e.id for e in check_settings()] == ([expected] if expected else [])


# --------------------------------------------------------------------------------------
# 4. Atomic batches and the database lock (live gunicorn, SQLite)
# --------------------------------------------------------------------------------------


def _env(db_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCH_")}
    return {**env, "DJANGO_SETTINGS_MODULE": "test_project.settings",
            "DJANGO_DB_NAME": str(db_path), "DJANGO_DEBUG": "0"}


@pytest.fixture(scope="module")
def sequential_site(tmp_path_factory) -> Iterator[LiveSite]:
    """gunicorn gthread, 1 worker, 4 threads; default settings (sequential executor)."""
    template = tmp_path_factory.mktemp("template") / "template.sqlite3"
    tokens = prepare_db(template, _env(template))
    db_path = tmp_path_factory.mktemp("sequential") / "live.sqlite3"
    shutil.copyfile(template, db_path)
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "test_project.wsgi:application",
               "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread", "--workers", "1",
               "--threads", "4", "--graceful-timeout", "2", "--log-level", "warning"]
    with running(command, port, _env(db_path)):
        yield LiveSite(f"http://127.0.0.1:{port}", tokens, db_path)


@pytest.mark.server
@pytest.mark.xfail(strict=True, reason=(
    "Known limit, documented in docs/security.md ('An atomic batch holds its locks while its "
    "items run'): a started item cannot be stopped, so its transaction holds SQLite's write "
    "lock past the batch's timeout."))
def test_an_atomic_batch_does_not_lock_out_other_writers_past_its_timeout(
        sequential_site: LiveSite) -> None:
    """A's atomic batch (timeout 1 s) writes, then runs a request held for 12 s. B's direct
    write, sent after A's timeout, must not fail on A's lock (SQLite waits 5 s for it)."""
    site = sequential_site
    name = f"atomic-lock-{uuid.uuid4().hex}"
    batch_a = {"atomic": True, "timeout": 1, "batch": [
        {"method": "post", "url": "/api/articles/", "body": {"title": "A's write"}},
        {"method": "get", "url": f"/attack/hold/?name={name}&seconds=12"},
    ]}
    a_auth = {"Authorization": f"Token {site.tokens['user0']}"}
    b_auth = {"Authorization": f"Token {site.tokens['user1']}"}
    answers: dict[str, Any] = {}
    sent = threading.Event()

    def send_a() -> None:
        with httpx.Client(timeout=60) as http:
            sent.set()
            answers["a"] = http.post(f"{site.url}{BATCH}", json=batch_a, headers=a_auth)

    thread = threading.Thread(target=send_a)
    try:
        with httpx.Client(timeout=30) as http:
            assert http.post(f"{site.url}/api/articles/", json={"title": "warm-up"},
                             headers=b_auth).status_code == 201
            thread.start()
            assert sent.wait(10)
            # A's first item has written, its second one is held; A's 1 s budget runs out.
            end = 10.0
            while http.get(f"{site.url}/attack/streams/").json()["held"] == 0 and end > 0:
                threading.Event().wait(0.05)
                end -= 0.05
            threading.Event().wait(1.5)
            b = http.post(f"{site.url}/api/articles/", json={"title": "B's write"},
                          headers=b_auth)
    finally:
        with contextlib.suppress(httpx.HTTPError), httpx.Client(timeout=10) as http:
            http.get(f"{site.url}/attack/release/?name={name}")
        thread.join(60)
    assert b.status_code == 201, (
        f"B's direct write, sent after A's 1 s budget ran out, answered {b.status_code}: "
        f"{b.text[:200]}")


# --------------------------------------------------------------------------------------
# 5. One uploaded file used by many items
# --------------------------------------------------------------------------------------


def test_a_file_used_by_many_items_is_not_copied_for_each_up_front(client) -> None:
    """One 2 MB part used by 30 items: the sub-requests' multipart bodies are built one at a
    time, as each item runs, not all 30 (60 MB) before the first one does. Directly, each of
    the 30 requests would hold its own copy only while it runs."""
    size = 2_000_000
    items = [{"method": "post", "url": "/attack/upload-size/", "files": {"file": "big"}}] * 30
    parts = {"batch": json.dumps({"batch": items}),
             "big": SimpleUploadedFile("big.bin", b"\x00" * size,
                                       content_type="application/octet-stream")}
    client.post(BATCH, {"batch": json.dumps({"batch": items[:1]}),
                        "big": SimpleUploadedFile("w.bin", b"w")})  # first-use allocations
    gc.collect()
    tracemalloc.start()
    try:
        response = client.post(BATCH, parts)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 200, response.content[:300]
    answered = response.json()["batch"]
    assert [item["status_code"] for item in answered] == [200] * 30
    assert all(json.loads(item["body"]) == {"file": size} for item in answered)
    # About 7 copies at the peak (the client's request, the parsed part, one item's body and
    # its parsed file); 35 when every body was built up front and kept until collected.
    assert peak < 10 * size, f"peak {peak} bytes for one {size}-byte file used by 30 items"
