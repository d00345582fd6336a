"""CSRF for the batch request itself.

The batch view is exempt from ``CsrfViewMiddleware`` so that a client that authenticates
with a token and sends no cookies needs no CSRF token, exactly as with DRF views called
directly. But a batch that rides on a browser's session cookie must prove it is same-site
before any sub-request runs, or a cross-site page could make a victim's browser run safe
requests with the victim's session. So such a batch passes Django's own CSRF check here, as
DRF's ``SessionAuthentication`` does. Every sub-request then passes ``CsrfViewMiddleware``
again on its own.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> str:  # type: ignore[override]
        return reason


def _noop(request: HttpRequest) -> None:  # pragma: no cover - never called
    return None


def uses_session_auth(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated)


def csrf_failure(request: HttpRequest) -> str | None:
    """The reason the batch request fails CSRF checks, or None if it needs none or passes."""
    if not uses_session_auth(request):
        return None
    check = _CsrfCheck(_noop)
    check.process_request(request)
    return check.process_view(request, None, (), {})
