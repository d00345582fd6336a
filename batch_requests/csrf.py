"""CSRF for the batch request itself.

Equivalence decides the rule: the batch view is exempt from ``CsrfViewMiddleware`` and every
item passes that middleware (and DRF's ``SessionAuthentication``) on its own, with the batch
request's cookies, Origin, Referer and CSRF header, exactly as the same request sent directly
would. A cross-site page gains nothing: each item is judged as if that page had sent it.

References are the exception. A batch whose ``{result=...}`` references read one response into
another request acts as a deputy that reads same-origin responses for its sender, which a
cross-site page cannot do directly (it could read a CSRF token from a JSON endpoint and pipe it
into a write). So a batch that uses references and carries any cookie must pass Django's own
CSRF check (token, Origin and Referer rules) before anything runs, logged in or not. One that
carries other credentials a browser adds by itself (cached HTTP Basic/Digest/Negotiate
authentication, ``REMOTE_USER``) has no cookie to hold a CSRF secret: it must be sent with a
content type that a cross-site page cannot send without a CORS preflight (JSON).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware

if TYPE_CHECKING:
    from batch_requests.payload import BatchSpec


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> str:  # type: ignore[override]
        return reason


def _noop(request: HttpRequest) -> None:  # pragma: no cover - never called
    return None


def uses_references(spec: BatchSpec) -> bool:
    return any(item.references for item in spec.items)


#: ``Authorization`` schemes a browser sends by itself once the user has logged in with them,
#: like cookies: a cross-site page can make the browser send them.
AMBIENT_SCHEMES = frozenset({"basic", "digest", "negotiate", "ntlm"})
#: Content types a cross-site page can send without a CORS preflight (none: no header).
SIMPLE_CONTENT_TYPES = frozenset({"", "text/plain", "application/x-www-form-urlencoded",
                                  "multipart/form-data"})


def ambient_authorization(request: HttpRequest) -> bool:
    """Whether the batch request carries credentials a browser adds by itself, besides
    cookies: HTTP authentication it has cached, or a ``REMOTE_USER`` set by the server."""
    scheme = request.META.get("HTTP_AUTHORIZATION", "").split(" ", 1)[0].lower()
    return scheme in AMBIENT_SCHEMES or bool(request.META.get("REMOTE_USER"))


def csrf_failure(request: HttpRequest, spec: BatchSpec) -> str | None:
    """Why the batch request fails its own CSRF check, or None if it needs none or passes."""
    if not uses_references(spec):
        return None
    if request.COOKIES:
        check = _CsrfCheck(_noop)
        check.process_request(request)
        reason = check.process_view(request, None, (), {})
        return None if reason is None else (
            f"{reason.rstrip('.')}. A batch that uses {{result=...}} references and carries "
            "cookies must pass Django's CSRF check itself.")
    if ambient_authorization(request) and request.content_type in SIMPLE_CONTENT_TYPES \
            and not getattr(request, "_dont_enforce_csrf_checks", False):
        # No cookie to hold a CSRF secret: the proof of same-origin is a content type that a
        # cross-site page cannot send without the site's CORS consent.
        return ("a batch that uses {result=...} references and carries HTTP authentication "
                "that a browser adds by itself must be sent as application/json, not "
                f"{request.content_type or 'without a content type'}.")
    return None
