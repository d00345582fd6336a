"""``ThreadBasedExecutor``: a thread pool shared by all batches of the process."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django.db import connections

from batch_requests.concurrent.admission import Slots, run_admitted
from batch_requests.concurrent.base import BaseExecutor, Run
from batch_requests.conf import batch_settings
from batch_requests.dispatch import SubResult
from batch_requests.subrequest import SubRequest


def _run_in_worker(run: Run, sub: SubRequest) -> SubResult:
    try:
        return run(sub)
    finally:
        # Worker threads outlive requests: close the connections this sub-request opened.
        connections.close_all()


class ThreadPoolMixin(BaseExecutor):
    """A pool of ``NUM_WORKERS`` threads, created on first use, shared by all batches.

    ``Slots`` counts its free threads: a batch's item goes to the pool only onto a free one
    (see ``admission``).
    """

    thread_name_prefix = "batch_requests"

    def __init__(self, num_workers: int) -> None:
        super().__init__(num_workers)
        self._pool: ThreadPoolExecutor | None = None
        self._slots = Slots(num_workers)
        self._lock = threading.Lock()

    def _get_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.num_workers,
                                                thread_name_prefix=self.thread_name_prefix)
            return self._pool

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Future | None:
        """``fn(*args)`` on a free pool thread, or None when every thread is busy."""
        if not self._slots.take():
            return None
        try:
            future = self._get_pool().submit(fn, *args)
        except BaseException:
            self._slots.give()
            raise
        future.add_done_callback(self._slots.give)
        return future

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class ThreadBasedExecutor(ThreadPoolMixin):
    """``NUM_WORKERS`` threads shared by all batches; one batch holds at most
    ``WORKERS_PER_BATCH`` of them, and runs an item in its own thread when none is free.

    A sub-request past the time budget is answered 504, but its thread cannot be stopped:
    it finishes in the background (a streaming body stops being read at the deadline).
    """

    def run_group(self, group: Sequence[SubRequest], run: Run,
                  deadline: float | None) -> list[SubResult]:
        return run_admitted(group, run, lambda sub: self._submit(_run_in_worker, run, sub),
                            _collect, per_batch_share(self.num_workers), deadline)


def _collect(sub: SubRequest, future: Future) -> SubResult:
    return future.result()  # run_subrequest turns every failure into a result


def per_batch_share(num_workers: int) -> int:
    """How many of a pool's workers one batch may hold at once (``WORKERS_PER_BATCH``)."""
    return max(1, min(batch_settings.WORKERS_PER_BATCH, num_workers))
