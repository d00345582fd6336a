"""The demo page at ``/``: the same widgets loaded one request per call and through the batcher.

The widget list is built here, from the data that is really in the database, so that every
widget has something true to show, and so that the browser test can read the same list
(``data-url`` / ``data-field`` on each widget) and check each value against a direct request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.views.decorators.csrf import ensure_csrf_cookie

from batch_requests.conf import batch_settings

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
