"""Many users at once against real servers: no user's data appears in another's batch.

Eight clients, each authenticated as a different user, send interleaved batches to a real
gunicorn (thread executor, and process executor) and a real uvicorn (async executor). The
load is bounded: a fixed number of batches per client, each request with a timeout.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.live import LiveSite, serve

pytestmark = pytest.mark.server

CLIENTS = 8
BATCHES_PER_CLIENT = 4


@pytest.fixture(scope="module", params=[("gunicorn", "thread"), ("uvicorn", "async"),
                                        ("gunicorn", "process")], ids=lambda p: "-".join(p))
def site(request, tmp_path_factory) -> LiveSite:
    server, executor = request.param
    env = {"BATCH_EXECUTOR": executor, "BATCH_NUM_WORKERS": "4"}
    with serve(server, tmp_path_factory.mktemp(executor), env) as live:
        yield live


def _client_run(site: LiveSite, user: str) -> list[str]:
    """Send this user's batches; return a list of problems (empty when all is well)."""
    problems = []
    with requests.Session() as http:
        http.headers["Authorization"] = f"Token {site.tokens[user]}"
        for n in range(BATCHES_PER_CLIENT):
            title = f"{user}-note-{n}"
            response = http.post(f"{site.url}/api/v1/batch/", timeout=60, json={"batch": [
                {"method": "get", "url": "/api/me/"},
                {"method": "post", "url": "/api/articles/", "body": {"title": title}},
                {"method": "get", "url": f"/api/articles/?search={user}-note-"},
                {"method": "get", "url": "/views/sleep/?seconds=0.01"},
                {"method": "get", "url": "/api/me/"},
            ]})
            if response.status_code != 200:
                problems.append(f"{user}: batch {n} answered {response.status_code}")
                continue
            me, created, listing, _sleep, me_again = response.json()["batch"]
            for item in (me, me_again):
                if json.loads(item["body"]).get("username") != user:
                    problems.append(f"{user}: /api/me/ said {item['body']}")
            if created["status_code"] != 201 or json.loads(created["body"])["author"] != user:
                problems.append(f"{user}: create answered {created['body']}")
            authors = {a["author"] for a in json.loads(listing["body"])}
            titles = {a["title"] for a in json.loads(listing["body"])}
            if authors != {user} or title not in titles or len(titles) != n + 1:
                problems.append(f"{user}: listing {sorted(titles)} by {sorted(authors)}")
    return problems


def test_interleaved_batches_of_eight_users(site: LiveSite) -> None:
    users = [f"user{i}" for i in range(CLIENTS)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        problems = [p for found in pool.map(lambda u: _client_run(site, u), users)
                    for p in found]
    assert problems == []
