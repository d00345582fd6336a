"""Failure policies of a batch: ``"on_error": "stop"``, ``"atomic": true``, dependencies.

A request answers 424 Failed Dependency without running when an earlier failure stops the
batch (``stop``, ``atomic``) or when a request it depends on failed. "Failed" means a status
of 400 or more, the 424s and 504s the batch gives out included.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, transaction

from batch_requests.dispatch import SubResult, error_result


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
