"""The README's install steps, followed in a project made by ``startproject``.

A new user's project: ``startproject``, a small DRF app, ``batch_requests`` added to
INSTALLED_APPS and its view routed, DEBUG off, served by real gunicorn and uvicorn; then
batched GETs and POSTs with a token and with a logged-in session.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.live import _wait_for_port, free_port

pytestmark = pytest.mark.server

SETTINGS_TAIL = """
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
MEDIA_ROOT = BASE_DIR / "media"
INSTALLED_APPS += ["rest_framework", "rest_framework.authtoken", "batch_requests", "notes"]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
"""

MODELS = """
from django.conf import settings
from django.db import models


class Note(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    text = models.CharField(max_length=100)
    attachment = models.FileField(upload_to="notes/", blank=True)
"""

VIEWS = """
from rest_framework import parsers, serializers, viewsets

from .models import Note


class NoteSerializer(serializers.ModelSerializer):
    owner = serializers.ReadOnlyField(source="owner.username")

    class Meta:
        model = Note
        fields = ["id", "text", "owner", "attachment"]


class NoteViewSet(viewsets.ModelViewSet):
    serializer_class = NoteSerializer
    parser_classes = [parsers.JSONParser, parsers.MultiPartParser]

    def get_queryset(self):
        return Note.objects.filter(owner=self.request.user).order_by("id")

    def perform_create(self, serializer):
        serializer.save(owner=self.request.user)
"""

URLS = """
from django.contrib import admin
from django.urls import include, path
from rest_framework.routers import DefaultRouter

from batch_requests.views import handle_batch_requests
from notes.views import NoteViewSet

router = DefaultRouter()
router.register("notes", NoteViewSet, basename="note")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/batch/", handle_batch_requests),
    path("api/", include(router.urls)),
]
"""

USER = """
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
user = User.objects.create_superuser("carol", "carol@example.com", "carol-password")
print(Token.objects.create(user=user).key)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict[str, str], str]:
    root = tmp_path_factory.mktemp("fresh")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(root)
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, *args], cwd=root, env=env, check=True, capture_output=True,
        text=True, timeout=120).stdout
    run("-m", "django", "startproject", "mysite", ".")
    with open(root / "mysite" / "settings.py", "a") as fh:
        fh.write(SETTINGS_TAIL)
    notes = root / "notes"
    notes.mkdir()
    (notes / "__init__.py").write_text("")
    (notes / "models.py").write_text(MODELS)
    (notes / "views.py").write_text(VIEWS)
    (root / "mysite" / "urls.py").write_text(URLS)
    run("manage.py", "makemigrations", "notes")
    run("manage.py", "migrate", "--noinput")
    token = run("manage.py", "shell", "-c", USER).split()[-1]
    return root, env, token


@pytest.fixture(params=["gunicorn", "uvicorn"])
def url(request, project) -> str:
    root, env, _token = project
    port = free_port()
    command = {
        "gunicorn": ["-m", "gunicorn", "mysite.wsgi:application", "--bind",
                     f"127.0.0.1:{port}", "--threads", "4"],
        "uvicorn": ["-m", "uvicorn", "mysite.asgi:application", "--host", "127.0.0.1",
                    "--port", str(port)],
    }[request.param]
    proc = subprocess.Popen([sys.executable, *command], cwd=root, env=env,
                            start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)


def test_check_passes(project) -> None:
    root, env, _token = project
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_token_batch(project, url) -> None:
    token = project[2]
    response = requests.post(f"{url}/api/v1/batch/", timeout=30,
                             headers={"Authorization": f"Token {token}"}, json={"batch": [
                                 {"method": "post", "url": "/api/notes/", "body": {"text": "a"}},
                                 {"method": "post", "url": "/api/notes/", "body": {"text": "b"}},
                                 {"method": "get", "url": "/api/notes/"},
                             ]})
    assert response.status_code == 200, response.text
    created_a, created_b, listing = response.json()["batch"]
    assert (created_a["status_code"], created_b["status_code"]) == (201, 201)
    assert [n["text"] for n in requests.compat.json.loads(listing["body"])][-2:] == ["a", "b"]


def test_session_batch(url) -> None:
    with requests.Session() as http:
        http.get(f"{url}/admin/login/", timeout=10)
        http.post(f"{url}/admin/login/?next=/admin/", timeout=10, data={
            "username": "carol", "password": "carol-password",
            "csrfmiddlewaretoken": http.cookies["csrftoken"]})
        assert "sessionid" in http.cookies
        items = {"batch": [{"method": "post", "url": "/api/notes/", "body": {"text": "s"}},
                           {"method": "get", "url": "/api/notes/"}]}
        # No token: the write is refused by DRF's SessionAuthentication, as directly.
        refused = http.post(f"{url}/api/v1/batch/", json=items, timeout=30)
        assert refused.status_code == 200, refused.text
        assert [i["status_code"] for i in refused.json()["batch"]] == [403, 200]
        response = http.post(f"{url}/api/v1/batch/", json=items, timeout=30,
                             headers={"X-CSRFToken": http.cookies["csrftoken"]})
    assert response.status_code == 200, response.text
    created, listing = response.json()["batch"]
    assert created["status_code"] == 201
    assert '"owner":"carol"' in listing["body"].replace(" ", "")


def test_dependencies_and_uploads(project, url) -> None:
    """Named requests, references, a failed dependency and a multipart batch, over HTTP."""
    auth = {"Authorization": f"Token {project[2]}"}
    response = requests.post(f"{url}/api/v1/batch/", timeout=30, headers=auth, json={"batch": [
        {"method": "get", "url": "/api/notes/{result=new:$.id}/"},
        {"name": "new", "method": "post", "url": "/api/notes/", "body": {"text": "dep"}},
        {"name": "gone", "method": "get", "url": "/api/notes/999999/"},
        {"method": "get", "url": "/api/notes/", "depends_on": "gone"},
    ]})
    assert response.status_code == 200, response.text
    read, new, gone, skipped = response.json()["batch"]
    assert (new["name"], new["status_code"], read["status_code"]) == ("new", 201, 200)
    assert requests.compat.json.loads(read["body"])["text"] == "dep"
    assert (gone["status_code"], skipped["status_code"]) == (404, 424)
    document = {"batch": [{"method": "post", "url": "/api/notes/", "body": {"text": "filed"},
                           "files": {"attachment": "doc"}}]}
    response = requests.post(f"{url}/api/v1/batch/", timeout=30, headers=auth,
                             data={"batch": requests.compat.json.dumps(document)},
                             files={"doc": ("hello.txt", b"hello", "text/plain")})
    assert response.status_code == 200, response.text
    [filed] = response.json()["batch"]
    assert filed["status_code"] == 201, filed["body"]
    attachment = requests.compat.json.loads(filed["body"])["attachment"]
    assert attachment.rsplit("/", 1)[-1].startswith("hello")
    missing = requests.post(f"{url}/api/v1/batch/", timeout=30, headers=auth,
                            data={"batch": requests.compat.json.dumps(document)},
                            files={"other": ("x.txt", b"x")})
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["field"] == "files.attachment"
