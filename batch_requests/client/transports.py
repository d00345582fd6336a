"""Transports: how a batch document reaches the server (httpx, requests, Django's test Client)."""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    """What a transport hands back: just enough to parse the batch answer."""

    status_code: int
    text: str


#: A file part of a multipart batch: (filename, content, content type).
FilePart = tuple[str, bytes, str]


class Transport(Protocol):
    """Sends one batch document; the only thing that differs between HTTP libraries.

    With ``files`` (part name -> ``FilePart``), the batch goes as ``multipart/form-data``: the
    document in the ``batch`` part, each file in its own part. ``files`` is passed only when
    there are files, so a transport that never sends any may leave it out.
    """

    def send(self, url: str, payload: dict[str, Any], headers: dict[str, str],
             files: dict[str, FilePart] | None = None) -> RawResponse:
        ...

    def csrf_token(self) -> str | None:
        ...

    def close(self) -> None:
        ...


class HTTPTransport:
    """``requests.Session`` and ``httpx.Client`` share ``post(url, json=, headers=, timeout=)``."""

    def __init__(self, session: Any, timeout: float | None, owned: bool) -> None:
        self.session = session
        self.timeout = timeout
        self.owned = owned

    def send(self, url: str, payload: dict[str, Any], headers: dict[str, str],
             files: dict[str, FilePart] | None = None) -> RawResponse:
        if files:  # both libraries take files={name: (filename, content, type)}
            response = self.session.post(url, data={"batch": jsonlib.dumps(payload)},
                                         files=files, headers=headers, timeout=self.timeout)
        else:
            response = self.session.post(url, json=payload, headers=headers,
                                         timeout=self.timeout)
        return RawResponse(response.status_code, response.text)

    def csrf_token(self) -> str | None:
        # Both libraries' cookie jars answer .get(name); a logged-in session must send it back.
        try:
            return self.session.cookies.get("csrftoken")
        except Exception:  # several cookies of that name (httpx/requests raise): pass none
            return None

    def close(self) -> None:
        if self.owned:
            self.session.close()


class DjangoClientTransport:
    """Django's test ``Client``: runs the batch in-process, keeps the client's login."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def send(self, url: str, payload: dict[str, Any], headers: dict[str, str],
             files: dict[str, FilePart] | None = None) -> RawResponse:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        extra: dict[str, Any] = {"headers": headers}
        if parts.scheme == "https":
            extra["secure"] = True
        if files:  # the test client encodes a dict holding files as multipart/form-data
            from django.core.files.uploadedfile import SimpleUploadedFile

            data: dict[str, Any] = {"batch": jsonlib.dumps(payload)}
            data.update({name: SimpleUploadedFile(*part) for name, part in files.items()})
            response = self.client.post(path, data, **extra)
        else:
            response = self.client.post(path, jsonlib.dumps(payload),
                                        content_type="application/json", **extra)
        charset = getattr(response, "charset", None) or "utf-8"
        return RawResponse(response.status_code, response.content.decode(charset, "replace"))

    def csrf_token(self) -> str | None:
        morsel = self.client.cookies.get("csrftoken")
        return morsel.value if morsel is not None else None

    def close(self) -> None:
        pass


def make_transport(session: Any, timeout: float | None) -> Transport:
    """Pick the transport for ``session``; build an httpx or requests one when it is None."""
    if session is None:
        return HTTPTransport(_default_session(), timeout, owned=True)
    if _is_django_test_client(session):
        return DjangoClientTransport(session)
    if callable(getattr(session, "send", None)) and callable(getattr(session, "csrf_token",
                                                                     None)):
        return session  # already a Transport
    if callable(getattr(session, "post", None)):
        return HTTPTransport(session, timeout, owned=False)
    raise TypeError(f"session must be an httpx.Client, a requests.Session or a Django test "
                    f"Client, not {type(session).__name__}")


def _is_django_test_client(session: Any) -> bool:
    try:
        from django.test import Client
    except ImportError:  # pragma: no cover - Django is a dependency of the package
        return False
    return isinstance(session, Client)


def _default_session() -> Any:
    try:
        import httpx
    except ImportError:
        pass
    else:
        return httpx.Client()
    try:
        import requests
    except ImportError:
        raise ImportError("BatchClient needs httpx or requests to reach a server: "
                          "pip install 'django-batch-requests[client]', or pass session=",
                          ) from None
    return requests.Session()
