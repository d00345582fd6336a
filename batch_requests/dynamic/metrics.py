"""Counters and histograms per batched function, kept in-process and, optionally, in Prometheus.

The engines call a :class:`Recorder` once per call of the batch function (never per item)::

    rec = metrics.recorder("app.predict", "inprocess")   # cached per (function, backend)
    rec.observe_batch(size, waited, ran)                  # every call, retried halves included
    rec.observe_error(size)                               # a call that raised
    rec.set_queue_depth(depth)                            # items waiting right now
    rec.observe_redeliveries(count)                       # Redis: entries claimed again
    rec.observe_dead_letters(count)                       # Redis: entries dead-lettered

:func:`snapshot` returns a plain, JSON-serializable copy of everything recorded in this process;
:func:`reset` forgets it (for tests). When ``prometheus_client`` is importable the same numbers
also go to ``batch_requests_dynamic_*`` metrics in its default registry, labelled ``function``
and ``backend``; they are created on the first recorder, never at import.

The ``METRICS`` option (``DYNAMIC_BATCHER__METRICS``, default on) is read by :func:`recorder`
each time it is called: when it is off, the recorder is :data:`NOOP`, which does nothing.
Each recorder holds a lock only for a few additions, so it can be fed from the batching loop and
from worker threads at once.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from typing import Any

from . import conf

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "NOOP",
    "SECONDS_BUCKETS",
    "NullRecorder",
    "Recorder",
    "recorder",
    "reset",
    "snapshot",
]

#: Upper bounds (inclusive, Prometheus ``le``) of the batch-size histogram; ``+Inf`` follows.
BATCH_SIZE_BUCKETS: tuple[float, ...] = tuple(float(2**n) for n in range(11))  # 1 .. 1024
#: Upper bounds in seconds of the wait and run histograms, roughly 1-2.5-5 per decade.
SECONDS_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
)
PREFIX = "batch_requests_dynamic"
LABELS = ("function", "backend")


def _bucket_key(bound: float) -> str:
    return f"{bound:g}"


class _Histogram:
    """Counts per bucket (cumulated only by :meth:`as_dict`), sum, min and max.

    It has no lock of its own: the recorder that owns it holds its lock around every use.
    """

    __slots__ = ("bounds", "counts", "count", "sum", "min", "max")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.clear()

    def clear(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.count = 0
        self.sum = 0.0
        self.min: float | None = None
        self.max: float | None = None

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value
        if self.count == 1:
            self.min = self.max = value
        elif value < self.min:  # type: ignore[operator]
            self.min = value
        elif value > self.max:  # type: ignore[operator]
            self.max = value

    def as_dict(self) -> dict[str, Any]:
        buckets: dict[str, int] = {}
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            buckets[_bucket_key(bound)] = running
        buckets["+Inf"] = running + self.counts[-1]
        return {"count": self.count, "sum": self.sum, "min": self.min, "max": self.max,
                "buckets": buckets}


class NullRecorder:
    """What :func:`recorder` returns when metrics are off: every method does nothing."""

    __slots__ = ()
    enabled = False

    def observe_batch(self, size: int, waited: float, ran: float) -> None:
        pass

    def observe_error(self, size: int) -> None:
        pass

    def set_queue_depth(self, depth: int) -> None:
        pass

    def observe_redeliveries(self, count: int) -> None:
        pass

    def observe_dead_letters(self, count: int) -> None:
        pass


NOOP = NullRecorder()


class Recorder:
    """The numbers of one batched function under one backend (get it from :func:`recorder`)."""

    enabled = True

    def __init__(self, function: str, backend: str) -> None:
        self.function = function
        self.backend = backend
        self._lock = threading.Lock()
        self._batch_size = _Histogram(BATCH_SIZE_BUCKETS)
        self._wait = _Histogram(SECONDS_BUCKETS)
        self._run = _Histogram(SECONDS_BUCKETS)
        self._clear()
        self._prom = _prometheus_children(function, backend)
        self.listed = True  # shown by snapshot(); false after reset() until used again

    def _clear(self) -> None:
        self.calls = 0
        self.items = 0
        self.errors = 0
        self.error_items = 0
        self.queue_depth = 0
        self.redeliveries = 0
        self.dead_letters = 0
        self._batch_size.clear()
        self._wait.clear()
        self._run.clear()

    def observe_batch(self, size: int, waited: float, ran: float) -> None:
        """One call of the batch function with ``size`` items, ``waited`` and ``ran`` seconds."""
        with self._lock:
            if not self.listed:
                self._relist()
            self.calls += 1
            self.items += size
            self._batch_size.observe(size)
            self._wait.observe(waited)
            self._run.observe(ran)
        prom = self._prom
        if prom is not None:
            prom.calls.inc()
            prom.items.inc(size)
            prom.batch_size.observe(size)
            prom.wait.observe(waited)
            prom.run.observe(ran)

    def observe_error(self, size: int) -> None:
        """One call of the batch function, with ``size`` items, raised (or failed as a whole)."""
        with self._lock:
            if not self.listed:
                self._relist()
            self.errors += 1
            self.error_items += size
        prom = self._prom
        if prom is not None:
            prom.errors.inc()

    def set_queue_depth(self, depth: int) -> None:
        """Items waiting for a batch right now."""
        if not self.listed:
            with self._lock:
                if not self.listed:
                    self._relist()
        self.queue_depth = depth  # one assignment, atomic: no lock needed
        prom = self._prom
        if prom is not None:
            prom.queue_depth.set(depth)

    def observe_redeliveries(self, count: int) -> None:
        """Redis: ``count`` entries claimed again from a dead or slow worker."""
        with self._lock:
            if not self.listed:
                self._relist()
            self.redeliveries += count
        prom = self._prom
        if prom is not None:
            prom.redeliveries.inc(count)

    def observe_dead_letters(self, count: int) -> None:
        """Redis: ``count`` entries moved to the dead-letter stream."""
        with self._lock:
            if not self.listed:
                self._relist()
            self.dead_letters += count
        prom = self._prom
        if prom is not None:
            prom.dead_letters.inc(count)

    def as_dict(self) -> dict[str, Any]:
        """A consistent copy of this recorder's numbers."""
        with self._lock:
            return {
                "backend": self.backend,
                "calls": self.calls,
                "items": self.items,
                "errors": self.errors,
                "error_items": self.error_items,
                "queue_depth": self.queue_depth,
                "redeliveries": self.redeliveries,
                "dead_letters": self.dead_letters,
                "batch_size": self._batch_size.as_dict(),
                "wait_seconds": self._wait.as_dict(),
                "run_seconds": self._run.as_dict(),
            }

    def _reset(self) -> None:
        with self._lock:
            self._clear()
            self.listed = False
            self._prom = None

    def _relist(self) -> None:
        """Show this recorder again after :func:`reset` (the caller holds its lock)."""
        self._prom = _prometheus_children(self.function, self.backend)
        self.listed = True


_registry_lock = threading.Lock()
_recorders: dict[tuple[str, str], Recorder] = {}


def recorder(function: str, backend: str) -> Recorder | NullRecorder:
    """The recorder of ``function`` under ``backend``, or :data:`NOOP` when metrics are off.

    The ``METRICS`` option is read on every call; a recorder already handed out keeps recording
    after the option is turned off, so callers ask once per queue or worker, not per item.
    """
    if not conf.get("METRICS"):
        return NOOP
    key = (function, backend)
    found = _recorders.get(key)
    if found is None:
        with _registry_lock:
            found = _recorders.get(key)
            if found is None:
                found = _recorders[key] = Recorder(function, backend)
    if not found.listed:
        with found._lock:
            if not found.listed:
                found._relist()
    return found


def _listed() -> list[Recorder]:
    with _registry_lock:
        return [rec for rec in _recorders.values() if rec.listed]


def snapshot() -> dict[str, dict[str, Any]]:
    """A copy of every recorder's numbers, keyed by function name.

    When one function name is recorded under two backends in this process, each of its
    entries is keyed ``"name[backend]"`` instead, so neither hides the other.
    """
    recorders = _listed()
    names: dict[str, int] = {}
    for rec in recorders:
        names[rec.function] = names.get(rec.function, 0) + 1
    result: dict[str, dict[str, Any]] = {}
    for rec in recorders:
        key = rec.function if names[rec.function] == 1 else f"{rec.function}[{rec.backend}]"
        result[key] = rec.as_dict()
    return result


def reset() -> None:
    """Forget everything recorded (for tests); Prometheus then shows nothing either.

    Recorders already handed out (a running batcher keeps its own) are zeroed in place, not
    replaced: they go on recording, and reappear in :func:`snapshot` once used again.
    """
    with _registry_lock:
        families = _families
        if families is not None:
            for family in families.all():
                family.clear()
        for rec in _recorders.values():
            rec._reset()


# --- Prometheus, when installed ------------------------------------------------------------


class _PromFamilies:
    """The ``batch_requests_dynamic_*`` metrics, registered once in the default registry.

    They are ordinary ``prometheus_client`` metrics, updated on each observation, so its
    multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) adds up the processes of a pre-fork server.
    """

    def __init__(self, client: Any) -> None:
        def make(kind: Any, name: str, doc: str, **extra: Any) -> Any:
            try:
                return kind(name, doc, LABELS, **extra)
            except ValueError:  # already registered (this module was reloaded): reuse it
                existing = client.REGISTRY._names_to_collectors.get(name)
                if existing is None:
                    raise
                return existing

        self.batch_size = make(client.Histogram, f"{PREFIX}_batch_size",
                               "Items given to one call of the batch function.",
                               buckets=BATCH_SIZE_BUCKETS)
        self.wait = make(client.Histogram, f"{PREFIX}_wait_seconds",
                         "Seconds the oldest item of a batch waited before the call started.",
                         buckets=SECONDS_BUCKETS)
        self.run = make(client.Histogram, f"{PREFIX}_run_seconds",
                        "Seconds one call of the batch function took.", buckets=SECONDS_BUCKETS)
        self.calls = make(client.Counter, f"{PREFIX}_calls_total",
                          "Calls of the batch function, retried halves of a failed batch "
                          "included.")
        self.items = make(client.Counter, f"{PREFIX}_items_total",
                          "Items given to the batch function (an item of a retried half "
                          "counts again).")
        self.errors = make(client.Counter, f"{PREFIX}_errors_total",
                           "Calls of the batch function that raised.")
        self.queue_depth = make(client.Gauge, f"{PREFIX}_queue_depth",
                                "Items waiting for a batch.", multiprocess_mode="livesum")
        self.redeliveries = make(client.Counter, f"{PREFIX}_redeliveries_total",
                                 "Redis entries claimed again from a dead or slow worker.")
        self.dead_letters = make(client.Counter, f"{PREFIX}_dead_letters_total",
                                 "Redis entries moved to the dead-letter stream.")

    def all(self) -> list[Any]:
        return [self.batch_size, self.wait, self.run, self.calls, self.items, self.errors,
                self.queue_depth, self.redeliveries, self.dead_letters]


class _PromChildren:
    """One recorder's labelled children of the families, bound once."""

    __slots__ = ("batch_size", "wait", "run", "calls", "items", "errors", "queue_depth",
                 "redeliveries", "dead_letters")

    def __init__(self, families: _PromFamilies, function: str, backend: str) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(families, name).labels(function, backend))


_families: _PromFamilies | None = None
_prometheus_checked = False
_prometheus_lock = threading.Lock()


def _prometheus_families() -> _PromFamilies | None:
    """The metric families, made on first use; ``None`` without ``prometheus_client``."""
    global _families, _prometheus_checked
    if _prometheus_checked:
        return _families
    with _prometheus_lock:
        if not _prometheus_checked:
            try:
                import prometheus_client
            except ImportError:
                pass
            else:
                _families = _PromFamilies(prometheus_client)
            _prometheus_checked = True
        return _families


def _prometheus_children(function: str, backend: str) -> _PromChildren | None:
    families = _prometheus_families()
    return None if families is None else _PromChildren(families, function, backend)
