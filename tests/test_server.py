"""End to end over real HTTP: gunicorn (WSGI) and uvicorn (ASGI) with DEBUG off."""

from __future__ import annotations

import pytest
import requests

from tests.live import LiveSite, serve

pytestmark = pytest.mark.server


@pytest.fixture(scope="module", params=["gunicorn", "uvicorn"])
def site(request, tmp_path_factory) -> LiveSite:
    with serve(request.param, tmp_path_factory.mktemp(request.param)) as live:
        yield live


def _batch(session: requests.Session, site: LiveSite, items: list[dict], **headers: str):
    return session.post(f"{site.url}/api/v1/batch/", json={"batch": items}, headers=headers,
                        timeout=30)


def test_token_client_reads_and_writes(site: LiveSite) -> None:
    token = site.tokens["alice"]
    with requests.Session() as http:
        response = _batch(http, site, [
            {"method": "get", "url": "/api/me/"},
            {"method": "post", "url": "/api/articles/", "body": {"title": "over http"}},
            {"method": "get", "url": "/api/articles/?search=over+http"},
            {"method": "post", "url": "/views/csrf-protected/", "body": {}},
        ], Authorization=f"Token {token}")
    assert response.status_code == 200, response.text
    assert "batch_requests.duration" in response.headers
    assert "sub3;dur=" in response.headers["Server-Timing"]
    items = response.json()["batch"]
    assert [i["status_code"] for i in items] == [200, 201, 200, 403]
    assert '"username":"alice"' in items[0]["body"].replace(" ", "")
    assert "over http" in items[2]["body"]


def test_session_client_needs_its_csrf_token(site: LiveSite) -> None:
    with requests.Session() as http:
        login = http.get(f"{site.url}/admin/login/", timeout=10)
        assert login.status_code == 200
        csrf = http.cookies["csrftoken"]
        done = http.post(f"{site.url}/admin/login/?next=/admin/", timeout=10, data={
            "username": "demo", "password": "demo", "csrfmiddlewaretoken": csrf})
        assert done.status_code == 200 and "sessionid" in http.cookies
        csrf = http.cookies["csrftoken"]  # rotated at login
        items = [{"method": "post", "url": "/views/csrf-protected/", "body": {}},
                 {"method": "get", "url": "/views/whoami/"}]

        # Without a token, each item meets CSRF as it would directly: the POST is refused,
        # the GET runs (no batch-level gate for a batch without references).
        refused = _batch(http, site, items)
        assert refused.status_code == 200, refused.text
        post, get = refused.json()["batch"]
        assert post["status_code"] == 403 and "CSRF" in post["body"]
        assert get["status_code"] == 200 and '"user": "demo"' in get["body"]

        response = _batch(http, site, items, **{"X-CSRFToken": csrf})
        assert response.status_code == 200, response.text
        first, second = response.json()["batch"]
        assert first["status_code"] == 200 and '"user": "demo"' in first["body"]
        assert '"host": "127.0.0.1:' in second["body"]


def test_bad_input_and_errors_over_http(site: LiveSite) -> None:
    with requests.Session() as http:
        bad = http.post(f"{site.url}/api/v1/batch/", data=b"{nope", timeout=10,
                        headers={"Content-Type": "application/json"})
        assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "body"
        assert http.get(f"{site.url}/api/v1/batch/", timeout=10).status_code == 405
        response = _batch(http, site, [{"method": "get", "url": "/views/error/"},
                                       {"method": "get", "url": "/views/binary/"}])
    error, binary = response.json()["batch"]
    assert error["status_code"] == 500 and "secret-detail-xyz" not in error["body"]
    assert binary["body_encoding"] == "base64"
