"""``ThreadBasedExecutor``: a thread pool shared by all batches of the process."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.db import connections

from batch_requests.concurrent.base import BaseExecutor, Run, past, time_left, timed_out
from batch_requests.dispatch import SubResult
from batch_requests.subrequest import SubRequest


def _run_in_worker(run: Run, sub: SubRequest) -> SubResult:
    try:
        return run(sub)
    finally:
        # Worker threads outlive requests: close the connections this sub-request opened.
        connections.close_all()


class ThreadPoolMixin(BaseExecutor):
    """A pool of ``NUM_WORKERS`` threads, created on first use, shared by all batches."""

    thread_name_prefix = "batch_requests"

    def __init__(self, num_workers: int) -> None:
        super().__init__(num_workers)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.num_workers,
                                                thread_name_prefix=self.thread_name_prefix)
            return self._pool

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class ThreadBasedExecutor(ThreadPoolMixin):
    """``NUM_WORKERS`` threads; a batch larger than the pool queues and still completes.

    A sub-request past the time budget is answered 504, but its thread cannot be stopped:
    it finishes in the background.
    """

    def run_group(self, group: Sequence[SubRequest], run: Run,
                  deadline: float | None) -> list[SubResult]:
        if past(deadline):
            return [timed_out(sub) for sub in group]
        futures = [self._get_pool().submit(_run_in_worker, run, sub) for sub in group]
        results = []
        for sub, future in zip(group, futures, strict=True):
            try:
                results.append(future.result(timeout=time_left(deadline)))
            except FutureTimeout:
                future.cancel()
                results.append(timed_out(sub))
        return results
