"""CSRF for the batch request itself.

Equivalence decides the rule: the batch view is exempt from ``CsrfViewMiddleware`` and every
item passes that middleware (and DRF's ``SessionAuthentication``) on its own, with the batch
request's cookies, Origin, Referer and CSRF header, exactly as the same request sent directly
would. A cross-site page gains nothing: each item is judged as if that page had sent it.

References are the exception. A batch whose ``{result=...}`` references read one response into
another request acts as a deputy that reads same-origin responses for its sender, which a
cross-site page cannot do directly (it could read a CSRF token from a JSON endpoint and pipe it
into a write). So a batch that uses references and carries any cookie must pass Django's own
CSRF check (token, Origin and Referer rules) before anything runs, logged in or not.
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


def csrf_failure(request: HttpRequest, spec: BatchSpec) -> str | None:
    """Why the batch request fails its own CSRF check, or None if it needs none or passes."""
    if not (request.COOKIES and uses_references(spec)):
        return None
    check = _CsrfCheck(_noop)
    check.process_request(request)
    return check.process_view(request, None, (), {})
