"""Executors: how a batch's sub-requests are run. Chosen by ``CONCURRENT_EXECUTOR``.

An executor receives plain ``SubRequest`` objects and a ``run`` function (module-level, so
it can be pickled) and returns one ``SubResult`` per sub-request, in request order. Pools are
created lazily on first use, shared across batches, and shut down when settings change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from django.db import connections
from django.utils.module_loading import import_string

from batch_requests.conf import batch_settings
from batch_requests.dispatch import SubResult
from batch_requests.subrequest import SubRequest

Run = Callable[[SubRequest], SubResult]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class BaseExecutor:
    """Runs the sub-requests of one batch. Subclasses override ``execute``."""

    def __init__(self, num_workers: int) -> None:
        self.num_workers = num_workers

    def execute(self, subrequests: Sequence[SubRequest], run: Run) -> list[SubResult]:
        raise NotImplementedError

    def shutdown(self) -> None:
        """Release pools; the executor may be used again afterwards (it rebuilds them)."""


class SequentialExecutor(BaseExecutor):
    """One after another in the request thread: the default, and what ``atomic`` needs."""

    def execute(self, subrequests: Sequence[SubRequest], run: Run) -> list[SubResult]:
        return [run(sub) for sub in subrequests]


def waves(subrequests: Sequence[SubRequest]) -> list[list[SubRequest]]:
    """Split a batch so parallel runs give sequential results.

    Consecutive safe-method requests run together; an unsafe one (POST, PUT, ...) waits for
    everything before it and runs before anything after it, so "list after create" still
    sees the new row.
    """
    groups: list[list[SubRequest]] = []
    for sub in subrequests:
        if sub.method in SAFE_METHODS and groups and groups[-1][-1].method in SAFE_METHODS:
            groups[-1].append(sub)
        else:
            groups.append([sub])
    return groups


def _run_in_worker(run: Run, sub: SubRequest) -> SubResult:
    try:
        return run(sub)
    finally:
        # Worker threads outlive requests; close what this sub-request opened.
        connections.close_all()


class ThreadBasedExecutor(BaseExecutor):
    """A thread pool of ``NUM_WORKERS`` threads shared by all batches of the process."""

    def __init__(self, num_workers: int) -> None:
        super().__init__(num_workers)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.num_workers,
                                                thread_name_prefix="batch_requests")
            return self._pool

    def execute(self, subrequests: Sequence[SubRequest], run: Run) -> list[SubResult]:
        pool = self._get_pool()
        results: list[SubResult] = []
        for group in waves(subrequests):
            if len(group) == 1:
                results.append(run(group[0]))
                continue
            futures = [pool.submit(_run_in_worker, run, sub) for sub in group]
            results.extend(f.result() for f in futures)
        return results

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)


_sequential = SequentialExecutor(1)
_executors: dict[tuple[str, int], BaseExecutor] = {}
_executors_lock = threading.Lock()


def get_executor() -> BaseExecutor:
    if not batch_settings.EXECUTE_PARALLEL:
        return _sequential
    key = (batch_settings.CONCURRENT_EXECUTOR, batch_settings.NUM_WORKERS)
    executor = _executors.get(key)
    if executor is None:
        with _executors_lock:
            executor = _executors.get(key)
            if executor is None:
                executor = import_string(key[0])(key[1])
                _executors[key] = executor
    return executor


def reset_executors() -> None:
    with _executors_lock:
        executors = list(_executors.values())
        _executors.clear()
    for executor in executors:
        executor.shutdown()
