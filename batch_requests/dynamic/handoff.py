"""Items from any thread or event loop handed to one home loop, and results handed back.

A batch can only gather callers whose items reach the same event loop, but a process has many:
uvicorn's loop, one short-lived loop per async view under WSGI (``async_to_sync``), and threads
with no loop at all (sync views). So each batcher has one home loop (the shared background loop
of :mod:`.loop_thread`); callers on it add their items directly, everyone else appends to an
:class:`Inbox`, and only the first item of a burst wakes the home loop. Each caller waits on its
own future, an ``asyncio.Future`` of its own loop or a ``concurrent.futures.Future`` for a
thread; :func:`settle` resolves them with at most one wake-up per caller loop per batch (fewer
when batches finish faster than that loop takes its results). That loop then resolves its
results a chunk per iteration, so thousands of waiting callers finish (and free what they hold)
a batch at a time: with every caller alive at once, the cyclic GC would run a whole full
collection more.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from itertools import repeat, starmap
from typing import Any

from .split import Failed

Waiter = asyncio.Future | concurrent.futures.Future
Outcome = tuple[Waiter, Any, bool]  # (waiter, result or exception, failed)

# Results a caller loop resolves per iteration (see _Mailbox.deliver): about one batch.
DELIVER_CHUNK = 64


class Inbox:
    """A thread-safe queue drained on the home loop by ``accept(items, waiters)``.

    Lock-free: one deque of items and waiters in turn, each pair appended by one
    ``deque.extend((item, waiter))``. That call runs in C without releasing the GIL (without a
    GIL, under the deque's own lock), so two callers' pairs never interleave and a caller
    interrupted by a signal adds both or neither; the drain takes whole pairs only. A caller
    thread never waits for the home thread (a lock here, when contended, costs a GIL hand-off
    per item; so did two deques kept paired under a lock). The pair's tuple is
    freed as soon as it is appended: a waiting caller keeps no extra object alive for the cyclic
    garbage collector to count and scan (with thousands waiting, one object per caller is enough
    to add a full collection).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        accept: Callable[[list[Any], list[Waiter]], None],
    ) -> None:
        self.loop = loop
        self._accept = accept
        self._entries: deque[Any] = deque()  # item, waiter, item, waiter, ...
        self._woken = False

    def __len__(self) -> int:
        return len(self._entries) // 2

    def put(self, item: Any, waiter: Waiter) -> None:
        """Hand ``item`` over from any thread; raises RuntimeError if the home loop is closed."""
        self._entries.extend((item, waiter))
        if not self._woken:
            # Appending before reading the flag means a drain that has already reset it will
            # still see this item, and one that has not yet reset it is about to run.
            self._woken = True
            try:
                self.loop.call_soon_threadsafe(self.drain)
            except RuntimeError:
                self._woken = False
                raise

    def drain(self) -> None:
        """Accept every item handed over so far, in order (runs on the home loop)."""
        self._woken = False
        entries = self._entries
        count = len(entries) & ~1  # whole pairs (a pair is appended in one step anyway)
        if not count:
            return
        # popleft, never a swap of the deque: other threads may be appending meanwhile. The
        # C-level loop pops ``count`` entries without running any Python code in between.
        taken = list(starmap(entries.popleft, repeat((), count)))
        self._accept(taken[0::2], taken[1::2])


def is_done(waiter: Waiter) -> bool:
    return waiter.done()


def _set(waiter: Waiter, value: Any, failed: bool) -> None:
    if waiter.done():
        return
    try:
        if failed:
            waiter.set_exception(value)
        else:
            waiter.set_result(value)
    except (asyncio.InvalidStateError, concurrent.futures.InvalidStateError):
        pass  # cancelled by its caller between the check and the set (another thread)


def _set_result(waiter: Waiter, result: Any) -> None:
    """A batch function's outcome for one caller: a raised error wrapped in ``Failed`` (see
    :mod:`.split`) or a returned exception instance fails that caller; anything else is its
    result."""
    if isinstance(result, Failed):
        _set(waiter, result.error, True)
    else:
        _set(waiter, result, isinstance(result, BaseException))


_SPECIAL = (Failed, BaseException)  # results that fail their caller (see _set_result)


class _Mailbox:
    """Results bound for one caller loop; one wake-up however many batches finish meanwhile.

    Two parallel deques, extended under a lock (so posts from two threads never interleave)
    and drained by the caller loop alone, without the lock: it takes only as many waiters as
    there are results, which are appended second, so a pair is never split.
    """

    __slots__ = ("loop", "waiters", "results", "woken", "lock", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiters: deque[Waiter] = deque()
        self.results: deque[Any] = deque()
        self.woken = False
        self.lock = threading.Lock()

    def post(self, waiters: list[Waiter], results: list[Any]) -> None:
        with self.lock:
            self.waiters.extend(waiters)
            self.results.extend(results)
            if self.woken and not self.loop.is_closed():
                return  # a deliver is due, which takes these too
            self.woken = True
        try:
            self.loop.call_soon_threadsafe(self.deliver)
        except RuntimeError:  # that loop is closed (maybe before a due deliver): callers gone
            with self.lock:
                self.waiters.clear()
                self.results.clear()
                self.woken = False

    def deliver(self) -> None:
        """Resolve the waiters posted so far, at most ``DELIVER_CHUNK`` per loop iteration.

        A chunk's callers run (and free what they hold) before the next chunk is set, instead
        of thousands of wake-ups being scheduled at once: fewer objects alive at the same time,
        so fewer cyclic-GC collections (a whole full one, with 10,000 callers waiting).
        """
        waiters, results = self.waiters, self.results
        more = len(results) > DELIVER_CHUNK
        if more:
            count = DELIVER_CHUNK
        else:
            self.woken = False  # before counting: a post after this wakes the loop again
            count = len(results)
        pop_waiter, pop_result = waiters.popleft, results.popleft
        try:
            for _ in range(count):
                waiter, result = pop_waiter(), pop_result()
                # Only this loop's thread resolves or cancels its futures: no race here.
                if isinstance(result, _SPECIAL):
                    _set_result(waiter, result)
                elif not waiter.done():
                    waiter.set_result(result)
        finally:
            if more:  # still woken: posts meanwhile only append; this call takes them
                self.loop.call_soon(self.deliver)


_mailboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Mailbox] = (
    weakref.WeakKeyDictionary()
)
_mailboxes_lock = threading.Lock()


def _mailbox(loop: asyncio.AbstractEventLoop) -> _Mailbox:
    box = _mailboxes.get(loop)
    if box is None:
        with _mailboxes_lock:
            box = _mailboxes.get(loop)
            if box is None:
                box = _mailboxes[loop] = _Mailbox(loop)
    return box


def settle_results(home: asyncio.AbstractEventLoop, waiters: list[Waiter],
                   results: list[Any]) -> None:
    """Resolve ``waiters`` with ``results`` (see :func:`_set_result`), from the home loop.

    Waiters of the home loop and of threads are set here; each other loop gets its share in
    one post. The common cases (every caller on one loop) take no per-item grouping.
    """
    first = waiters[0] if waiters else None
    same = first.get_loop() if isinstance(first, asyncio.Future) else None
    if same is not None and same is not home and all(
        isinstance(w, asyncio.Future) and w.get_loop() is same for w in waiters
    ):
        _mailbox(same).post(waiters, results)
        return
    elsewhere: dict[asyncio.AbstractEventLoop, tuple[list[Waiter], list[Any]]] = {}
    for waiter, result in zip(waiters, results, strict=True):
        if isinstance(waiter, asyncio.Future):
            loop = waiter.get_loop()
            if loop is not home:
                group = elsewhere.get(loop)
                if group is None:
                    group = elsewhere[loop] = ([], [])
                group[0].append(waiter)
                group[1].append(result)
                continue
        _set_result(waiter, result)
    for loop, (group_waiters, group_results) in elsewhere.items():
        _mailbox(loop).post(group_waiters, group_results)


def settle(home: asyncio.AbstractEventLoop, outcomes: Iterable[Outcome]) -> None:
    """Resolve ``(waiter, value, failed)`` triples from the home loop."""
    waiters: list[Waiter] = []
    results: list[Any] = []
    for waiter, value, failed in outcomes:
        waiters.append(waiter)
        results.append(Failed(value) if failed else value)
    settle_results(home, waiters, results)


def fail_all(
    home: asyncio.AbstractEventLoop, waiters: Iterable[Waiter], error: BaseException
) -> None:
    waiters = list(waiters)
    settle_results(home, waiters, [Failed(error)] * len(waiters))
