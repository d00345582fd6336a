"""Direct requests to the demo app: the behaviour batch sub-requests must match."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client

from test_project.articles.models import Article, Attachment, Comment

JSONAPI = "application/vnd.api+json"


pytestmark = pytest.mark.django_db


def _json(response: Any) -> Any:
    return json.loads(response.content)


def _logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _csrf_client(user: User | None = None) -> tuple[Client, str]:
    """A CSRF-enforcing client holding a known ``csrftoken`` cookie.

    An unmasked 32-character secret is a valid token, so the same value goes
    into the ``X-CSRFToken`` header.
    """
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    token = "abcdefghijklmnopqrstuvwxyz012345"
    client.cookies["csrftoken"] = token
    return client, token


# --- plain Django views -------------------------------------------------------


def test_home_lists_endpoints(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert b"/api/articles/" in response.content


def test_views_index_get_and_post(client: Client) -> None:
    response = client.get("/views/")
    assert response.status_code == 200
    assert response.content == b"Success!"
    response = client.post("/views/", data=b"raw-bytes", content_type="text/plain")
    assert response.status_code == 201
    assert response.content == b"raw-bytes"


def test_views_index_post_needs_csrf() -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.post("/views/", data=b"x", content_type="text/plain").status_code == 403


def test_article_list_and_filters(client: Client, articles: list[Article]) -> None:
    data = _json(client.get("/views/articles/"))
    assert [a["title"] for a in data["articles"]] == ["Alice first", "Alice second", "Bob only"]
    assert data["articles"][0] == {"id": articles[0].pk, "title": "Alice first", "author": "alice"}
    assert len(_json(client.get("/views/articles/?q=SECOND"))["articles"]) == 1
    assert len(_json(client.get("/views/articles/?author=bob"))["articles"]) == 1


def test_article_detail_and_404(client: Client, articles: list[Article]) -> None:
    response = client.get(f"/views/articles/{articles[2].pk}/")
    assert response.status_code == 200
    assert _json(response)["author"] == "bob"
    assert client.get("/views/articles/999999/").status_code == 404


def test_article_create(alice: User) -> None:
    client = _logged_in(alice)
    response = client.post("/views/articles/create/", {"title": "Form", "body": "b"})
    assert response.status_code == 201
    assert _json(response)["author"] == "alice"
    response = client.post(
        "/views/articles/create/", {"title": "Json"}, content_type="application/json"
    )
    assert response.status_code == 201
    assert Article.objects.filter(title="Json", author=alice).exists()
    response = client.post("/views/articles/create/", {"body": "no title"})
    assert response.status_code == 400
    assert "error" in _json(response)


def test_article_create_requires_login_and_csrf(client: Client, alice: User) -> None:
    response = client.post("/views/articles/create/", {"title": "x"})
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(alice)
    assert csrf_client.post("/views/articles/create/", {"title": "x"}).status_code == 403


def test_whoami(alice: User) -> None:
    client = _logged_in(alice)
    response = client.post(
        "/views/whoami/?a=1&a=2&b=3",
        HTTP_USER_AGENT="pytest-agent",
        HTTP_X_CUSTOM="custom-value",
    )
    data = _json(response)
    assert data["user"] == "alice"
    assert data["is_authenticated"] is True
    assert data["host"] == "testserver"
    assert data["scheme"] == "http"
    assert data["is_secure"] is False
    assert data["remote_addr"] == "127.0.0.1"
    assert data["path"] == "/views/whoami/"
    assert data["full_path"] == "/views/whoami/?a=1&a=2&b=3"
    assert data["method"] == "POST"
    assert data["query"] == {"a": ["1", "2"], "b": ["3"]}
    assert data["user_agent"] == "pytest-agent"
    assert data["x_custom"] == "custom-value"
    assert data["authorization_present"] is False


def test_whoami_anonymous_with_authorization(client: Client) -> None:
    data = _json(client.get("/views/whoami/", HTTP_AUTHORIZATION="Token nope"))
    assert data["user"] is None
    assert data["authorization_present"] is True


def test_echo_form_and_files(client: Client) -> None:
    upload = SimpleUploadedFile("a.txt", b"12345", content_type="text/plain")
    data = _json(client.post("/views/echo/", {"k": ["1", "2"], "f": upload}, HTTP_X_CUSTOM="x"))
    assert data["method"] == "POST"
    assert data["content_type"] == "multipart/form-data"
    assert data["post"] == {"k": ["1", "2"]}
    assert data["files"] == {"f": {"name": "a.txt", "size": 5}}
    assert data["x_custom"] == "x"


def test_echo_raw_body(client: Client) -> None:
    data = _json(client.put("/views/echo/", b"\xffhi", content_type="text/plain"))
    assert data["method"] == "PUT"
    assert data["content_type"] == "text/plain"
    assert data["body"] == "\ufffdhi"


def test_error_view_raises(client: Client) -> None:
    with pytest.raises(RuntimeError, match="secret-detail-xyz"):
        client.get("/views/error/")
    quiet = Client(raise_request_exception=False)
    response = quiet.get("/views/error/")
    assert response.status_code == 500


def test_binary_latin1_stream_file(client: Client) -> None:
    response = client.get("/views/binary/")
    assert response.content == bytes(range(256))
    assert response["Content-Type"] == "application/octet-stream"

    response = client.get("/views/latin1/")
    assert response["Content-Type"] == "text/plain; charset=iso-8859-1"
    assert response.content.decode("latin-1") == "café olé"

    response = client.get("/views/stream/")
    assert response.streaming
    assert b"".join(response.streaming_content) == b"".join(
        f"chunk-{n}\n".encode() for n in range(5)
    )

    response = client.get("/views/file/")
    assert response.streaming
    assert b"".join(response.streaming_content) == b"file-content-\x00\x01"
    assert response["Content-Disposition"] == 'attachment; filename="data.bin"'


def test_template_response(client: Client, alice: User, articles: list[Article]) -> None:
    response = client.get("/views/template/")
    assert response.status_code == 200
    assert b"Hello, anonymous!" in response.content
    assert b"3 articles" in response.content
    assert b"Hello, alice!" in _logged_in(alice).get("/views/template/").content


def test_sleep(client: Client) -> None:
    assert _json(client.get("/views/sleep/?seconds=0.01")) == {"slept": 0.01}
    assert client.get("/views/sleep/?seconds=abc").status_code == 400


def test_barrier_passes_with_parallel_requests() -> None:
    results: list[int] = []

    def call() -> None:
        results.append(Client().get("/views/barrier/?parties=2&name=app-test").status_code)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [200, 200]


def test_login_required_view(client: Client, alice: User) -> None:
    response = client.get("/views/login-required/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/views/login-required/"
    assert _json(_logged_in(alice).get("/views/login-required/")) == {"user": "alice"}


def test_set_cookie_and_redirect(client: Client) -> None:
    response = client.get("/views/set-cookie/")
    morsel = response.cookies["flavour"]
    assert morsel.value == "chocolate"
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"
    response = client.get("/views/redirect/")
    assert response.status_code == 302
    assert response["Location"] == "/views/"


def test_csrf_protected(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.post("/views/csrf-protected/").status_code == 403
    client, token = _csrf_client(alice)
    response = client.post("/views/csrf-protected/", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert _json(response) == {"ok": True, "user": "alice"}


# --- DRF ----------------------------------------------------------------------


def test_ping(client: Client) -> None:
    response = client.get("/api/ping/")
    assert response.status_code == 200
    assert _json(response) == {"pong": True}


def test_me_with_token_session_and_anonymous(client: Client, alice: User, alice_token: str) -> None:
    assert client.get("/api/me/").status_code in (401, 403)
    response = client.get("/api/me/", HTTP_AUTHORIZATION=f"Token {alice_token}")
    assert response.status_code == 200
    assert _json(response) == {"username": "alice", "id": alice.pk, "auth": "TokenAuthentication"}
    # SessionAuthentication comes first and sends no WWW-Authenticate, so DRF says 403.
    assert client.get("/api/me/", HTTP_AUTHORIZATION="Token wrong").status_code == 403
    data = _json(_logged_in(alice).get("/api/me/"))
    assert data["auth"] == "SessionAuthentication"


def test_api_articles_crud(client: Client, articles: list[Article], alice_token: str) -> None:
    auth = {"HTTP_AUTHORIZATION": f"Token {alice_token}"}
    response = client.get("/api/articles/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert [a["author"] for a in _json(response)] == ["alice", "alice", "bob"]
    assert len(_json(client.get("/api/articles/?search=bob"))) == 1

    assert client.post("/api/articles/", {"title": "x"}).status_code in (401, 403)
    response = client.post(
        "/api/articles/", {"title": "New"}, content_type="application/json", **auth
    )
    assert response.status_code == 201
    created = _json(response)
    assert set(created) == {"id", "title", "body", "author", "published", "created"}
    assert created["author"] == "alice"

    url = f"/api/articles/{created['id']}/"
    response = client.patch(url, {"title": "Renamed"}, content_type="application/json", **auth)
    assert response.status_code == 200
    assert _json(response)["title"] == "Renamed"
    response = client.put(
        url, {"title": "Put", "body": "b"}, content_type="application/json", **auth
    )
    assert response.status_code == 200
    assert client.delete(url, **auth).status_code == 204
    assert client.get(url).status_code == 404


def test_api_bob_cannot_edit_alices_article(
    client: Client, articles: list[Article], bob_token: str
) -> None:
    auth = {"HTTP_AUTHORIZATION": f"Token {bob_token}"}
    url = f"/api/articles/{articles[0].pk}/"
    response = client.patch(url, {"title": "Hacked"}, content_type="application/json", **auth)
    assert response.status_code == 403
    assert client.delete(url, **auth).status_code == 403
    own = f"/api/articles/{articles[2].pk}/"
    assert (
        client.patch(own, {"title": "Mine"}, content_type="application/json", **auth).status_code
        == 200
    )


def test_api_session_post_needs_csrf(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/api/articles/", {"title": "x"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in _json(response)["detail"]


def test_api_comments(
    client: Client, articles: list[Article], comment: Comment, alice_token: str, bob_token: str
) -> None:
    data = _json(client.get("/api/comments/"))
    assert data[0]["author"] == "bob"
    assert data[0]["article"] == articles[0].pk
    response = client.post(
        "/api/comments/",
        {"article": articles[2].pk, "text": "Hi bob"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {alice_token}",
    )
    assert response.status_code == 201
    assert _json(response)["author"] == "alice"
    response = client.delete(
        f"/api/comments/{comment.pk}/", HTTP_AUTHORIZATION=f"Token {alice_token}"
    )
    assert response.status_code == 403
    response = client.delete(
        f"/api/comments/{comment.pk}/", HTTP_AUTHORIZATION=f"Token {bob_token}"
    )
    assert response.status_code == 204


def test_throttled_after_five(client: Client) -> None:
    statuses = [client.get("/api/throttled/").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]


def test_attachment_upload(
    client: Client, articles: list[Article], alice_token: str, settings: Any, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    upload = SimpleUploadedFile("notes.txt", b"hello file", content_type="text/plain")
    assert client.post("/api/attachments/", {"file": upload}).status_code in (401, 403)
    upload.seek(0)
    response = client.post(
        "/api/attachments/",
        {"file": upload, "article": articles[0].pk},
        HTTP_AUTHORIZATION=f"Token {alice_token}",
    )
    assert response.status_code == 201
    data = _json(response)
    assert data["name"] == "notes.txt"
    assert data["size"] == 10
    assert Attachment.objects.get(pk=data["id"]).article == articles[0]


# --- JSON:API -----------------------------------------------------------------


def test_jsonapi_list_and_detail(client: Client, articles: list[Article]) -> None:
    response = client.get("/jsonapi/articles/", HTTP_ACCEPT=JSONAPI)
    assert response.status_code == 200
    assert response["Content-Type"] == JSONAPI
    data = _json(response)
    assert data["data"][0]["type"] == "articles"
    assert data["data"][0]["attributes"]["author"] == "alice"
    assert data["data"][0]["relationships"]["comments"]["meta"]["count"] == 1
    assert data["meta"]["pagination"]["count"] == 3

    response = client.get(f"/jsonapi/articles/{articles[0].pk}/?include=comments")
    assert _json(response)["included"][0]["type"] == "comments"
    assert client.get("/jsonapi/articles/?bogus=1").status_code == 400
    data = _json(client.get("/jsonapi/articles/?filter[search]=bob&sort=-title"))
    assert [item["attributes"]["title"] for item in data["data"]] == ["Bob only"]


def test_jsonapi_related_and_relationship(
    client: Client, articles: list[Article], comment: Comment
) -> None:
    response = client.get(f"/jsonapi/articles/{articles[0].pk}/comments/")
    assert response.status_code == 200
    assert _json(response)["data"][0]["type"] == "comments"
    response = client.get(f"/jsonapi/articles/{articles[0].pk}/relationships/comments/")
    assert response.status_code == 200
    assert response["Content-Type"] == JSONAPI
    assert _json(response)["data"] == [{"type": "comments", "id": str(comment.pk)}]


def test_jsonapi_create_comment_with_relationship(
    client: Client, articles: list[Article], alice_token: str
) -> None:
    document = {
        "data": {
            "type": "comments",
            "attributes": {"text": "Via JSON:API"},
            "relationships": {"article": {"data": {"type": "articles", "id": str(articles[2].pk)}}},
        }
    }
    response = client.post(
        "/jsonapi/comments/",
        json.dumps(document),
        content_type=JSONAPI,
        HTTP_AUTHORIZATION=f"Token {alice_token}",
    )
    assert response.status_code == 201, response.content
    assert response["Content-Type"] == JSONAPI
    data = _json(response)["data"]
    assert data["attributes"]["author"] == "alice"
    assert data["relationships"]["article"]["data"] == {
        "type": "articles",
        "id": str(articles[2].pk),
    }
    assert Comment.objects.get(pk=data["id"]).article == articles[2]


def test_jsonapi_errors_use_jsonapi_format(
    client: Client, articles: list[Article], bob_token: str
) -> None:
    document = {
        "data": {"type": "articles", "id": str(articles[0].pk), "attributes": {"title": "x"}}
    }
    response = client.patch(
        f"/jsonapi/articles/{articles[0].pk}/",
        json.dumps(document),
        content_type=JSONAPI,
        HTTP_AUTHORIZATION=f"Token {bob_token}",
    )
    assert response.status_code == 403
    assert response["Content-Type"] == JSONAPI
    assert _json(response)["errors"][0]["status"] == "403"
    response = client.post("/jsonapi/articles/", "{}", content_type=JSONAPI)
    assert response.status_code in (401, 403)
    assert "errors" in _json(response)


def test_jsonapi_create_article_as_author(client: Client, alice_token: str) -> None:
    document = {"data": {"type": "articles", "attributes": {"title": "JSON:API article"}}}
    response = client.post(
        "/jsonapi/articles/",
        json.dumps(document),
        content_type=JSONAPI,
        HTTP_AUTHORIZATION=f"Token {alice_token}",
    )
    assert response.status_code == 201, response.content
    assert _json(response)["data"]["attributes"]["author"] == "alice"


# --- management command -------------------------------------------------------


def test_seed_demo_is_idempotent(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("seed_demo")
    first = (User.objects.count(), Article.objects.count(), Comment.objects.count())
    call_command("seed_demo")
    assert (User.objects.count(), Article.objects.count(), Comment.objects.count()) == first
    out = capsys.readouterr().out
    assert "http://127.0.0.1:8000/api/v1/batch/" in out
    assert "Authorization: Token" in out
    assert User.objects.get(username="alice").check_password("alice-password")
