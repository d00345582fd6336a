"""``ProcessBasedExecutor``: sub-requests run in a pool of Django worker processes.

Sub-requests cross the process boundary as plain data (method, environ with the caller's
cookies and Authorization, body bytes), so every worker re-authenticates them exactly as a
server process would; results come back as plain data too. Workers are started with the
``spawn`` method (never ``fork``: the parent may hold threads, locks and DB connections) and
set Django up with the parent's settings module, plus every setting whose value differs
in the parent (its test database name, ``override_settings``), so they answer as it would.

Nothing here waits without a bound: each wave waits at most until the batch's deadline (every
batch has one, ``TIMEOUT``). A batch whose deadline passes answers its own items 504 and
leaves the pool alone, so other batches' items go on. If a worker dies (a view calls
``os._exit``, the OOM killer strikes), ``concurrent.futures`` fails every item of that pool
(502) and the pool is replaced, so the next batch works.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import pickle
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from django.conf import global_settings, settings
from django.core.exceptions import ImproperlyConfigured

from batch_requests.concurrent.admission import Slots, run_admitted
from batch_requests.concurrent.base import BaseExecutor, Run, past, timed_out
from batch_requests.concurrent.threads import per_batch_share
from batch_requests.dispatch import SubResult, error_result
from batch_requests.subrequest import SubRequest

logger = logging.getLogger("batch_requests")


_MISSING = object()


def _init_worker(settings_module: str, changed: dict[str, Any]) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    from django.conf import settings as worker_settings

    for name, value in changed.items():
        setattr(worker_settings, name, value)
    import django

    django.setup()


def settings_module() -> str:
    # Under override_settings, settings.SETTINGS_MODULE is None: the environment says it.
    module = os.environ.get("DJANGO_SETTINGS_MODULE") or settings.SETTINGS_MODULE
    if not module:
        raise ImproperlyConfigured("ProcessBasedExecutor needs DJANGO_SETTINGS_MODULE: worker "
                                   "processes import the settings module.")
    return module


def changed_settings() -> dict[str, Any]:
    """The parent's settings that differ from what a worker gets by importing the module.

    They are set in each worker before ``django.setup()``, so workers run with the parent's
    effective settings: the test database's name, ``override_settings`` values, settings
    changed at start-up by code. Values that cannot be pickled are left out (and logged).
    """
    module = importlib.import_module(settings_module())
    changed = {}
    for name in dir(settings):
        if not name.isupper():
            continue
        with warnings.catch_warnings():  # reading a deprecated setting warns on Django 4.2
            warnings.simplefilter("ignore")
            value = getattr(settings, name)
        baseline = getattr(module, name, getattr(global_settings, name, _MISSING))
        try:
            # DATABASES is always sent: Django renames test databases in place, in the very
            # dict the module holds, so a comparison cannot see that change.
            if name != "DATABASES" and value == baseline:
                continue
        except Exception:  # noqa: BLE001 - an odd __eq__ means "changed"
            pass
        try:
            pickle.dumps(value)
        except Exception:  # noqa: BLE001
            logger.warning("Setting %s cannot be sent to worker processes; they use the "
                           "settings module's value.", name)
            continue
        changed[name] = value
    return changed


def _run_in_worker(run: Run, sub: SubRequest) -> SubResult:
    from django.db import close_old_connections

    close_old_connections()
    try:
        return run(sub)
    finally:
        close_old_connections()


def shared_database_names(databases: dict | None = None) -> dict[str, str]:
    """The parent's database names, refusing those that other processes cannot reach."""
    names = {}
    for alias, config in (settings.DATABASES if databases is None else databases).items():
        name = str(config.get("NAME", ""))
        if config.get("ENGINE", "").endswith("sqlite3") and (
                name in ("", ":memory:") or "mode=memory" in name):
            raise ImproperlyConfigured(
                f"ProcessBasedExecutor needs a database every process can reach; database "
                f"{alias!r} is an in-memory SQLite database.")
        names[alias] = name
    return names


class ProcessBasedExecutor(BaseExecutor):
    """``NUM_WORKERS`` worker processes; for CPU-bound views that the GIL would serialize."""

    def __init__(self, num_workers: int) -> None:
        super().__init__(num_workers)
        self._pool: ProcessPoolExecutor | None = None
        self._pool_settings: dict[str, Any] | None = None
        self._slots = Slots(num_workers)
        self._lock = threading.Lock()

    def _get_pool(self) -> ProcessPoolExecutor:
        """The pool, replaced when the parent's effective settings have changed."""
        shared_database_names()
        changed = changed_settings()
        with self._lock:
            if self._pool is not None and changed != self._pool_settings:
                stale, self._pool = self._pool, None
                stale.shutdown(wait=False, cancel_futures=True)
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.num_workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(settings_module(), changed),
                )
                self._pool_settings = changed
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        """Replace a broken or stuck pool; its processes are terminated."""
        with self._lock:
            if self._pool is pool:
                self._pool = None
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()

    def run_group(self, group: Sequence[SubRequest], run: Run,
                  deadline: float | None) -> list[SubResult]:
        """Items go onto free worker processes only (at most ``WORKERS_PER_BATCH`` of them);
        with none free, an item runs here, in the batch request's thread. A batch's deadline
        answers its own items 504 and never touches the pool: other batches' items go on."""
        if past(deadline):
            return [timed_out(sub) for sub in group]
        try:
            pool = self._get_pool()
        except (ImproperlyConfigured, BrokenProcessPool, RuntimeError) as exc:
            logger.error("ProcessBasedExecutor cannot run the batch: %s", exc)
            return [error_result(sub.index, 500) for sub in group]
        broken: list[bool] = []

        def submit(sub: SubRequest) -> Future | None:
            if not self._slots.take():
                return None
            try:
                future = pool.submit(_run_in_worker, run, sub)
            except (BrokenProcessPool, RuntimeError):  # broken or shut down: run it here
                self._slots.give()
                broken.append(True)
                return None
            future.add_done_callback(self._slots.give)
            return future

        def collect(sub: SubRequest, future: Future) -> SubResult:
            if isinstance(future.exception(), BrokenProcessPool):
                broken.append(True)
            return self._collect(sub, future)

        results = run_admitted(group, run, submit, collect,
                               per_batch_share(self.num_workers), deadline)
        if broken:  # a worker died: every item of that pool failed; the next batch gets a new one
            self._discard(pool)
        return results

    @staticmethod
    def _collect(sub: SubRequest, future: Future) -> SubResult:
        if not future.done():
            return timed_out(sub)
        exc = future.exception()
        if exc is None:
            return future.result()
        if isinstance(exc, BrokenProcessPool):
            logger.error("A batch worker process died while running %s %s", sub.method,
                         sub.path)
            return error_result(sub.index, 502, "The worker process running this request "
                                                "died.")
        logger.error("Sub-request %s %s failed in a worker process", sub.method, sub.path,
                     exc_info=exc)
        return error_result(sub.index, 500)

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
