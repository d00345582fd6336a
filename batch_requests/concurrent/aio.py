"""``AsyncExecutor``: sub-requests as asyncio tasks, for ASGI deployments.

Each item is resolved first: an async view runs through Django's async handler path as a
task on the event loop, so many awaiting views overlap without a thread each; a sync view
runs through the sync handler path on a free thread of the executor's pool, so sync views
overlap too. Under ASGI the coroutines run on the
server's event loop; under WSGI ``async_to_sync`` gives each batch a loop of its own.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence

from asgiref.sync import async_to_sync, iscoroutinefunction, sync_to_async
from django.urls import Resolver404, resolve

from batch_requests.concurrent.base import (
    Run,
    deadline_after,
    past,
    time_left,
    timed_out,
    waves,
)
from batch_requests.concurrent.threads import ThreadPoolMixin, _run_in_worker, per_batch_share
from batch_requests.dispatch import SubResult, run_subrequest_async
from batch_requests.subrequest import SubRequest


def is_async_view(sub: SubRequest) -> bool:
    try:
        func = resolve(sub.path).func
    except Resolver404:
        return False
    return iscoroutinefunction(getattr(func, "view_class", func)) or iscoroutinefunction(func)


class AsyncExecutor(ThreadPoolMixin):
    """At most ``WORKERS_PER_BATCH`` items of one batch in flight.

    Sync views run on a free thread of this executor's own pool of ``NUM_WORKERS`` threads
    (not the event loop's default pool, which has only ``cpu_count + 4``); when none is free,
    in the batch request's own thread (asgiref's ``thread_sensitive`` mode), so a batch never
    waits behind another batch's items. At the deadline, async views are cancelled; a sync
    view's thread finishes in the background and is freed then.
    """

    thread_name_prefix = "batch_requests_async"

    def execute(self, subrequests: Sequence[SubRequest], run: Run,
                timeout: float | None = None) -> list[SubResult]:
        return async_to_sync(self.aexecute)(subrequests, run, timeout)

    async def aexecute(self, subrequests: Sequence[SubRequest], run: Run,
                       timeout: float | None = None) -> list[SubResult]:
        deadline = deadline_after(timeout)
        results: list[SubResult] = []
        for group in waves(subrequests):
            results.extend(await self.arun_group(group, run, deadline))
        return results

    def run_group(self, group: Sequence[SubRequest], run: Run,
                  deadline: float | None) -> list[SubResult]:
        return async_to_sync(self.arun_group)(group, run, deadline)

    async def arun_group(self, group: Sequence[SubRequest], run: Run,
                         deadline: float | None) -> list[SubResult]:
        if past(deadline):
            return [timed_out(sub) for sub in group]
        limit = asyncio.Semaphore(per_batch_share(self.num_workers))
        started: set[int] = set()
        tasks = [asyncio.ensure_future(self._one(sub, run, limit, started)) for sub in group]
        _done, pending = await asyncio.wait(tasks, timeout=time_left(deadline))
        for task in pending:
            task.cancel()
        return [timed_out(sub, sub.index in started) if task in pending else task.result()
                for sub, task in zip(group, tasks, strict=True)]

    async def _one(self, sub: SubRequest, run: Run, limit: asyncio.Semaphore,
                   started: set[int]) -> SubResult:
        async with limit:
            started.add(sub.index)
            if is_async_view(sub):
                return await run_subrequest_async(sub)
            context = contextvars.copy_context()
            future = self._submit(context.run, _run_in_worker, run, sub)
            if future is None:  # every pool thread is busy: the batch request's own thread
                return await sync_to_async(run, thread_sensitive=True)(sub)
            return await asyncio.wrap_future(future)
