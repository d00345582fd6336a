"""Plain Django function views (no DRF).

Each one pins down one behaviour a batch sub-request must reproduce exactly:
CSRF, sessions, lazy templates, streaming, binary and non-UTF-8 bodies, file
responses, redirects, cookies, errors and timing (sleep / barrier).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .models import Article


def _username(request: HttpRequest) -> str | None:
    """Return the username, or None for anonymous users, as JSON-friendly data."""
    user = request.user
    return user.get_username() if user.is_authenticated else None


def _article_summary(article: Article) -> dict[str, Any]:
    """Shape shared by list, detail and create so tests compare one format."""
    return {"id": article.pk, "title": article.title, "author": article.author.get_username()}


@require_http_methods(["GET", "HEAD", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    """GET says hello; POST echoes the raw body with 201 (normal CSRF applies)."""
    if request.method == "POST":
        return HttpResponse(
            request.body,
            status=201,
            content_type=request.content_type or "application/octet-stream",
        )
    return HttpResponse("Success!")


@require_GET
def article_list(request: HttpRequest) -> JsonResponse:
    """List articles, filtered by ``?q=`` (title) and ``?author=`` (username)."""
    queryset = Article.objects.select_related("author")
    if query := request.GET.get("q"):
        queryset = queryset.filter(title__icontains=query)
    if author := request.GET.get("author"):
        queryset = queryset.filter(author__username=author)
    return JsonResponse({"articles": [_article_summary(a) for a in queryset]})


@require_GET
def article_detail(request: HttpRequest, pk: int) -> JsonResponse:
    """One article; a missing one raises Django's own Http404."""
    article = get_object_or_404(Article.objects.select_related("author"), pk=pk)
    data = _article_summary(article)
    data.update(body=article.body, published=article.published)
    return JsonResponse(data)


def _form_or_json(request: HttpRequest) -> dict[str, Any]:
    """Read a form-encoded or JSON body, so both batch body styles can be tested."""
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return request.POST.dict()


@require_POST
@login_required
def article_create(request: HttpRequest) -> JsonResponse:
    """Create an article as the logged-in user; CSRF-protected like any Django view."""
    data = _form_or_json(request)
    title = str(data.get("title") or "").strip()
    if not title:
        return JsonResponse({"error": "title is required"}, status=400)
    article = Article.objects.create(
        title=title[:200], body=str(data.get("body") or ""), author=request.user
    )
    return JsonResponse(_article_summary(article), status=201)


@csrf_exempt
def whoami(request: HttpRequest) -> JsonResponse:
    """Report what the view sees about the request (user, host, headers, query).

    Exempt from CSRF because it only reads and changes nothing; that lets tests
    compare every method, including POST, between direct and batched requests.
    """
    return JsonResponse(
        {
            "user": _username(request),
            "is_authenticated": request.user.is_authenticated,
            "host": request.get_host(),
            "scheme": request.scheme,
            "is_secure": request.is_secure(),
            "remote_addr": request.META.get("REMOTE_ADDR"),
            "path": request.path,
            "full_path": request.get_full_path(),
            "method": request.method,
            "query": {key: request.GET.getlist(key) for key in request.GET},
            "user_agent": request.META.get("HTTP_USER_AGENT"),
            "x_custom": request.META.get("HTTP_X_CUSTOM"),
            "authorization_present": "HTTP_AUTHORIZATION" in request.META,
        }
    )


@csrf_exempt
def echo(request: HttpRequest) -> JsonResponse:
    """Echo the parsed body back, so body/form/file encodings can be compared.

    Exempt from CSRF because it stores nothing. The raw body is read first:
    once Django has parsed a multipart stream, ``request.body`` is gone.
    """
    body = request.body.decode("utf-8", errors="replace")
    files = {
        name: {"name": uploaded.name, "size": uploaded.size}
        for name, uploaded in request.FILES.items()
    }
    return JsonResponse(
        {
            "method": request.method,
            "content_type": request.content_type,
            "body": body,
            "post": {key: request.POST.getlist(key) for key in request.POST},
            "files": files,
            "x_custom": request.META.get("HTTP_X_CUSTOM"),
        }
    )


@require_GET
def error(request: HttpRequest) -> HttpResponse:
    """Crash on purpose; tests check the message never leaks when DEBUG is off."""
    raise RuntimeError("boom: secret-detail-xyz")


@require_GET
def binary(request: HttpRequest) -> HttpResponse:
    """Every byte value once: proves bodies are not decoded as text on the way."""
    return HttpResponse(bytes(range(256)), content_type="application/octet-stream")


@require_GET
def latin1(request: HttpRequest) -> HttpResponse:
    """A non-UTF-8 text body: the charset must survive a batch untouched."""
    return HttpResponse("café olé".encode("latin-1"), content_type="text/plain; charset=iso-8859-1")


def _chunks() -> Iterator[bytes]:
    """Five small chunks, so a streaming body must be joined by the batch view."""
    for number in range(5):
        yield f"chunk-{number}\n".encode()


@require_GET
def stream(request: HttpRequest) -> StreamingHttpResponse:
    """A streaming response, which has no ``.content`` to read directly."""
    return StreamingHttpResponse(_chunks(), content_type="text/plain")


@require_GET
def file_download(request: HttpRequest) -> FileResponse:
    """A FileResponse with Content-Disposition, another streaming variant."""
    return FileResponse(
        io.BytesIO(b"file-content-\x00\x01"), filename="data.bin", as_attachment=True
    )


@require_GET
def template(request: HttpRequest) -> TemplateResponse:
    """A lazily rendered TemplateResponse; the batch must render it before reading."""
    return TemplateResponse(
        request, "articles/hello.html", {"article_count": Article.objects.count()}
    )


@require_GET
def sleep(request: HttpRequest) -> JsonResponse:
    """Sleep a little (at most 5 s) so timing and parallelism can be measured."""
    try:
        seconds = float(request.GET.get("seconds", "0.1"))
    except ValueError:
        return JsonResponse({"error": "seconds must be a number"}, status=400)
    seconds = max(0.0, min(seconds, 5.0))
    time.sleep(seconds)
    return JsonResponse({"slept": seconds})


_barriers: dict[tuple[str, int], threading.Barrier] = {}
_barriers_lock = threading.Lock()


def _get_barrier(name: str, parties: int) -> threading.Barrier:
    """One shared barrier per (name, parties), created on first use."""
    with _barriers_lock:
        key = (name, parties)
        if key not in _barriers:
            _barriers[key] = threading.Barrier(parties, timeout=5)
        return _barriers[key]


@require_GET
def barrier(request: HttpRequest) -> JsonResponse:
    """Pass only if ``parties`` requests wait here at once: proof they overlap.

    Run sequentially, the first request times out after 5 s and answers 500.
    """
    try:
        parties = int(request.GET.get("parties", "2"))
    except ValueError:
        return JsonResponse({"error": "parties must be an integer"}, status=400)
    parties = max(1, min(parties, 100))
    name = request.GET.get("name", "default")
    try:
        timeout = min(max(float(request.GET.get("timeout", "5")), 0.01), 5.0)
    except ValueError:
        return JsonResponse({"error": "timeout must be a number"}, status=400)
    shared = _get_barrier(name, parties)
    try:
        shared.wait(timeout)
    except threading.BrokenBarrierError:
        # Forget the broken barrier so a later run with the same name can pass.
        with _barriers_lock:
            if _barriers.get((name, parties)) is shared:
                del _barriers[(name, parties)]
        return JsonResponse({"passed": False}, status=500)
    return JsonResponse({"passed": True})


@require_GET
@login_required
def login_required_view(request: HttpRequest) -> JsonResponse:
    """Only for logged-in users; anonymous ones are redirected to LOGIN_URL."""
    return JsonResponse({"user": request.user.get_username()})


@require_GET
def set_cookie(request: HttpRequest) -> HttpResponse:
    """Set a cookie, so Set-Cookie attributes can be checked in batch answers."""
    response = HttpResponse("ok")
    response.set_cookie("flavour", "chocolate", httponly=True, samesite="Lax")
    return response


@require_GET
def redirect(request: HttpRequest) -> HttpResponseRedirect:
    """A 302 that a batch must return as-is rather than follow."""
    return HttpResponseRedirect("/views/")


@require_POST
def csrf_protected(request: HttpRequest) -> JsonResponse:
    """Plain Django CSRF protection: a POST without a valid token gets 403."""
    return JsonResponse({"ok": True, "user": _username(request)})


_meetings: dict[str, list] = {}


async def async_meeting(request: HttpRequest) -> JsonResponse:
    """An async view that passes only if ``parties`` requests await here at once.

    The async counterpart of ``barrier``: proof that async views overlap on one event loop.
    """
    parties = int(request.GET.get("parties", "2"))
    name = request.GET.get("name", "default")
    timeout = min(float(request.GET.get("timeout", "5")), 5.0)
    meeting = _meetings.setdefault(name, [0, asyncio.Event()])
    meeting[0] += 1
    if meeting[0] >= parties:
        meeting[1].set()
    try:
        await asyncio.wait_for(meeting[1].wait(), timeout)
    except asyncio.TimeoutError:
        _meetings.pop(name, None)
        return JsonResponse({"passed": False}, status=500)
    return JsonResponse({"passed": True, "user": (await request.auser()).get_username()
                         if hasattr(request, "auser") else None})


def crash(request: HttpRequest) -> HttpResponse:
    """Kill the serving process, as a segfault or the OOM killer would.

    Enabled only when the environment sets ``TEST_PROJECT_CRASH_VIEW=1`` (crash-recovery
    tests of the process executor); otherwise 404.
    """
    if os.environ.get("TEST_PROJECT_CRASH_VIEW") != "1":
        raise Http404("crash view disabled")
    os._exit(13)


@require_GET
def cpu(request: HttpRequest) -> JsonResponse:
    """Burn CPU in a pure-Python loop of ``n`` steps (at most 20 million): a CPU-bound view,
    for benchmarks of the process executor."""
    try:
        n = int(request.GET.get("n", "1000000"))
    except ValueError:
        return JsonResponse({"error": "n must be an integer"}, status=400)
    n = max(0, min(n, 20_000_000))
    total = 0
    for i in range(n):
        total = (total + i * i) % 1_000_003
    return JsonResponse({"n": n, "result": total})
