"""Multipart/form-data batches: file parts handed to sub-requests through an item's "files".

Every test goes through Django's real test client and the real views: the DRF view
``AttachmentUploadView`` (``POST /api/attachments/``, stores the ``file`` field) and the plain
Django view ``echo`` (``/views/echo/``, reports ``request.POST`` and ``request.FILES``).
Uploaded files are stored under a temporary ``MEDIA_ROOT``, never in the repository.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from test_project.articles.models import Article, Attachment
from tests.helpers import BATCH_URL, post_batch

CSRF_SECRET = "a" * 32
UPLOAD_URL = "/api/attachments/"
THREADS = {
    "EXECUTE_PARALLEL": True,
    "CONCURRENT_EXECUTOR": "batch_requests.concurrent.executor.ThreadBasedExecutor",
}
EXECUTORS = [
    pytest.param({}, id="sequential", marks=pytest.mark.django_db),
    # Worker threads use their own DB connections: they must see committed fixture rows.
    pytest.param(THREADS, id="threads", marks=pytest.mark.django_db(transaction=True)),
]


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def media_root(settings: Any, tmp_path: Path) -> Path:
    """Store uploads in a temporary directory, not in the repository's media dir."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = str(root)
    return root


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest, settings: Any) -> Iterator[None]:
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, **request.param}
    yield


def token(key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Token {key}"}


def upload(name: str = "notes.txt", content: bytes = b"hello file",
           content_type: str = "text/plain") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


def post_multipart(client: Client, document: dict[str, Any] | list[dict[str, Any]] | str,
                   parts: dict[str, Any] | None = None, *, batch_as_file: bool = False,
                   **extra: Any):
    """POST a multipart batch: the JSON document in a "batch" part, plus the other parts.

    ``document`` may be the batch list, the whole document, or a raw string (sent as is).
    """
    if isinstance(document, list):
        document = {"batch": document}
    raw = document if isinstance(document, str) else json.dumps(document)
    data: dict[str, Any] = {}
    if batch_as_file:
        data["batch"] = SimpleUploadedFile("batch.json", raw.encode(),
                                           content_type="application/json")
    else:
        data["batch"] = raw
    data.update(parts or {})
    return client.post(BATCH_URL, data, **extra)


def multipart_items(client: Client, document: Any, parts: dict[str, Any] | None = None,
                    **extra: Any) -> list[dict[str, Any]]:
    response = post_multipart(client, document, parts, **extra)
    assert response.status_code == 200, response.content
    return response.json()["batch"]


def upload_item(part: str = "upload", field: str = "file", **more: Any) -> dict[str, Any]:
    return {"method": "post", "url": UPLOAD_URL, "files": {field: part}, **more}


def stored_bytes(attachment_id: int) -> bytes:
    with Attachment.objects.get(pk=attachment_id).file.open("rb") as handle:
        return handle.read()


def assert_stored_name(attachment_id: int, original: str, media_root: Path) -> None:
    """The stored file keeps the original name (Django may add a ``_xxxxxxx`` suffix)."""
    stored = Attachment.objects.get(pk=attachment_id).file
    stem, dot, ext = original.rpartition(".")
    assert re.fullmatch(rf"attachments/{re.escape(stem)}(_\w{{7}})?{re.escape(dot + ext)}",
                        stored.name), stored.name
    assert Path(stored.path).is_relative_to(media_root)


def errors_of(response) -> list[tuple[int | None, str | None]]:
    assert response.status_code == 400, response.content
    return [(e["index"], e["field"]) for e in response.json()["errors"]]


def nothing_stored(media_root: Path) -> bool:
    return not Attachment.objects.exists() and not any(p.is_file() for p in media_root.rglob("*"))


# --- uploads that work ----------------------------------------------------------------------


def test_upload_through_drf_view(executor: None, alice_token: str, media_root: Path) -> None:
    items = multipart_items(Client(), [upload_item()], {"upload": upload()}, **token(alice_token))
    assert items[0]["status_code"] == 201, items[0]
    data = json.loads(items[0]["body"])
    assert data["name"] == "notes.txt"
    assert data["size"] == len(b"hello file")
    assert stored_bytes(data["id"]) == b"hello file"
    assert_stored_name(data["id"], "notes.txt", media_root)
    assert Attachment.objects.get(pk=data["id"]).article is None


def test_body_object_fields_arrive_as_form_fields(executor: None, articles: list[Article],
                                                  alice_token: str) -> None:
    item = upload_item(body={"article": articles[1].pk})
    items = multipart_items(Client(), [item], {"upload": upload()}, **token(alice_token))
    assert items[0]["status_code"] == 201, items[0]
    attachment = Attachment.objects.get(pk=json.loads(items[0]["body"])["id"])
    assert attachment.article == articles[1]


def test_body_field_reaches_view_validation(executor: None, alice_token: str) -> None:
    """The form field is really passed on: an unknown article id makes the view answer 400."""
    item = upload_item(body={"article": 999999})
    items = multipart_items(Client(), [item], {"upload": upload()}, **token(alice_token))
    assert items[0]["status_code"] == 400
    assert json.loads(items[0]["body"]) == {"article": ["Unknown article."]}
    assert not Attachment.objects.exists()


def test_batch_part_may_be_a_file_part(executor: None, alice_token: str) -> None:
    response = post_multipart(Client(), [upload_item()], {"upload": upload()},
                              batch_as_file=True, **token(alice_token))
    assert response.status_code == 200, response.content
    item = response.json()["batch"][0]
    assert item["status_code"] == 201, item
    assert stored_bytes(json.loads(item["body"])["id"]) == b"hello file"


def test_top_level_fields_of_the_batch_part_apply(executor: None, articles: list[Article],
                                                  alice_token: str) -> None:
    """The "batch" part holds the whole document: "atomic" rolls the upload back."""
    document = {"atomic": True, "batch": [
        upload_item(body={"article": articles[0].pk}),
        {"method": "post", "url": "/api/articles/", "body": {"title": ""}},
    ]}
    response = post_multipart(Client(), document, {"upload": upload()}, **token(alice_token))
    assert response.status_code == 200, response.content
    body = response.json()
    assert [i["status_code"] for i in body["batch"]] == [201, 400]
    assert body["atomic"] == {"committed": False, "failed_index": 1}
    assert not Attachment.objects.exists()


def test_one_part_used_by_two_items(executor: None, alice_token: str) -> None:
    content = b"shared part content\n" * 50
    items = multipart_items(Client(), [upload_item(), upload_item()],
                            {"upload": upload("shared.txt", content)}, **token(alice_token))
    assert [i["status_code"] for i in items] == [201, 201], items
    ids = [json.loads(i["body"])["id"] for i in items]
    assert len(set(ids)) == 2
    assert [stored_bytes(pk) for pk in ids] == [content, content]
    assert [json.loads(i["body"])["size"] for i in items] == [len(content)] * 2


def test_several_parts_go_to_their_items(executor: None, alice_token: str) -> None:
    parts = {"first": upload("one.txt", b"111"), "second": upload("two.txt", b"22222")}
    items = multipart_items(Client(), [upload_item("second"), upload_item("first")], parts,
                            **token(alice_token))
    bodies = [json.loads(i["body"]) for i in items]
    assert [(b["name"], b["size"]) for b in bodies] == [("two.txt", 5), ("one.txt", 3)]
    assert [stored_bytes(b["id"]) for b in bodies] == [b"22222", b"111"]


def test_binary_file_survives_byte_for_byte(executor: None, alice_token: str,
                                            media_root: Path) -> None:
    content = bytes(range(256)) * 4 + b"\r\n--not-a-boundary\r\n" + bytes(range(256))
    part = upload("blob.bin", content, "application/octet-stream")
    items = multipart_items(Client(), [upload_item()], {"upload": part}, **token(alice_token))
    assert items[0]["status_code"] == 201, items[0]
    data = json.loads(items[0]["body"])
    assert data["size"] == len(content)
    assert stored_bytes(data["id"]) == content
    assert_stored_name(data["id"], "blob.bin", media_root)


def test_large_file_spooled_to_disk_survives(executor: None, alice_token: str,
                                             settings: Any) -> None:
    """Larger than FILE_UPLOAD_MAX_MEMORY_SIZE and DATA_UPLOAD_MAX_MEMORY_SIZE: still whole."""
    size = max(settings.FILE_UPLOAD_MAX_MEMORY_SIZE, settings.DATA_UPLOAD_MAX_MEMORY_SIZE) + 4097
    content = (bytes(range(256)) * (size // 256 + 1))[:size]
    part = upload("big.bin", content, "application/octet-stream")
    items = multipart_items(Client(), [upload_item()], {"upload": part}, **token(alice_token))
    assert items[0]["status_code"] == 201, items[0]
    data = json.loads(items[0]["body"])
    assert data["size"] == size
    assert stored_bytes(data["id"]) == content


def test_non_ascii_filename_is_kept(executor: None, alice_token: str,
                                    media_root: Path) -> None:
    client = Client()
    direct = client.post(UPLOAD_URL, {"file": upload("résumé.txt")}, **token(alice_token))
    items = multipart_items(client, [upload_item()], {"upload": upload("résumé.txt")},
                            **token(alice_token))
    data = json.loads(items[0]["body"])
    assert data["name"] == direct.json()["name"] == "résumé.txt"
    assert_stored_name(data["id"], "résumé.txt", media_root)


def test_plain_django_view_sees_request_files_and_post(executor: None) -> None:
    """``/views/echo/`` is a plain (csrf-exempt) Django view reading request.POST/FILES."""
    item = {"method": "post", "url": "/views/echo/", "files": {"doc": "upload"},
            "body": {"k": ["1", "2"], "text": "héllo", "n": 5, "flag": True}}
    items = multipart_items(Client(), [item], {"upload": upload("a.txt", b"12345")})
    assert items[0]["status_code"] == 200, items[0]
    data = json.loads(items[0]["body"])
    assert data["method"] == "POST"
    assert data["content_type"] == "multipart/form-data"
    assert data["files"] == {"doc": {"name": "a.txt", "size": 5}}
    assert data["post"] == {"k": ["1", "2"], "text": ["héllo"], "n": ["5"], "flag": ["true"]}
    # Filename and content type of the part are passed on in the sub-request's body.
    raw = data["body"].lower()
    assert 'filename="a.txt"' in raw
    assert "content-type: text/plain" in raw


def test_content_type_of_the_part_is_kept(executor: None) -> None:
    item = {"method": "put", "url": "/views/echo/", "files": {"img": "picture"}}
    part = upload("pixel.png", b"\x89PNG\r\n\x1a\nfake", "image/png")
    data = json.loads(multipart_items(Client(), [item], {"picture": part})[0]["body"])
    assert data["method"] == "PUT"
    assert data["content_type"] == "multipart/form-data"
    assert "content-type: image/png" in data["body"].lower()


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_files_allowed_on_post_put_patch(method: str, executor: None) -> None:
    item = {"method": method, "url": "/views/echo/", "files": {"f": "upload"}}
    data = json.loads(multipart_items(Client(), [item], {"upload": upload()})[0]["body"])
    assert data["method"] == method.upper()
    assert data["content_type"] == "multipart/form-data"
    # Django parses multipart bodies into request.FILES only for POST; PUT/PATCH get the body.
    if method == "post":
        assert data["files"] == {"f": {"name": "notes.txt", "size": 10}}
    assert "hello file" in data["body"]


def test_multipart_batch_mixes_file_and_plain_items(executor: None, alice_token: str) -> None:
    items = multipart_items(Client(), [
        {"method": "get", "url": "/api/me/"},
        upload_item(),
        {"method": "post", "url": "/api/articles/", "body": {"title": "beside an upload"}},
        {"method": "get", "url": "/views/"},
    ], {"upload": upload()}, **token(alice_token))
    assert [i["status_code"] for i in items] == [200, 201, 201, 200]
    assert json.loads(items[0]["body"])["username"] == "alice"
    assert Article.objects.filter(title="beside an upload").exists()
    assert items[3]["body"] == "Success!"


def test_upload_needs_credentials_like_a_direct_request(executor: None, alice: Any) -> None:
    direct = Client().post(UPLOAD_URL, {"file": upload()})
    items = multipart_items(Client(), [upload_item()], {"upload": upload()})
    assert items[0]["status_code"] == direct.status_code
    assert direct.status_code in (401, 403)
    assert not Attachment.objects.exists()


def test_reference_in_a_form_field_of_an_upload(executor: None, alice_token: str) -> None:
    """Section A and B together: upload an attachment to the article the batch just made."""
    items = multipart_items(Client(), [
        upload_item(body={"article": "{result=create:$.id}"}),
        {"method": "post", "url": "/api/articles/", "body": {"title": "with file"},
         "name": "create"},
    ], {"upload": upload()}, **token(alice_token))
    assert [i["status_code"] for i in items] == [201, 201], items
    attachment = Attachment.objects.get(pk=json.loads(items[0]["body"])["id"])
    assert attachment.article == Article.objects.get(title="with file")
    assert stored_bytes(attachment.pk) == b"hello file"


@pytest.mark.parametrize("other", [
    pytest.param(
        {"EXECUTE_PARALLEL": True,
         "CONCURRENT_EXECUTOR": "batch_requests.concurrent.executor.AsyncExecutor"},
        id="async"),
    pytest.param(
        {"EXECUTE_PARALLEL": True, "NUM_WORKERS": 2,
         "CONCURRENT_EXECUTOR": "batch_requests.concurrent.executor.ProcessBasedExecutor"},
        id="processes"),
])
@pytest.mark.django_db(transaction=True)
def test_upload_under_async_and_process_executors(other: dict[str, Any], settings: Any,
                                                  alice_token: str) -> None:
    """The files travel with the sub-request, across a process boundary too."""
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, **other}
    content = bytes(range(256))
    echo = {"method": "post", "url": "/views/echo/", "files": {"f": "upload"},
            "body": {"k": ["1", "2"]}}
    items = multipart_items(Client(), [upload_item(), upload_item(), echo],
                            {"upload": upload("blob.bin", content, "application/octet-stream")},
                            **token(alice_token))
    assert [i["status_code"] for i in items] == [201, 201, 200], items
    ids = [json.loads(i["body"])["id"] for i in items[:2]]
    assert [stored_bytes(pk) for pk in ids] == [content, content]
    echoed = json.loads(items[2]["body"])
    assert echoed["files"] == {"f": {"name": "blob.bin", "size": 256}}
    assert echoed["post"] == {"k": ["1", "2"]}


# --- equivalence with direct requests -------------------------------------------------------


def test_upload_answers_like_a_direct_request(executor: None, articles: list[Article],
                                              alice_token: str) -> None:
    client = Client()
    direct = client.post(UPLOAD_URL, {"file": upload(), "article": articles[0].pk},
                         **token(alice_token))
    items = multipart_items(client, [upload_item(body={"article": articles[0].pk})],
                            {"upload": upload()}, **token(alice_token))
    assert items[0]["status_code"] == direct.status_code == 201
    assert items[0]["reason_phrase"] == direct.reason_phrase
    assert items[0]["headers"]["Content-Type"] == direct["Content-Type"]
    direct_body, batch_body = direct.json(), json.loads(items[0]["body"])
    assert set(batch_body) == set(direct_body) == {"id", "name", "size"}
    assert {k: batch_body[k] for k in ("name", "size")} == \
        {k: direct_body[k] for k in ("name", "size")}
    assert batch_body["id"] != direct_body["id"]
    assert stored_bytes(batch_body["id"]) == stored_bytes(direct_body["id"])
    assert Attachment.objects.get(pk=batch_body["id"]).article == articles[0]


def test_missing_file_answers_like_a_direct_request(executor: None, alice_token: str) -> None:
    """The part reaches the view under the item's field name, not the part's name."""
    client = Client()
    direct = client.post(UPLOAD_URL, {"attachment": upload()}, **token(alice_token))
    items = multipart_items(client, [upload_item(field="attachment")], {"upload": upload()},
                            **token(alice_token))
    assert items[0]["status_code"] == direct.status_code == 400
    assert json.loads(items[0]["body"]) == direct.json() == {"file": ["No file was submitted."]}


def test_echo_answers_like_a_direct_request(executor: None) -> None:
    client = Client()
    fields = {"k": ["1", "2"], "single": "x"}
    direct = client.post("/views/echo/", {**fields, "f": upload("a.txt", b"12345")}).json()
    item = {"method": "post", "url": "/views/echo/", "files": {"f": "part"}, "body": fields}
    batched = json.loads(multipart_items(client, [item], {"part": upload("a.txt", b"12345")})
                         [0]["body"])
    for key in ("method", "content_type", "post", "files"):
        assert batched[key] == direct[key], key


# --- refused batches: 400, nothing runs ------------------------------------------------------


def test_files_in_a_json_batch(db: None, alice_token: str) -> None:
    response = post_batch(Client(), [
        {"method": "post", "url": "/api/articles/", "body": {"title": "must not run"}},
        upload_item(),
    ], **token(alice_token))
    assert errors_of(response) == [(1, "files")]
    assert not Article.objects.filter(title="must not run").exists()


def test_unknown_part_name(db: None, alice_token: str, media_root: Path) -> None:
    response = post_multipart(Client(), [upload_item(), upload_item("missing")],
                              {"upload": upload()}, **token(alice_token))
    assert errors_of(response) == [(1, "files.file")]
    assert nothing_stored(media_root)


@pytest.mark.parametrize("files", ["upload", ["upload"], 5, True], ids=repr)
def test_files_not_an_object(files: Any, db: None, alice_token: str, media_root: Path) -> None:
    item = {"method": "post", "url": UPLOAD_URL, "files": files}
    response = post_multipart(Client(), [upload_item(), item], {"upload": upload()},
                              **token(alice_token))
    assert errors_of(response) == [(1, "files")]
    assert nothing_stored(media_root)


@pytest.mark.parametrize("value", [5, None, ["upload"], {"part": "upload"}], ids=repr)
def test_files_values_not_strings(value: Any, db: None, alice_token: str,
                                  media_root: Path) -> None:
    item = {"method": "post", "url": UPLOAD_URL, "files": {"file": value}}
    response = post_multipart(Client(), [upload_item(), item], {"upload": upload()},
                              **token(alice_token))
    # The contract names no field for a bad value: the item's "files" or the entry in it.
    [(index, field)] = errors_of(response)
    assert index == 1
    assert field in ("files", "files.file")
    assert nothing_stored(media_root)


def test_files_with_a_string_body(db: None, alice_token: str, media_root: Path) -> None:
    item = upload_item(body="article=1")
    response = post_multipart(Client(), [upload_item(), item], {"upload": upload()},
                              **token(alice_token))
    assert errors_of(response) == [(1, "body")]
    assert nothing_stored(media_root)


@pytest.mark.parametrize("header", ["Content-Type", "content-type"])
def test_files_with_a_content_type_header(header: str, db: None, alice_token: str,
                                          media_root: Path) -> None:
    item = upload_item(headers={header: "multipart/form-data; boundary=x"})
    response = post_multipart(Client(), [upload_item(), item], {"upload": upload()},
                              **token(alice_token))
    assert errors_of(response) == [(1, f"headers.{header}")]
    assert nothing_stored(media_root)


@pytest.mark.parametrize("method", ["get", "delete", "head", "options"])
def test_files_on_a_method_without_form_body(method: str, db: None, alice_token: str,
                                             media_root: Path) -> None:
    item = {"method": method, "url": "/views/echo/", "files": {"f": "upload"}}
    response = post_multipart(Client(), [upload_item(), item], {"upload": upload()},
                              **token(alice_token))
    assert errors_of(response) == [(1, "files")]
    assert nothing_stored(media_root)


def test_multipart_batch_without_batch_part(db: None, alice_token: str,
                                            media_root: Path) -> None:
    response = Client().post(BATCH_URL, {"upload": upload()}, **token(alice_token))
    assert errors_of(response) == [(None, "batch")]
    assert nothing_stored(media_root)


def test_extra_non_file_form_field(db: None, alice_token: str, media_root: Path) -> None:
    response = post_multipart(Client(), [upload_item()],
                              {"upload": upload(), "article": "1"}, **token(alice_token))
    assert errors_of(response) == [(None, "article")]
    assert nothing_stored(media_root)


@pytest.mark.parametrize("batch_as_file", [False, True], ids=["field", "file"])
def test_batch_part_not_valid_json(batch_as_file: bool, db: None, alice_token: str,
                                   media_root: Path) -> None:
    response = post_multipart(Client(), '{"batch": [', {"upload": upload()},
                              batch_as_file=batch_as_file, **token(alice_token))
    # The error names the part the document came from, not the request body.
    assert errors_of(response) == [(None, "batch")]
    assert "'batch' part is not valid JSON" in response.json()["errors"][0]["message"]
    assert nothing_stored(media_root)


def test_every_item_problem_is_reported_at_once(db: None, alice_token: str,
                                                media_root: Path) -> None:
    response = post_multipart(Client(), [
        upload_item("missing"),
        upload_item(body="a string"),
        {"method": "get", "url": "/views/echo/", "files": {"f": "upload"}},
        upload_item(),
    ], {"upload": upload()}, **token(alice_token))
    assert errors_of(response) == [(0, "files.file"), (1, "body"), (2, "files")]
    assert nothing_stored(media_root)


# --- CSRF: a session-authenticated multipart batch ------------------------------------------


@pytest.fixture
def browser(alice: Any) -> Client:
    """A logged-in browser session that enforces CSRF like a real one."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.cookies[django_settings.CSRF_COOKIE_NAME] = CSRF_SECRET
    return client


def test_session_multipart_batch_without_csrf_token_stores_nothing(browser: Client,
                                                                   media_root: Path) -> None:
    # No batch-level gate without references: the item meets DRF's SessionAuthentication,
    # which refuses it (403) exactly as it would refuse the same upload sent directly.
    response = post_multipart(browser, [upload_item()], {"upload": upload()})
    assert response.status_code == 200, response.content
    item = response.json()["batch"][0]
    assert item["status_code"] == 403 and "CSRF" in item["body"]
    assert nothing_stored(media_root)


def test_session_multipart_batch_with_csrf_header(executor: None, browser: Client) -> None:
    items = multipart_items(browser, [upload_item()], {"upload": upload()},
                            HTTP_X_CSRFTOKEN=CSRF_SECRET)
    # The CSRF header goes on to the sub-request, so DRF's SessionAuthentication accepts it.
    assert items[0]["status_code"] == 201, items[0]
    assert stored_bytes(json.loads(items[0]["body"])["id"]) == b"hello file"


def test_session_multipart_batch_with_csrf_form_field(executor: None, browser: Client) -> None:
    # The batch proves itself with the csrfmiddlewaretoken form field, as an HTML form does;
    # the item carries its own token as a form field of its sub-request, as a direct form would.
    item = upload_item(body={"csrfmiddlewaretoken": CSRF_SECRET})
    items = multipart_items(browser, [item],
                            {"upload": upload(), "csrfmiddlewaretoken": CSRF_SECRET})
    assert items[0]["status_code"] == 201, items[0]
    assert stored_bytes(json.loads(items[0]["body"])["id"]) == b"hello file"


def test_session_item_without_token_is_refused_like_a_direct_request(executor: None,
                                                                     browser: Client) -> None:
    """Batch-level token in the form only: the item itself has none, so DRF says 403."""
    direct = browser.post(UPLOAD_URL, {"file": upload()})
    items = multipart_items(browser, [upload_item()],
                            {"upload": upload(), "csrfmiddlewaretoken": CSRF_SECRET})
    assert items[0]["status_code"] == direct.status_code == 403
    assert not Attachment.objects.exists()
