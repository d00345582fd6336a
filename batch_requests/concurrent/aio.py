"""``AsyncExecutor``: sub-requests as asyncio tasks, for ASGI deployments.

Each item is resolved first: an async view runs through Django's async handler path as a
task on the event loop, so many awaiting views overlap without a thread each; a sync view
runs through the sync handler path in a worker thread (asgiref's ``sync_to_async`` with
``thread_sensitive=False``), so sync views overlap too. Under ASGI the coroutines run on the
server's event loop; under WSGI ``async_to_sync`` gives each batch a loop of its own.
"""

from __future__ import annotations

import asyncio
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
from batch_requests.concurrent.threads import ThreadPoolMixin, _run_in_worker
from batch_requests.dispatch import SubResult, run_subrequest_async
from batch_requests.subrequest import SubRequest


def is_async_view(sub: SubRequest) -> bool:
    try:
        func = resolve(sub.path).func
    except Resolver404:
        return False
    return iscoroutinefunction(getattr(func, "view_class", func)) or iscoroutinefunction(func)


class AsyncExecutor(ThreadPoolMixin):
    """Concurrency bounded by ``NUM_WORKERS`` items in flight per batch.

    Sync views run in a thread pool of ``NUM_WORKERS`` threads of this executor's own, not in
    the event loop's default pool (which has only ``cpu_count + 4`` threads).
    """

    thread_name_prefix = "batch_requests_async"

    def execute(self, subrequests: Sequence[SubRequest], run: Run,
                timeout: float | None = None) -> list[SubResult]:
        return async_to_sync(self.aexecute)(subrequests, run, timeout)

    async def aexecute(self, subrequests: Sequence[SubRequest], run: Run,
                       timeout: float | None = None) -> list[SubResult]:
        deadline = deadline_after(timeout)
        limit = asyncio.Semaphore(self.num_workers)
        results: list[SubResult] = []
        for group in waves(subrequests):
            results.extend(await self.arun_group(group, run, deadline, limit))
        return results

    def run_group(self, group: Sequence[SubRequest], run: Run,
                  deadline: float | None) -> list[SubResult]:
        return async_to_sync(self.arun_group)(group, run, deadline)

    async def arun_group(self, group: Sequence[SubRequest], run: Run, deadline: float | None,
                         limit: asyncio.Semaphore | None = None) -> list[SubResult]:
        if past(deadline):
            return [timed_out(sub) for sub in group]
        limit = limit or asyncio.Semaphore(self.num_workers)
        tasks = [asyncio.ensure_future(self._one(sub, run, limit)) for sub in group]
        _done, pending = await asyncio.wait(tasks, timeout=time_left(deadline))
        for task in pending:
            task.cancel()
        return [timed_out(sub) if task in pending else task.result()
                for sub, task in zip(group, tasks, strict=True)]

    async def _one(self, sub: SubRequest, run: Run, limit: asyncio.Semaphore) -> SubResult:
        async with limit:
            if is_async_view(sub):
                return await run_subrequest_async(sub)
            in_thread = sync_to_async(_run_in_worker, thread_sensitive=False,
                                      executor=self._get_pool())
            return await in_thread(run, sub)
