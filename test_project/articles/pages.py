"""The demo page at ``/``: the same widgets loaded one request per call and through the batcher.

The widget list is built here, from the data that is really in the database, so that every
widget has something true to show, and so that the browser test can read the same list
(``data-url`` / ``data-field`` on each widget) and check each value against a direct request.

Also here: the demo's simulated network latency (``SimulatedLatencyMiddleware``) and two
pages that exist only for tests/test_browser.py (``/test-pages/...``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.template.response import TemplateResponse
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie

from batch_requests.conf import batch_settings
from batch_requests.subrequest import SUBREQUEST_KEY

from .models import Article, Comment

DEFAULT_WIDGETS = 30
MAX_WIDGETS = 200

ENDPOINTS: list[tuple[str, str, str]] = [
    ("GET POST", "/views/", "plain Django view; POST echoes the body (CSRF)"),
    ("GET", "/views/articles/", "JSON list, ?q= and ?author= filters"),
    ("GET", "/views/whoami/", "what the view sees about the request"),
    ("ANY", "/views/echo/", "echoes method, body, form fields and files"),
    ("GET", "/views/template/", "lazily rendered TemplateResponse"),
    ("GET", "/views/stream/", "StreamingHttpResponse"),
    ("GET", "/api/ping/", "trivial DRF view"),
    ("GET", "/api/me/", "DRF, authenticated users only"),
    ("GET POST", "/api/articles/", "DRF viewset (author-only edits)"),
    ("GET POST", "/api/comments/", "DRF viewset"),
    ("GET", "/api/throttled/", "DRF, throttled to 5/min"),
    ("GET POST", "/jsonapi/articles/", "JSON:API resources"),
    ("GET POST", "/jsonapi/comments/", "JSON:API resources with a relationship"),
    ("POST", "/api/v1/batch/", "the batch endpoint"),
]


@dataclass
class Widget:
    """One API call and the field of its JSON answer that the widget shows."""

    label: str
    url: str
    field: str  # dotted path into the JSON answer; "articles.length" counts a list


def widgets_for(request: HttpRequest, count: int) -> list[Widget]:
    """``count`` widgets: who-am-I calls first, then details of the first articles/comments."""
    username = request.user.get_username() if request.user.is_authenticated else "demo"
    widgets = [
        Widget("DRF /api/me/", "/api/me/", "username"),
        Widget("Django whoami", "/views/whoami/", "user"),
        Widget("@login_required", "/views/login-required/", "user"),
        Widget("DRF ping", "/api/ping/", "pong"),
        Widget(f"{username}'s articles", f"/views/articles/?author={username}",
               "articles.length"),
        Widget("All articles", "/views/articles/", "articles.length"),
    ]
    pool: list[Widget] = []
    for article in Article.objects.order_by("pk")[:count]:
        pool += [
            Widget(f"DRF article {article.pk}", f"/api/articles/{article.pk}/", "title"),
            Widget(f"Django article {article.pk}", f"/views/articles/{article.pk}/", "author"),
            Widget(f"JSON:API article {article.pk}", f"/jsonapi/articles/{article.pk}/",
                   "data.attributes.title"),
        ]
    for comment in Comment.objects.order_by("pk")[:count]:
        pool.append(Widget(f"DRF comment {comment.pk}", f"/api/comments/{comment.pk}/",
                           "text"))
    # Interleave kinds so that a short page still shows every kind of view.
    widgets += sorted(pool, key=lambda w: (int(w.url.rstrip("/").rsplit("/", 1)[-1]), w.url))
    return widgets[:count]


@ensure_csrf_cookie  # the JS batcher reads the CSRF token from this cookie
def home(request: HttpRequest) -> TemplateResponse:
    """Show the widgets twice (direct and batched), plus the endpoints to try by hand."""
    try:
        count = max(1, min(int(request.GET.get("n", DEFAULT_WIDGETS)), MAX_WIDGETS))
    except ValueError:
        count = DEFAULT_WIDGETS
    return TemplateResponse(request, "articles/home.html", {
        "endpoints": ENDPOINTS,
        "widgets": [asdict(w) for w in widgets_for(request, count)],
        "modes": [("direct", "One request per call"), ("batched", "Through the JS batcher")],
        "max_batch_size": batch_settings.MAX_LIMIT,
        "autorun": request.GET.get("autorun", "1") != "0",
    })


LATENCY_HEADER = "X-Demo-Latency"  # request: milliseconds to add; response: milliseconds paid
LATENCY_META = "HTTP_X_DEMO_LATENCY"
MAX_LATENCY_MS = 1000


class SimulatedLatencyMiddleware:
    """The demo's "simulated network latency": each HTTP request that asks for it waits.

    The wait is on the server, not in the page, so it holds one of the browser's few
    connections per host as a network round trip would: 30 direct requests pay it in turns,
    a batch request pays it once. Sub-requests of a batch never pay (they cross no network);
    the answer says what was paid in ``X-Demo-Latency``, which the page counts.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    @staticmethod
    def _latency_ms(request: HttpRequest) -> int:
        if request.META.get(SUBREQUEST_KEY):
            return 0
        try:
            return max(0, min(int(request.META.get(LATENCY_META, "0")), MAX_LATENCY_MS))
        except ValueError:
            return 0

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        latency = self._latency_ms(request)
        if latency:
            time.sleep(latency / 1000)
        response = self.get_response(request)
        if latency:
            response[LATENCY_HEADER] = str(latency)
        return response

    async def __acall__(self, request: HttpRequest) -> Any:
        latency = self._latency_ms(request)
        if latency:
            await asyncio.sleep(latency / 1000)
        response = await self.get_response(request)
        if latency:
            response[LATENCY_HEADER] = str(latency)
        return response


# --- Test-only pages (tests/test_browser.py); not part of the demo. -------------------------


@csrf_exempt  # stores nothing; lets the tests POST without a token, directly and batched
def redirect_test_page(request: HttpRequest) -> HttpResponse:
    """TEST PAGE. ``?status=S&hops=N&to=URL``: redirect N times (to itself), then to ``to``.

    ``to`` (default ``/views/echo/``, which answers the method and body it got) is a local
    path or a URL on one of ALLOWED_HOSTS (another origin of this server). ``hops=0`` answers
    ``{"method", "body"}`` with ``Access-Control-Allow-Origin: *`` so another origin may read.
    """
    try:
        status = int(request.GET.get("status", "302"))
        hops = int(request.GET.get("hops", "1"))
    except ValueError:
        return HttpResponseBadRequest("status and hops are numbers")
    target = request.GET.get("to", "/views/echo/")
    parts = urlsplit(target)
    local = target.startswith("/") and not target.startswith("//")
    known_host = parts.scheme in ("http", "https") and parts.hostname in settings.ALLOWED_HOSTS
    if status not in (301, 302, 303, 307, 308) or not (local or known_host):
        return HttpResponseBadRequest("status must be a redirect status, to a local URL")
    if hops <= 0:
        response = JsonResponse({"method": request.method,
                                 "body": request.body.decode("utf-8", "replace")})
        response["Access-Control-Allow-Origin"] = "*"
        return response
    if hops > 1:
        target = f"{request.path}?{urlencode({'status': status, 'hops': hops - 1, 'to': target})}"
    response = HttpResponse(status=status)
    response["Location"] = target
    return response


def batch_script_test_page(request: HttpRequest) -> TemplateResponse:
    """TEST PAGE: only ``{% batch_requests_script %}``, recording its events on ``<body>``."""
    return TemplateResponse(request, "articles/test_batch_script.html", {})
