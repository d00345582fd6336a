"""batch_requests.client.BatchClient against Django's test client and a live gunicorn."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client

from batch_requests.client import (
    BatchClient,
    BatchNotSent,
    BatchRefused,
    ItemFailed,
)
from test_project.articles.models import Article, Attachment
from tests.live import LiveSite, serve

# --- against Django's test client -------------------------------------------------------


def test_typed_results_from_the_test_client(client: Client, alice: User,
                                            articles: list[Article]) -> None:
    client.force_login(alice)
    with BatchClient(session=client) as batch:
        me = batch.get("/api/me/")
        created = batch.post("/api/articles/", json={"title": "From the client"})
        found = batch.get("/api/articles/", params={"search": "From the client"})
        missing = batch.get("/views/articles/999999/")
        with pytest.raises(BatchNotSent):
            _ = me.status_code
        assert len(batch) == 4
    assert me.status_code == 200 and me.ok
    assert me.json()["username"] == "alice"
    assert me.headers["content-type"] == me.headers["Content-Type"] == "application/json"
    assert me.duration is not None and me.duration >= 0
    assert created.status_code == 201 and created.reason_phrase == "Created"
    assert [a["title"] for a in found.json()] == ["From the client"]
    assert missing.status_code == 404 and not missing.ok
    assert "From the client" in found.text and found.content.startswith(b"[")
    with pytest.raises(ItemFailed):
        missing.raise_for_status()


def test_strict_client_raises_when_a_failed_item_is_used(client: Client, db: None) -> None:
    with BatchClient(session=client, raise_for_status=True) as batch:
        ok = batch.get("/api/ping/")
        anonymous = batch.get("/api/me/")
    assert ok.json() == {"pong": True}
    assert anonymous.status_code in (401, 403)  # status and headers stay readable
    with pytest.raises(ItemFailed, match="GET /api/me/ answered 40"):
        anonymous.json()
    with pytest.raises(ItemFailed):
        _ = anonymous.text


def test_bodies_binary_latin1_forms_and_raw_strings(client: Client, db: None) -> None:
    with BatchClient(session=client) as batch:
        binary = batch.get("/views/binary/")
        latin1 = batch.get("/views/latin1/")
        form = batch.post("/views/echo/", data={"a": ["1", "2"], "b": "x"})
        raw = batch.post("/views/echo/", data=b"plain", headers={"Content-Type": "text/plain"})
        scalar = batch.post("/views/echo/", json="just a string")
    assert binary.content == bytes(range(256))
    assert latin1.text == "café olé" and latin1.content == "café olé".encode("latin-1")
    assert form.json()["post"] == {"a": ["1", "2"], "b": ["x"]}
    assert raw.json()["body"] == "plain" and raw.json()["content_type"] == "text/plain"
    assert scalar.json()["body"] == '"just a string"'


def test_extra_fields_pass_through_and_a_refusal_is_raised(client: Client, alice) -> None:
    client.force_login(alice)  # atomic batches need an authenticated caller
    batch = BatchClient(session=client, atomic=True)
    first = batch.get("/api/ping/", name="ping")
    second = batch.get("/views/whoami/", depends_on=["ping"])
    assert batch.payloads() == [{"atomic": True, "batch": [
        {"method": "GET", "url": "/api/ping/", "name": "ping"},
        {"method": "GET", "url": "/views/whoami/", "depends_on": ["ping"]},
    ]}]
    batch.send()
    assert first.json() == {"pong": True} and second.status_code == 200
    # A refused batch is raised by every answer's accessors: an anonymous atomic batch is 403.
    anonymous = BatchClient(session=Client(), atomic=True)
    answer = anonymous.get("/api/ping/")
    with pytest.raises(BatchRefused) as refused:
        anonymous.send()
    assert refused.value.status_code == 403
    assert {e["field"] for e in refused.value.errors} == {"atomic"}
    with pytest.raises(BatchRefused):
        _ = answer.status_code


def test_send_splits_by_max_batch_size_and_keeps_order(client: Client, db: None) -> None:
    posts: list[int] = []
    real_post = client.post

    def counting_post(*args: Any, **kwargs: Any) -> Any:
        posts.append(1)
        return real_post(*args, **kwargs)

    client.post = counting_post  # type: ignore[method-assign]
    with BatchClient(session=client, max_batch_size=2) as batch:
        answers = [batch.get(f"/views/whoami/?n={n}") for n in range(5)]
    assert len(posts) == 3
    assert [a.json()["query"]["n"] for a in answers] == [[str(n)] for n in range(5)]


def test_linked_requests_in_one_batch_and_never_split(client: Client, alice: User) -> None:
    client.force_login(alice)
    with BatchClient(session=client) as batch:
        new = batch.post("/api/articles/", json={"title": "linked"}, name="new")
        again = batch.get("/api/articles/{result=new:$.id}/", omit_response_on_success=True)
        after = batch.get("/api/articles/", depends_on="new")
    assert new.status_code == 201 and again.status_code == 200 and again.content == b""
    assert [a["title"] for a in after.json()] == ["linked"]
    batch = BatchClient(session=client, max_batch_size=1)
    batch.post("/api/articles/", json={"title": "a"}, name="a")
    batch.get("/api/articles/{result=a:$.id}/")
    with pytest.raises(ValueError, match="cannot be split"):
        batch.send()
    assert Article.objects.count() == 1  # nothing was sent


def test_files_go_as_a_multipart_batch(client: Client, alice: User, settings,
                                       tmp_path) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    client.force_login(alice)
    article = Article.objects.create(title="with files", author=alice)
    report = tmp_path / "report.txt"
    report.write_bytes(b"line one\r\n--not a boundary\r\n")
    with BatchClient(session=client, raise_for_status=True) as batch, report.open("rb") as f:
        first = batch.post("/api/attachments/", files={"file": f}, data={"article": article.pk})
        second = batch.post("/api/attachments/",
                            files={"file": ("raw.bin", bytes(range(256)), "image/x-raw")})
        plain = batch.get("/api/me/")
        assert batch.payloads()[0]["batch"][0]["files"] == {"file": "file0"}
    assert first.json()["name"] == "report.txt" and second.json()["size"] == 256
    assert plain.json()["username"] == "alice"
    [linked] = article.attachments.all()  # data= reached the view as a form field
    assert linked.file.read() == report.read_bytes()
    assert Attachment.objects.get(pk=second.json()["id"]).file.read() == bytes(range(256))
    with pytest.raises(ValueError, match="data= \\(a mapping\\)"):
        BatchClient(session=client).post("/api/attachments/", files={"file": b"x"}, json={})


def test_explicit_send_then_more_and_nothing_sent_when_the_block_raises(
        client: Client, alice: User) -> None:
    client.force_login(alice)
    with BatchClient(session=client) as batch:
        first = batch.post("/api/articles/", json={"title": "one"})
        assert batch.send() == [first] and first.status_code == 201
        second = batch.post("/api/articles/", json={"title": "two"})
    assert second.status_code == 201
    with pytest.raises(RuntimeError), BatchClient(session=client) as batch:
        never = batch.post("/api/articles/", json={"title": "never"})
        raise RuntimeError("the caller changed its mind")
    assert not never.sent
    assert sorted(Article.objects.values_list("title", flat=True)) == ["one", "two"]


def test_csrf_token_from_the_session_cookie(alice: User) -> None:
    """A session login must pass CSRF: the client sends the csrftoken cookie back."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/")  # the page sets the csrftoken cookie
    with BatchClient(session=client) as batch:
        posted = batch.post("/views/csrf-protected/", json={})
    assert posted.json() == {"ok": True, "user": "alice"}
    # A wrong token fails that item's own CSRF check, as it would directly; the batch answers.
    with BatchClient(session=client, headers={"X-CSRFToken": "wrong" * 8}) as batch:
        refused = batch.post("/views/csrf-protected/", json={})
    assert refused.status_code == 403


# --- against a live gunicorn ------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    with serve("gunicorn", tmp_path_factory.mktemp("client")) as live:
        yield live


def _session(kind: str) -> Any:
    return requests.Session() if kind == "requests" else httpx.Client()


@pytest.mark.server
@pytest.mark.parametrize("kind", ["requests", "httpx"])
def test_token_client_over_http(site: LiveSite, kind: str) -> None:
    token = site.tokens["alice"]
    with _session(kind) as http, BatchClient(site.url, session=http, raise_for_status=True,
                                             headers={"Authorization": f"Token {token}"}) as b:
        me = b.get("/api/me/")
        created = b.post("/api/articles/", json={"title": f"over {kind}"})
        found = b.get("/api/articles/", params={"search": f"over {kind}"})
        refused = b.post("/views/csrf-protected/", json={})  # a token client has no CSRF cookie
    assert me.json()["username"] == "alice" and me.json()["auth"] == "TokenAuthentication"
    assert created.status_code == 201
    assert [a["author"] for a in found.json()] == ["alice"]
    assert refused.status_code == 403
    with pytest.raises(ItemFailed):
        refused.json()


@pytest.mark.server
@pytest.mark.parametrize("kind", ["requests", "httpx"])
def test_session_login_over_http_sends_its_csrf_token(site: LiveSite, kind: str) -> None:
    with _session(kind) as http:
        http.get(f"{site.url}/admin/login/")
        done = http.post(f"{site.url}/admin/login/?next=/admin/", data={
            "username": "demo", "password": "demo",  # the admin form takes staff only
            "csrfmiddlewaretoken": http.cookies["csrftoken"]})
        assert done.status_code in (200, 302) and http.cookies.get("sessionid")  # httpx: 302
        with BatchClient(site.url, session=http) as batch:
            posted = batch.post("/views/csrf-protected/", json={})
            who = batch.get("/views/whoami/")
    assert posted.json() == {"ok": True, "user": "demo"}
    assert who.json()["user"] == "demo"


@pytest.mark.server
@pytest.mark.parametrize("kind", ["requests", "httpx"])
def test_files_over_http(site: LiveSite, kind: str) -> None:
    token = site.tokens["alice"]
    with _session(kind) as http, BatchClient(site.url, session=http, raise_for_status=True,
                                             headers={"Authorization": f"Token {token}"}) as b:
        up = b.post("/api/attachments/", files={"file": ("notes.txt", b"hello " * 1000)})
        echoed = b.post("/views/echo/", files={"doc": ("a.csv", "x,y\n", "text/csv")},
                        data={"tags": ["a", "b"]})
    assert up.status_code == 201 and up.json() == {"id": up.json()["id"], "name": "notes.txt",
                                                   "size": 6000}
    assert echoed.json()["files"] == {"doc": {"name": "a.csv", "size": 4}}
    assert "Content-Type: text/csv" in echoed.json()["body"]
    assert echoed.json()["post"]["tags"] == ["a", "b"]


@pytest.mark.server
def test_default_session_and_a_refused_batch_over_http(site: LiveSite) -> None:
    with pytest.raises(BatchRefused) as refused, BatchClient(site.url) as batch:
        batch.request("FETCH", "/api/ping/")
        batch.get("/api/ping/")
    assert refused.value.status_code == 400
    assert refused.value.errors[0]["index"] == 0 and refused.value.errors[0]["field"] == "method"
    with BatchClient(site.url) as batch:
        binary = batch.get("/views/binary/")
    assert binary.content == bytes(range(256))
