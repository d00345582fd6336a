"""Views that the security tests attack through a batch (``/attack/...``).

Each one is the kind of endpoint a real site has (a slow stream, a long request, a large
text body, a CSRF token endpoint); the tests check that a batch costs no more than the same
requests sent directly. Nothing here waits without a bound: every wait ends by itself.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

from django.contrib.auth import authenticate
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from rest_framework.decorators import api_view, permission_classes, schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from .models import Article, LoginFailure

# How many slow streams are being read right now, in this process.
_streams_lock = threading.Lock()
_streams_open = 0
# Named events that "hold" requests wait on until "release" sets them (or 30 s pass).
_holds: dict[str, threading.Event] = {}
_holds_lock = threading.Lock()
_held = 0


def _number(request: HttpRequest, name: str, default: float, low: float, high: float) -> float:
    try:
        value = float(request.GET.get(name, default))
    except ValueError:
        value = default
    return max(low, min(value, high))


def _slow_chunks(interval: float, limit: float) -> Iterator[bytes]:
    global _streams_open
    with _streams_lock:
        _streams_open += 1
    try:
        end = time.monotonic() + limit
        while time.monotonic() < end:
            yield b"x"
            time.sleep(interval)
    finally:
        with _streams_lock:
            _streams_open -= 1


@require_GET
def slow_stream(request: HttpRequest) -> StreamingHttpResponse:
    """One byte every ``interval`` seconds (default 0.5), for up to ``limit`` s (max 120)."""
    interval = _number(request, "interval", 0.5, 0.01, 5.0)
    limit = _number(request, "limit", 120.0, 0.1, 120.0)
    return StreamingHttpResponse(_slow_chunks(interval, limit), content_type="text/plain")


def streams_open() -> int:
    """How many slow streams this process is reading now."""
    return _streams_open


@require_GET
def streams(request: HttpRequest) -> JsonResponse:
    """How many slow streams this process is reading now, and how many holds are waiting."""
    return JsonResponse({"streams_open": _streams_open, "held": _held})


def _event(name: str) -> threading.Event:
    with _holds_lock:
        return _holds.setdefault(name, threading.Event())


@require_GET
def hold(request: HttpRequest) -> JsonResponse:
    """Block until ``/attack/release/?name=`` (or ``seconds``, at most 30): a long request."""
    global _held
    name = request.GET.get("name", "default")
    seconds = _number(request, "seconds", 30.0, 0.0, 30.0)
    with _holds_lock:
        _held += 1
    try:
        released = _event(name).wait(seconds)
    finally:
        with _holds_lock:
            _held -= 1
    return JsonResponse({"released": released})


@csrf_exempt
def release(request: HttpRequest) -> JsonResponse:
    """Release every request holding on ``name``; later holds on it return at once."""
    _event(request.GET.get("name", "default")).set()
    return JsonResponse({"released": request.GET.get("name", "default")})


@require_GET
def big_text(request: HttpRequest) -> HttpResponse:
    """``size`` bytes (at most 12 MiB) of the byte ``byte`` (0-255), as text/plain."""
    size = int(_number(request, "size", 1024, 0, 12 * 1024 * 1024))
    byte = int(_number(request, "byte", 1, 0, 255))
    return HttpResponse(bytes([byte]) * size, content_type="text/plain; charset=utf-8")


@csrf_exempt
@require_POST
def raw_json(request: HttpRequest) -> HttpResponse:
    """The request body sent back as it came, labelled ``application/json`` (stores nothing)."""
    return HttpResponse(request.body, content_type="application/json")


@csrf_exempt
@require_POST
def upload_size(request: HttpRequest) -> JsonResponse:
    """The size of each uploaded file (stores nothing; the answer stays small)."""
    return JsonResponse({name: upload.size for name, upload in request.FILES.items()})


@require_GET
def csrf_token(request: HttpRequest) -> JsonResponse:
    """The CSRF token as JSON, as many SPAs expose it (``get_token``)."""
    return JsonResponse({"token": get_token(request)})


# --- security bookkeeping (tests/security/test_atomic_bookkeeping.py) ---------------------

LOCK_AFTER = 5  # failed logins of one username before it is locked


@csrf_exempt
@require_POST
def login_attempt(request: HttpRequest) -> JsonResponse:
    """Check ``username``/``password`` (form or JSON). A wrong password is recorded (a
    ``LoginFailure`` row) and answers 401; after ``LOCK_AFTER`` failures the username is
    locked: 403. A right one answers 200 (no session is opened)."""
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return JsonResponse({"error": "The body is not JSON."}, status=400)
        if not isinstance(data, dict):
            return JsonResponse({"error": "The body must be a JSON object."}, status=400)
    else:
        data = request.POST
    username, password = str(data.get("username", "")), str(data.get("password", ""))
    if LoginFailure.objects.filter(username=username).count() >= LOCK_AFTER:
        return JsonResponse({"error": "locked"}, status=403)
    if authenticate(request, username=username, password=password) is None:
        LoginFailure.objects.create(username=username)
        return JsonResponse({"error": "Wrong username or password."}, status=401)
    return JsonResponse({"username": username})


@transaction.non_atomic_requests
@csrf_exempt
def login_attempt_non_atomic(request: HttpRequest) -> JsonResponse:
    """``login_attempt`` marked the Django way: its failure records must never be rolled
    back with a request's transaction, so an atomic batch refuses it."""
    return login_attempt(request)


@api_view(["POST"])
@permission_classes([IsAuthenticated])
@schema(None)  # a test endpoint: left out of the OpenAPI schema
def durable_create(request: Request) -> Response:
    """Create an article in its own durable transaction (committed when the block ends):
    201 directly, a conflict inside an atomic batch."""
    with transaction.atomic(durable=True):
        article = Article.objects.create(title=str(request.data.get("title") or "durable"),
                                         author=request.user)
    return Response({"id": article.pk, "title": article.title}, status=201)
