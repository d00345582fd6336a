"""The executor interface and the sequential executor."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from batch_requests.dispatch import SubResult, error_result
from batch_requests.subrequest import SubRequest

Run = Callable[[SubRequest], SubResult]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class BaseExecutor:
    """Runs the sub-requests of one batch.

    ``execute`` receives plain ``SubRequest`` objects and a module-level ``run`` function (so
    both can be pickled) and returns one ``SubResult`` per sub-request, in request order.
    Pools are created lazily on first use and shared by all batches of the process.
    """

    def __init__(self, num_workers: int) -> None:
        self.num_workers = num_workers

    def execute(self, subrequests: Sequence[SubRequest], run: Run,
                timeout: float | None = None) -> list[SubResult]:
        """Run a batch in order-preserving waves (see ``waves``), within ``timeout``."""
        deadline = deadline_after(timeout)
        results: list[SubResult] = []
        for group in waves(subrequests):
            results.extend(self.run_group(group, run, deadline))
        return results

    def run_group(self, group: Sequence[SubRequest], run: Run,
                  deadline: float | None) -> list[SubResult]:
        """Run sub-requests that may overlap, as this executor does; 504 past ``deadline``.

        An executor that only overrides ``execute`` gets its ``execute`` called here.
        """
        if type(self).execute is BaseExecutor.execute:
            raise NotImplementedError(f"{type(self).__name__} must implement run_group()")
        return self.execute(group, run, time_left(deadline))

    def shutdown(self) -> None:
        """Release pools; the executor may be used again afterwards (it rebuilds them)."""


class SequentialExecutor(BaseExecutor):
    """One after another in the request's thread: the default.

    With a ``timeout``, items that would start after the deadline are not started (504).
    """

    def execute(self, subrequests: Sequence[SubRequest], run: Run,
                timeout: float | None = None) -> list[SubResult]:
        return self.run_group(subrequests, run, deadline_after(timeout))

    def run_group(self, group: Sequence[SubRequest], run: Run,
                  deadline: float | None) -> list[SubResult]:
        return [timed_out(sub) if past(deadline) else run(sub) for sub in group]


def waves(subrequests: Sequence[SubRequest]) -> list[list[SubRequest]]:
    """Split a batch so that parallel runs give the results of a sequential run.

    Consecutive safe-method requests run together; an unsafe one (POST, PUT, ...) waits for
    everything before it and finishes before anything after it starts, so "list after
    create" still sees the new row.
    """
    groups: list[list[SubRequest]] = []
    for sub in subrequests:
        if sub.method in SAFE_METHODS and groups and groups[-1][-1].method in SAFE_METHODS:
            groups[-1].append(sub)
        else:
            groups.append([sub])
    return groups


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def time_left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def timed_out(sub: SubRequest, started: bool = False) -> SubResult:
    """The 504 of an item the batch's time budget did not cover: never started, or answered
    while its view may still be running. The message names the budget (``sub.budget``)."""
    budget = f"the batch's time budget ({sub.budget})" if sub.budget else \
        "the batch's time budget"
    if started:
        return error_result(sub.index, 504, f"Started, but {budget} ran out before it finished; "
                                            "its view may still finish in the background.")
    return error_result(sub.index, 504, f"Not run: {budget} ran out before this request could "
                                        "start.")
