"""Ready-made batchers for Django models, built on :class:`~.inprocess.InProcessBatcher`.

- :class:`BulkCreateBatcher`: callers hand in unsaved instances (or dicts of field values);
  each batch is one ``bulk_create`` call and each caller gets its own saved instance back.
- :class:`InBulkLoader`: callers ask for one object by primary key (or another unique field);
  each batch is one ``in_bulk`` query, and a key already being looked up is not looked up again:
  callers asking for it meanwhile share that lookup (DataLoader style).

The batch functions are sync and run in a thread of the engine's thread pool, never on an event
loop. Django keeps one database connection per thread and closes old ones only around requests,
so each batch calls :func:`django.db.close_old_connections` before and after its query, as a
request would: with ``CONN_MAX_AGE = 0`` (the default) every batch opens and closes its own
connection, with persistent connections a pool thread reuses its connection until it is too old
or broken. The batch runs on that thread's own connection, so it is never part of the caller's
transaction (see ``docs/dynamic-ready-made.md``).

Django is imported inside the methods only: importing this module needs no configured settings.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import loop_thread
from .errors import BatchTimeoutError
from .inprocess import InProcessBatcher
from .interface import has_running_loop

if TYPE_CHECKING:
    from django.db.models import Model, QuerySet

__all__ = ["BulkCreateBatcher", "InBulkLoader"]


def _close_old_connections() -> None:
    from django.db import close_old_connections

    close_old_connections()


class BulkCreateBatcher(InProcessBatcher):
    """Save model instances in batches: one ``Model.objects.bulk_create(objs)`` per batch.

    ``creator.create(obj)`` in sync code, ``await creator.acreate(obj)`` in async code (or the
    engine's ``creator(obj)``, ``creator.call(obj)``, ``await creator.acall(obj)``). ``obj`` is
    an unsaved instance of ``model`` or a mapping of field values (``model(**fields)`` is built
    in the caller, so a bad field name raises there). The caller gets its instance back, saved,
    with its primary key set where the database returns it (PostgreSQL, SQLite 3.35+,
    MariaDB 10.5+; not MySQL). ``bulk_create`` sends no ``pre_save``/``post_save`` signals and
    calls no ``save()``.

    The same instance submitted twice into one batch is inserted once; both callers get it.
    An instance that is already saved is refused with ``ValueError`` in the caller.

    When ``bulk_create`` raises (say an ``IntegrityError`` for one duplicate key), the engine
    splits the batch and retries the halves: each call is its own transaction, so the innocent
    items are saved and only the offending ones get the error. ``split_on_error=False`` fails
    the whole batch instead.

    ``using`` picks the database alias (default: the router's choice); ``bulk_create_options``
    are passed to ``bulk_create`` (for example ``{"batch_size": 500}``). The other keywords are
    :class:`InProcessBatcher`'s.
    """

    def __init__(
        self,
        model: type[Model],
        *,
        using: str | None = None,
        bulk_create_options: Mapping[str, Any] | None = None,
        max_batch_size: int | None = None,
        max_wait: float | None = None,
        max_concurrent_batches: int | None = None,
        max_queue_size: int | None = None,
        timeout: float | None = None,
        split_on_error: bool | None = None,
        name: str | None = None,
    ) -> None:
        self.model = model
        self.using = using
        self.bulk_create_options = dict(bulk_create_options or {})
        super().__init__(
            self._create_batch,
            max_batch_size=max_batch_size,
            max_wait=max_wait,
            max_concurrent_batches=max_concurrent_batches,
            max_queue_size=max_queue_size,
            timeout=timeout,
            offload_sync=True,
            split_on_error=split_on_error,
            name=name or f"{model._meta.label}.bulk_create",
        )

    def prepare(self, item: Model | Mapping[str, Any]) -> Model:
        """The unsaved instance to insert for ``item`` (raises in the caller if unusable)."""
        model = self.model
        if isinstance(item, Mapping):
            obj = model(**item)
        elif isinstance(item, model) and (
            type(item)._meta.concrete_model is model._meta.concrete_model
        ):
            obj = item
        else:
            raise TypeError(f"expected an unsaved {model.__name__} or a dict of its fields, "
                            f"got {type(item).__name__}")
        if not obj._state.adding:
            raise ValueError(f"{obj!r} is already saved; BulkCreateBatcher only inserts")
        return obj

    async def acall(self, item: Model | Mapping[str, Any]) -> Model:
        return await super().acall(self.prepare(item))

    def call(self, item: Model | Mapping[str, Any], timeout: float | None = None) -> Model:
        return super().call(self.prepare(item), timeout)

    async def acreate(self, item: Model | Mapping[str, Any]) -> Model:
        """Insert ``item`` in the next batch and return the saved instance."""
        return await self.acall(item)

    def create(self, item: Model | Mapping[str, Any], timeout: float | None = None) -> Model:
        """Blocking form of :meth:`acreate`, for sync code."""
        return self.call(item, timeout)

    def _create_batch(self, objs: list[Model]) -> list[Model]:
        """The batch function: one ``bulk_create`` (runs in a thread of the engine's pool)."""
        unique = list({id(obj): obj for obj in objs}.values())
        for obj in unique:
            # A failed call (rolled back) may have marked some of them saved; this one is a retry.
            obj._state.adding = True
            obj._state.db = None
        manager = self.model._default_manager
        if self.using is not None:
            manager = manager.db_manager(self.using)
        _close_old_connections()
        try:
            manager.bulk_create(unique, **self.bulk_create_options)
        finally:
            _close_old_connections()
        return objs


class InBulkLoader(InProcessBatcher):
    """Load objects by primary key (or another unique field) in batches over ``in_bulk``.

    ``loader.load(pk)`` in sync code, ``await loader.aload(pk)`` in async code (or the engine's
    ``loader(pk)``, ``loader.call(pk)``, ``await loader.acall(pk)``). ``source`` is a model or a
    queryset (``Article.objects.select_related("author")``, ``Article.objects.filter(...)``):
    only its rows can be found.

    Keys are first converted by the field's ``to_python`` (so ``"5"`` and ``5`` are one key of
    an integer primary key; a key that cannot be converted raises ``ValidationError`` in the
    caller). A key that is already being looked up, in a batch waiting or running, is not
    queued again: the new caller shares that lookup and gets the same instance (treat it as
    read-only, or copy it). Nothing is cached after the lookup answers.

    A key with no row gives its caller ``None``; with ``raise_missing=True`` it raises
    ``Model.DoesNotExist`` instead (for that caller only). ``using`` picks the database alias.
    The other keywords are :class:`InProcessBatcher`'s.
    """

    def __init__(
        self,
        source: type[Model] | QuerySet,
        *,
        field_name: str = "pk",
        raise_missing: bool = False,
        using: str | None = None,
        max_batch_size: int | None = None,
        max_wait: float | None = None,
        max_concurrent_batches: int | None = None,
        max_queue_size: int | None = None,
        timeout: float | None = None,
        split_on_error: bool | None = None,
        name: str | None = None,
    ) -> None:
        if isinstance(source, type):
            self.model: type[Model] = source
            self._source: Any = None
        else:
            self.model = source.model
            self._source = source
        meta = self.model._meta
        field = meta.pk if field_name == "pk" else meta.get_field(field_name)
        unique = field.primary_key or field.unique or any(
            tuple(constraint.fields) == (field.name,)
            for constraint in meta.total_unique_constraints
        )
        if not unique:
            raise ValueError(f"in_bulk()'s field_name must be a unique field; "
                             f"{field_name!r} is not")
        self.field = field
        self.field_name = field_name
        self.raise_missing = raise_missing
        self.using = using
        self._load_timeout = timeout
        self._flight_lock = threading.Lock()
        self._in_flight: dict[Any, concurrent.futures.Future[Any]] = {}
        super().__init__(
            self._load_batch,
            max_batch_size=max_batch_size,
            max_wait=max_wait,
            max_concurrent_batches=max_concurrent_batches,
            max_queue_size=max_queue_size,
            timeout=timeout,
            offload_sync=True,
            split_on_error=split_on_error,
            name=name or f"{meta.label}.in_bulk",
        )

    def key(self, value: Any) -> Any:
        """The normalized key for ``value`` (the field's ``to_python``)."""
        return self.field.to_python(value)

    @property
    def in_flight(self) -> int:
        """Distinct keys being looked up right now (queued or running)."""
        return len(self._in_flight)

    def _shared(self, value: Any) -> concurrent.futures.Future[Any]:
        """The one lookup of this key: the one in flight, or a new one queued on the home loop."""
        key = self.key(value)
        with self._flight_lock:
            shared = self._in_flight.get(key)
            if shared is None:
                shared = asyncio.run_coroutine_threadsafe(
                    InProcessBatcher.acall(self, key), loop_thread.get_loop()
                )
                self._in_flight[key] = shared
                fresh = True
            else:
                fresh = False
        if fresh:
            shared.add_done_callback(lambda done: self._landed(key, done))
        return shared

    def _landed(self, key: Any, done: concurrent.futures.Future[Any]) -> None:
        with self._flight_lock:
            if self._in_flight.get(key) is done:
                del self._in_flight[key]

    async def aload(self, value: Any) -> Model | None:
        """The object whose key is ``value`` (``None`` if there is none, unless raise_missing)."""
        # Shielded: one caller giving up (cancelled) must not cancel the lookup others share.
        return await asyncio.shield(asyncio.wrap_future(self._shared(value)))

    def load(self, value: Any, timeout: float | None = None) -> Model | None:
        """Blocking form of :meth:`aload`, for sync code."""
        if has_running_loop():
            raise RuntimeError("load() blocks; inside an event loop use 'await loader.aload()'")
        if loop_thread.in_loop_thread():
            raise RuntimeError("blocking call from the batcher's own loop thread; use 'await'")
        if timeout is None:
            timeout = self._load_timeout
        shared = self._shared(value)
        try:
            return shared.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            if shared.done():
                raise  # the engine's own timeout (a BatchTimeoutError) or the function's
            raise BatchTimeoutError(f"no result within {timeout} s") from exc

    async def acall(self, item: Any) -> Model | None:
        return await self.aload(item)

    def call(self, item: Any, timeout: float | None = None) -> Model | None:
        return self.load(item, timeout)

    def _queryset(self) -> QuerySet:
        queryset = self._source if self._source is not None else self.model._default_manager.all()
        if self.using is not None:
            queryset = queryset.using(self.using)
        return queryset

    def _load_batch(self, keys: list[Any]) -> list[Any]:
        """The batch function: one ``in_bulk`` (runs in a thread of the engine's pool)."""
        distinct = list(dict.fromkeys(keys))
        _close_old_connections()
        try:
            found = self._queryset().in_bulk(distinct, field_name=self.field_name)
        finally:
            _close_old_connections()
        if not self.raise_missing:
            return [found.get(key) for key in keys]
        model, field_name = self.model, self.field_name
        return [
            found[key] if key in found
            else model.DoesNotExist(f"{model.__name__} with {field_name}={key!r} does not exist")
            for key in keys
        ]
