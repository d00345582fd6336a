"""The OpenAPI schema of the batch endpoint (batch_requests.schema, with drf-spectacular).

Real requests through the demo project are checked against the document the project serves,
with openapi-core; and drf-spectacular stays optional for the app itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpRequest, JsonResponse
from django.test import Client, RequestFactory
from django.urls import include, path, re_path

from batch_requests.views import handle_batch_requests
from tests.helpers import BATCH_URL, post_batch

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db
COMPONENTS = {"BatchRequest", "BatchRequestItem", "BatchResponse", "BatchResponseItem",
              "BatchErrors"}


@pytest.fixture
def document(client: Client) -> dict[str, Any]:
    """The schema the demo project serves at /api/schema/."""
    pytest.importorskip("drf_spectacular")
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def openapi(document: dict[str, Any]):
    """openapi-core's view of the served document (checked as OpenAPI 3.0 on creation)."""
    openapi_core = pytest.importorskip("openapi_core")
    return openapi_core.OpenAPI.from_dict(document)


def validate_exchange(openapi, response) -> None:
    """Validate the batch request the test client sent and the response it got."""
    from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse

    request = DjangoOpenAPIRequest(response.wsgi_request)
    openapi.validate_request(request)
    openapi.validate_response(request, DjangoOpenAPIResponse(response))


def batch_request(payload: Any) -> HttpRequest:
    """A batch request that is only validated, never sent."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return RequestFactory().post(BATCH_URL, body, content_type="application/json")


def validate_document(openapi, payload: Any) -> None:
    from openapi_core.contrib.django import DjangoOpenAPIRequest

    openapi.validate_request(DjangoOpenAPIRequest(batch_request(payload)))


# (a) The document -----------------------------------------------------------------------------


def test_served_document_is_valid_and_describes_the_batch_endpoint(document):
    from drf_spectacular.validation import validate_schema

    validate_schema(document)  # raises on an invalid OpenAPI 3.0 document
    operations = document["paths"][BATCH_URL]
    assert set(operations) == {"post"}
    post = operations["post"]
    assert post["tags"] == ["batch"]
    assert post["operationId"] == "api_v1_batch_create"
    assert set(post["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    multipart = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert multipart["required"] == ["batch"]
    assert post["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BatchResponse"}
    for status in ("400", "403", "405", "413"):
        assert post["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/BatchErrors"}
    # The sub-requests take the caller's credentials, whichever the project accepts, or none.
    assert {"tokenAuth": []} in post["security"] and {} in post["security"]
    assert set(document["components"]["schemas"]) >= COMPONENTS
    # The hook adds to the document drf-spectacular made; the project's own views stay.
    assert "/api/articles/" in document["paths"]


def test_maximum_batch_size_follows_the_setting(client, settings):
    pytest.importorskip("drf_spectacular")
    settings.BATCH_REQUESTS = {"MAX_LIMIT": 7}
    schemas = client.get("/api/schema/?format=json").json()["components"]["schemas"]
    assert schemas["BatchRequest"]["properties"]["batch"]["maxItems"] == 7


def not_a_batch_view(request):  # pragma: no cover - never called
    raise AssertionError


def test_hook_finds_batch_views_under_prefixes_includes_and_converters():
    pytest.importorskip("drf_spectacular")
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    patterns = [
        path("teams/<slug:team>/", include([
            path("v2/", include([path("batch/", handle_batch_requests)])),
            path("other/", not_a_batch_view),
        ])),
        re_path(r"^legacy/(?P<version>\d+)/batch/$", handle_batch_requests),
        path("plain/", not_a_batch_view),
    ]
    document = SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)
    validate_schema(document)  # path parameters are declared
    assert set(document["paths"]) == {"/teams/{team}/v2/batch/", "/legacy/{version}/batch/"}
    post = document["paths"]["/teams/{team}/v2/batch/"]["post"]
    assert [(p["in"], p["name"]) for p in post["parameters"]] == [("path", "team")]
    operation_ids = {ops["post"]["operationId"] for ops in document["paths"].values()}
    assert len(operation_ids) == 2


# (b) Real batches against the document -------------------------------------------------------


def test_ordinary_batch_matches_the_schema(openapi, alice_token, articles):
    payload = {"on_error": "continue", "timeout": 30, "batch": [
        {"method": "get", "url": "/api/articles/"},
        {"method": "POST", "url": "/api/articles/", "body": {"title": "From a batch"}},
        {"method": "post", "url": "/views/echo/", "body": "plain text",
         "headers": {"Content-Type": "text/plain", "Accept-Language": "fr"}},
        {"method": "get", "url": "/no/such/page/"},
    ]}
    response = post_batch(Client(), payload, HTTP_AUTHORIZATION=f"Token {alice_token}")
    assert response.status_code == 200
    items = response.json()["batch"]
    assert [item["status_code"] for item in items] == [200, 201, 200, 404]
    validate_exchange(openapi, response)


def test_base64_and_deserialized_bodies_match_the_schema(openapi, alice_token, articles,
                                                         settings):
    settings.BATCH_REQUESTS = {"DESERIALIZE_RESPONSES": True}
    response = post_batch(Client(), [
        {"method": "get", "url": "/views/binary/"},
        {"method": "get", "url": f"/api/articles/{articles[0].pk}/"},
        {"method": "get", "url": "/api/articles/"},
    ], HTTP_AUTHORIZATION=f"Token {alice_token}")
    binary, one, many = response.json()["batch"]
    assert binary["body_encoding"] == "base64"
    assert isinstance(one["body"], dict) and isinstance(many["body"], list)
    validate_exchange(openapi, response)


@pytest.mark.parametrize(("second_title", "committed", "failed_index"),
                         [("Fine too", True, None), ("", False, 1)])
def test_atomic_batch_matches_the_schema(openapi, alice_token, articles, second_title,
                                         committed, failed_index):
    response = post_batch(Client(), {"atomic": True, "batch": [
        {"method": "post", "url": "/api/articles/", "body": {"title": "Atomic"}},
        {"method": "post", "url": "/api/articles/", "body": {"title": second_title}},
        {"method": "get", "url": "/api/articles/"},
    ]}, HTTP_AUTHORIZATION=f"Token {alice_token}")
    assert response.status_code == 200
    assert response.json()["atomic"] == {"committed": committed, "failed_index": failed_index}
    validate_exchange(openapi, response)


def test_refused_batch_matches_the_schema(openapi, alice_token):
    # Valid for the schema, refused by the server: a batch may not contain a batch.
    response = post_batch(Client(), [{"method": "get", "url": "/api/me/"},
                                     {"method": "post", "url": BATCH_URL, "body": {"batch": []}}],
                          HTTP_AUTHORIZATION=f"Token {alice_token}")
    assert response.status_code == 400
    assert response.json()["errors"][0]["index"] == 1
    validate_exchange(openapi, response)


def test_a_refusal_with_more_than_twenty_problems_matches_the_schema(openapi, settings):
    settings.BATCH_REQUESTS = {**settings.BATCH_REQUESTS, "MAX_LIMIT": 25}
    response = post_batch(Client(), [{"method": "fetch", "url": "/api/ping/"}] * 25)
    assert response.status_code == 400
    body = response.json()
    assert len(body["errors"]) == 20 and body["more_errors"] == 5
    # The request is invalid by design, so only the response is validated.
    from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse

    openapi.validate_response(DjangoOpenAPIRequest(batch_request({"batch": []})),
                              DjangoOpenAPIResponse(response))


def test_csrf_refusal_matches_the_schema(openapi, alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    # A batch with references and cookies must pass the CSRF check itself.
    response = post_batch(client, [{"method": "get", "url": "/api/me/", "name": "me"},
                                   {"method": "get", "url": "/api/articles/?u={result=me:$.id}"}])
    assert response.status_code == 403
    assert response.json()["errors"][0]["index"] is None
    validate_exchange(openapi, response)


def test_too_large_batch_matches_the_schema(openapi, settings):
    from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64
    response = post_batch(Client(), [{"method": "get", "url": "/api/ping/?" + "x" * 100}])
    assert response.status_code == 413
    # The body is too large to be read again, so only the response is validated.
    openapi.validate_response(DjangoOpenAPIRequest(batch_request({"batch": []})),
                              DjangoOpenAPIResponse(response))


def test_wrong_method_answers_the_documented_error_shape(document):
    from openapi_schema_validator import OAS30Validator

    response = Client().get(BATCH_URL)
    assert response.status_code == 405 and response["Allow"] == "POST"
    errors = {"$ref": "#/components/schemas/BatchErrors", "components": document["components"]}
    OAS30Validator(errors).validate(response.json())


def test_named_batch_with_dependencies_matches_the_schema(openapi, alice_token, articles):
    response = post_batch(Client(), {"on_error": "continue", "batch": [
        {"method": "post", "url": "/api/articles/", "body": {"title": "Named"}, "name": "create"},
        {"method": "get", "url": "/api/articles/{result=create:$.id}/", "name": "read.1",
         "depends_on": "create", "omit_response_on_success": True},
        {"method": "post", "url": "/api/articles/", "body": {"title": ""}, "name": "bad"},
        {"method": "get", "url": "/api/articles/", "depends_on": ["read.1", "bad"]},
    ]}, HTTP_AUTHORIZATION=f"Token {alice_token}")
    assert response.status_code == 200, response.content
    created, read, bad, blocked = response.json()["batch"]
    assert (created["name"], created["status_code"]) == ("create", 201)
    assert read["name"] == "read.1" and read["status_code"] == 200 and "body" not in read
    assert bad["status_code"] == 400 and blocked["status_code"] == 424
    validate_exchange(openapi, response)


def test_multipart_batch_matches_the_schema(openapi, alice_token, articles):
    from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse

    document = {"batch": [{"method": "post", "url": "/api/attachments/",
                           "files": {"file": "upload"}, "body": {"article": articles[0].pk}}]}

    def form() -> dict[str, Any]:
        return {"batch": json.dumps(document), "upload": SimpleUploadedFile(
            "a.bin", b"\x00\x01", content_type="application/octet-stream")}

    response = Client().post(BATCH_URL, form(), HTTP_AUTHORIZATION=f"Token {alice_token}")
    assert response.status_code == 200, response.content
    assert response.json()["batch"][0]["status_code"] == 201
    # The view has read the parts, so the same form is validated on a request of its own.
    request = DjangoOpenAPIRequest(RequestFactory().post(BATCH_URL, form()))
    assert request.content_type.startswith("multipart/form-data")
    openapi.validate_request(request)
    openapi.validate_response(request, DjangoOpenAPIResponse(response))
    validate_document(openapi, document)  # what the "batch" part holds is a BatchRequest


# (c) Negative controls: the schema does reject what is wrong ----------------------------------

MALFORMED = {
    "batch not a list": {"batch": {"method": "get", "url": "/"}},
    "empty batch": {"batch": []},
    "no batch": {"requests": [{"method": "get", "url": "/"}]},
    "unknown top-level field": {"batch": [{"method": "get", "url": "/"}], "verbose": True},
    "atomic not a boolean": {"batch": [{"method": "get", "url": "/"}], "atomic": "yes"},
    "unknown on_error": {"batch": [{"method": "get", "url": "/"}], "on_error": "halt"},
    "zero timeout": {"batch": [{"method": "get", "url": "/"}], "timeout": 0},
    "item not an object": {"batch": ["GET /"]},
    "missing url": {"batch": [{"method": "get"}]},
    "unknown method": {"batch": [{"method": "FETCH", "url": "/"}]},
    "unknown item field": {"batch": [{"method": "get", "url": "/", "data": {}}]},
    "number body": {"batch": [{"method": "post", "url": "/", "body": 5}]},
    "number header": {"batch": [{"method": "get", "url": "/", "headers": {"X-A": 1}}]},
    "bad name": {"batch": [{"method": "get", "url": "/", "name": "has space"}]},
    "number depends_on": {"batch": [{"method": "get", "url": "/", "depends_on": 5}]},
    "files not strings": {"batch": [{"method": "post", "url": "/", "files": {"file": 5}}]},
}


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
def test_schema_rejects_malformed_batches(openapi, payload):
    from openapi_core.validation.request.exceptions import InvalidRequestBody

    with pytest.raises(InvalidRequestBody):
        validate_document(openapi, payload)
    # ... and so does the server, before anything runs.
    assert post_batch(Client(), payload).status_code == 400


def test_schema_rejects_a_multipart_batch_without_its_batch_part(openapi):
    from openapi_core.contrib.django import DjangoOpenAPIRequest
    from openapi_core.validation.request.exceptions import InvalidRequestBody

    request = RequestFactory().post(BATCH_URL, {"upload": SimpleUploadedFile("a.txt", b"a")})
    with pytest.raises(InvalidRequestBody):
        openapi.validate_request(DjangoOpenAPIRequest(request))


@pytest.mark.parametrize("item", [
    {"status_code": "200", "reason_phrase": "OK", "headers": {}, "body": ""},
    {"status_code": 200, "reason_phrase": "OK", "body": ""},
    {"status_code": 200, "reason_phrase": "OK", "headers": {}, "body_encoding": "hex"},
], ids=["string status", "no headers", "unknown encoding"])
def test_schema_rejects_malformed_responses(openapi, item):
    from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse
    from openapi_core.validation.response.exceptions import InvalidData

    with pytest.raises(InvalidData):
        openapi.validate_response(DjangoOpenAPIRequest(batch_request({"batch": []})),
                                  DjangoOpenAPIResponse(JsonResponse({"batch": [item]})))


def test_schema_rejects_malformed_errors(openapi):
    from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse
    from openapi_core.validation.response.exceptions import InvalidData

    with pytest.raises(InvalidData):
        openapi.validate_response(DjangoOpenAPIRequest(batch_request({"batch": []})),
                                  DjangoOpenAPIResponse(JsonResponse(
                                      {"errors": [{"message": "no index"}]}, status=400)))


# (d) The app without drf-spectacular ----------------------------------------------------------

def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_app_never_imports_drf_spectacular_by_itself():
    result = run_python(
        "import sys, django\n"
        "from django.conf import settings\n"
        "settings.configure(INSTALLED_APPS=['django.contrib.contenttypes',"
        " 'django.contrib.auth', 'batch_requests'])\n"
        "django.setup()\n"
        "import batch_requests.views, batch_requests.schema\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'drf_spectacular'))\n"
        "print('batch_requests.views' in sys.modules)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "True"]


def test_demo_project_runs_batches_without_drf_spectacular(tmp_path):
    # None in sys.modules makes find_spec() report the package missing and its import fail.
    result = run_python(
        "import json, os, sys\n"
        "sys.modules['drf_spectacular'] = None\n"
        f"os.environ['DJANGO_DB_NAME'] = {str(tmp_path / 'db.sqlite3')!r}\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'test_project.settings'\n"
        "import django\n"
        "django.setup()\n"
        "from django.conf import settings\n"
        "from django.test import Client\n"
        "from django.test.utils import setup_test_environment\n"
        "setup_test_environment()\n"
        "client = Client()\n"
        "batch = client.post('/api/v1/batch/', json.dumps({'batch': [{'method': 'get',"
        " 'url': '/api/ping/'}]}), content_type='application/json')\n"
        "print('drf_spectacular' in settings.INSTALLED_APPS,"
        " 'DEFAULT_SCHEMA_CLASS' in settings.REST_FRAMEWORK,"
        " client.get('/api/schema/').status_code, batch.status_code,"
        " batch.json()['batch'][0]['body'])\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "404", "200", '{"pong":true}']
