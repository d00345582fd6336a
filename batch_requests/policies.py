"""Failure policies of a batch: ``"on_error": "stop"``, ``"atomic": true``, dependencies.

A request answers 424 Failed Dependency without running when an earlier failure stops the
batch (``stop``, ``atomic``) or when a request it depends on failed. "Failed" means a status
of 400 or more, the 424s and 504s the batch gives out included.

An atomic batch must not make failed attempts free: a failed item's writes are rolled back
with the rest, security bookkeeping (failed-login counters, throttle history kept in a
``DatabaseCache``) included. So ``check_atomic_allowed`` refuses atomic batches from
anonymous callers (unless ``ALLOW_ANONYMOUS_ATOMIC``), while a ``DatabaseCache`` lives in the
database the transaction covers, and for items whose view is marked with
``transaction.non_atomic_requests``; ``atomic_run`` marks each sub-request of an atomic batch,
and ``durable_conflict`` answers a clear error for a view that needs its own durable
transaction.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, router, transaction
from django.http import HttpRequest
from django.urls import Resolver404, get_resolver
from django.utils.module_loading import import_string

from batch_requests.conf import batch_settings
from batch_requests.dispatch import SubResult, error_result
from batch_requests.exceptions import BatchError, Problem
from batch_requests.subrequest import SubRequest, resolved_path


def failed(result: SubResult) -> bool:
    return result.status_code >= 400


def not_run(index: int, cause: SubResult) -> SubResult:
    return error_result(index, 424, f"Not run: request {cause.index} failed with status "
                                    f"{cause.status_code}.")


def dependency_failed(index: int, cause: SubResult, name: str | None) -> SubResult:
    who = f"request {cause.index}" + (f" ({name!r})" if name else "")
    return error_result(index, 424, f"Not run: it depends on {who}, which failed with status "
                                    f"{cause.status_code}.")


def in_transaction(work: Callable[[], list[SubResult]]) -> list[SubResult]:
    """Run ``work`` in one transaction of the default database, rolled back if a result failed.

    Only the default database's transaction is managed: writes a view makes to other
    databases are not rolled back.
    """
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        results = work()
        if any(failed(result) for result in results):
            transaction.set_rollback(True, using=DEFAULT_DB_ALIAS)
    return results


# --- atomic batches and security bookkeeping ----------------------------------------------

DURABLE_CONFLICT = "batch_requests_durable_conflict"  # request attribute set on a conflict


def check_atomic_allowed(request: HttpRequest, subrequests: Sequence[SubRequest]) -> None:
    """Refuse an atomic batch that could make failed attempts free (raises ``BatchError``).

    Called for atomic batches only, before anything runs: the caller must be authenticated
    (unless ``ALLOW_ANONYMOUS_ATOMIC``), no ``DatabaseCache`` may live in the database the
    transaction covers, and no item may lead to a ``non_atomic_requests`` view.
    """
    if not batch_settings.ALLOW_ANONYMOUS_ATOMIC and not caller_is_authenticated(request):
        raise BatchError.single(
            "An atomic batch needs an authenticated caller: a failed item's writes are rolled "
            "back with the rest, so a site's record of failed attempts (logins, throttles) "
            "would be erased. Authenticate the batch request, send the batch without "
            "\"atomic\", or allow it with BATCH_REQUESTS['ALLOW_ANONYMOUS_ATOMIC'].",
            field="atomic", status=403)
    caches = rolled_back_caches()
    if caches:
        raise BatchError.single(
            f"Atomic batches are refused on this site: its cache {caches[0]!r} is a "
            f"DatabaseCache in the {DEFAULT_DB_ALIAS!r} database, which the batch's "
            "transaction covers, so throttle and other cache writes of a failed batch would "
            "be rolled back. Send the batch without \"atomic\"; the site can route the cache "
            "table to another database or use another cache backend (see the "
            "batch_requests.W010 check).", field="atomic", status=409)
    urlconf = getattr(request, "urlconf", None)
    problems = [Problem(message, sub.index, "url") for sub in subrequests
                if (message := non_atomic_view(sub, urlconf)) is not None]
    if problems:
        raise BatchError(problems)


def caller_is_authenticated(request: HttpRequest) -> bool:
    """Django's session user, or one of DRF's default authenticators, accepts the request.

    A bogus ``Authorization`` header does not make a caller: it must authenticate. DRF's
    ``SessionAuthentication`` is skipped (Django's session user already covers it, and it
    would enforce CSRF on the batch request).
    """
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return True
    try:
        from rest_framework.authentication import SessionAuthentication
        from rest_framework.exceptions import APIException
        from rest_framework.request import Request
        from rest_framework.settings import api_settings
    except ImportError:
        return False
    authenticators = [cls() for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES
                      if not issubclass(cls, SessionAuthentication)]
    if not authenticators:
        return False
    # DRF's Request sets request.user and request.auth when it authenticates: put them back.
    missing = object()
    saved = {name: request.__dict__.get(name, missing) for name in ("user", "auth")}
    try:
        drf_user = Request(request, authenticators=authenticators).user
    except APIException:  # AuthenticationFailed, PermissionDenied, ...: not authenticated
        drf_user = None
    finally:
        for name, value in saved.items():
            if value is missing:
                request.__dict__.pop(name, None)
            else:
                request.__dict__[name] = value
    return bool(drf_user is not None and drf_user.is_authenticated)


def rolled_back_caches() -> list[str]:
    """Aliases of the ``DatabaseCache`` caches whose table is written through the default
    database: an atomic batch's rollback would undo their writes (throttle history)."""
    from django.core.cache import caches
    from django.core.cache.backends.db import DatabaseCache

    found = []
    for alias, config in settings.CACHES.items():
        try:
            backend = import_string(config.get("BACKEND", ""))
        except ImportError:
            continue  # Django's own cache check reports it
        if not (isinstance(backend, type) and issubclass(backend, DatabaseCache)):
            continue
        model = getattr(caches[alias], "cache_model_class", None)
        if model is None or router.db_for_write(model) == DEFAULT_DB_ALIAS:
            found.append(alias)
    return found


def non_atomic_view(sub: SubRequest, urlconf: Any = None) -> str | None:
    """Why ``sub`` cannot run in an atomic batch (its view is marked with Django's
    ``transaction.non_atomic_requests`` for the default database), or None."""
    try:
        match = get_resolver(urlconf).resolve(resolved_path(sub.path))
    except Resolver404:
        return None
    if DEFAULT_DB_ALIAS not in getattr(match.func, "_non_atomic_requests", ()):
        return None
    return (f"url {sub.path[:80]!r} leads to a view marked with "
            "transaction.non_atomic_requests: its writes (such as a record of failed "
            "attempts) must not be rolled back, so it cannot run in an atomic batch. Send it "
            "outside an atomic batch.")


def atomic_run(run: Callable[[SubRequest], SubResult], urlconf: Any = None,
               ) -> Callable[[SubRequest], SubResult]:
    """``run`` for the items of an atomic batch: each is marked (``SubRequest.atomic``) and,
    once its references are filled in, checked again for a ``non_atomic_requests`` view."""
    def run_in_transaction(sub: SubRequest) -> SubResult:
        sub.atomic = True
        message = non_atomic_view(sub, urlconf)
        if message is not None:
            return error_result(sub.index, 400, message)
        return run(sub)

    return run_in_transaction


def note_durable_conflict(sender: Any, request: HttpRequest | None = None,
                          **kwargs: Any) -> None:
    """``got_request_exception`` receiver: a sub-request of an atomic batch whose view
    entered ``transaction.atomic(durable=True)`` is marked, so ``durable_conflict`` answers."""
    if request is None or not getattr(request, "batch_requests_atomic", False):
        return
    exc = sys.exc_info()[1]
    if isinstance(exc, RuntimeError) and _raised_by_durable_atomic(exc):
        setattr(request, DURABLE_CONFLICT, True)


def _raised_by_durable_atomic(exc: RuntimeError) -> bool:
    """Raised by a durable ``Atomic.__enter__`` (the innermost frame), or with its message."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None and tb.tb_frame.f_code is transaction.Atomic.__enter__.__code__:
        return bool(getattr(tb.tb_frame.f_locals.get("self"), "durable", False))
    return "durable atomic block cannot be nested" in str(exc)


def durable_conflict(request: HttpRequest, index: int) -> SubResult | None:
    """The error item of a sub-request whose view needs its own durable transaction, which
    cannot be inside an atomic batch's (409: the request is fine on its own, it conflicts
    with the batch's transaction); None for every other request."""
    if not getattr(request, DURABLE_CONFLICT, False):
        return None
    return error_result(index, 409, (
        f"The view at {request.path[:80]!r} runs its own durable transaction "
        "(transaction.atomic(durable=True)), which cannot be nested in the transaction of an "
        "atomic batch. Send this request outside an atomic batch."))
