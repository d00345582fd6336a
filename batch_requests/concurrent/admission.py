"""How a batch's items get onto a shared pool without starving other batches.

A pool (threads or processes) is shared by every batch of the process, so one batch must
never hold it all, nor wait behind another batch's items. ``run_admitted`` therefore:

- puts an item on the pool only when a worker is free (``Slots``), so nothing queues;
- holds at most ``share`` workers at once for one batch (``WORKERS_PER_BATCH``); past that,
  its next item waits for one of its own to finish;
- runs the next item in the batch request's own thread when no worker is free, as the
  sequential executor would: a batch never waits behind another batch's items and no pool
  can deadlock (the batch then answers once that item has run, as in sequential mode);
- starts nothing once the deadline has passed: items not started answer 504, and items still
  running answer 504 while their worker finishes in the background (it is freed then).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait

from batch_requests.concurrent.base import Run, past, time_left, timed_out
from batch_requests.dispatch import SubResult
from batch_requests.subrequest import SubRequest


class Slots:
    """The free workers of one pool; taken without blocking, given back when an item ends."""

    def __init__(self, size: int) -> None:
        self._free = threading.BoundedSemaphore(size)

    def take(self) -> bool:
        return self._free.acquire(blocking=False)

    def give(self, _future: Future | None = None) -> None:
        self._free.release()


Submit = Callable[[SubRequest], "Future | None"]
Collect = Callable[[SubRequest, Future], SubResult]


def run_admitted(group: Sequence[SubRequest], run_here: Run, submit: Submit, collect: Collect,
                 share: int, deadline: float | None) -> list[SubResult]:
    """Run ``group`` (items that may overlap): ``submit`` puts one on a free pool worker or
    returns None; ``run_here`` runs one in this thread; ``collect`` reads a finished future."""
    results: dict[int, SubResult] = {}
    pending = deque(group)
    running: dict[Future, SubRequest] = {}
    while (pending or running) and not past(deadline):
        no_worker = False
        while pending and len(running) < share:
            future = submit(pending[0])
            if future is None:
                no_worker = True
                break
            running[future] = pending.popleft()
        if no_worker:  # every worker is busy with other batches: run it here, as sequentially
            sub = pending.popleft()
            results[sub.index] = run_here(sub)
            done = [future for future in running if future.done()]
        else:
            done, _ = wait(running, timeout=time_left(deadline), return_when=FIRST_COMPLETED)
        for future in done:
            sub = running.pop(future)
            results[sub.index] = collect(sub, future)
    for future, sub in running.items():
        future.cancel()  # a no-op once it runs: its worker is given back when it ends
        results[sub.index] = timed_out(sub, started=True)
    for sub in pending:
        results[sub.index] = timed_out(sub)
    return [results[sub.index] for sub in group]
