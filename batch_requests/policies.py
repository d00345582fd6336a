"""Failure policies of a batch: ``"on_error": "stop"`` and ``"atomic": true``.

Both run the items one after another, since "stop at the first failure" needs the answer of
each item before the next one starts. ``atomic`` also runs them in one transaction of the
default database and rolls it back when an item fails (status >= 400).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from django.db import DEFAULT_DB_ALIAS, transaction

from batch_requests.concurrent.base import Run, timed_out
from batch_requests.dispatch import SubResult, error_result
from batch_requests.subrequest import SubRequest


def failed(result: SubResult) -> bool:
    return result.status_code >= 400


def not_run(sub: SubRequest, cause: SubResult) -> SubResult:
    return error_result(sub.index, 424, f"Not run: request {cause.index} failed with status "
                                        f"{cause.status_code}.")


def run_until_failure(subrequests: Sequence[SubRequest], run: Run,
                      timeout: float | None = None) -> list[SubResult]:
    """Run in order; after the first failure, the rest answer 424 and do not run."""
    deadline = None if timeout is None else time.monotonic() + timeout
    results: list[SubResult] = []
    cause: SubResult | None = None
    for sub in subrequests:
        if cause is not None:
            results.append(not_run(sub, cause))
        elif deadline is not None and time.monotonic() >= deadline:
            cause = timed_out(sub)
            results.append(cause)
        else:
            result = run(sub)
            results.append(result)
            if failed(result):
                cause = result
    return results


def run_atomic(subrequests: Sequence[SubRequest], run: Run,
               timeout: float | None = None) -> tuple[list[SubResult], int | None]:
    """As ``run_until_failure``, in one transaction; returns the index that failed, if any.

    Only the default database's transaction is managed: writes a view makes to other
    databases are not rolled back.
    """
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        results = run_until_failure(subrequests, run, timeout)
        failure = next((r.index for r in results if failed(r)), None)
        if failure is not None:
            transaction.set_rollback(True, using=DEFAULT_DB_ALIAS)
    return results, failure
