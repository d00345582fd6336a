"""The human-facing home page: a list of endpoints to try (a fuller demo comes later)."""

from __future__ import annotations

from django.http import HttpRequest
from django.template.response import TemplateResponse

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


def home(request: HttpRequest) -> TemplateResponse:
    """List the endpoints so a visitor knows what to put in a batch."""
    return TemplateResponse(request, "articles/home.html", {"endpoints": ENDPOINTS})
