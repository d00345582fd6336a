"""Items from any thread or event loop handed to one home loop, and results handed back.

A batch can only gather callers whose items reach the same event loop, but a process has many:
uvicorn's loop, one short-lived loop per async view under WSGI (``async_to_sync``), and threads
with no loop at all (sync views). So each batcher has one home loop (the shared background loop
of :mod:`.loop_thread`); callers on it add their items directly, everyone else appends to an
:class:`Inbox`, and only the first item of a burst wakes the home loop. Each caller waits on its
own future, an ``asyncio.Future`` of its own loop or a ``concurrent.futures.Future`` for a
thread; :func:`settle` resolves them with at most one wake-up per caller loop per batch (fewer
when batches finish faster than that loop takes its results).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

Waiter = asyncio.Future | concurrent.futures.Future
Outcome = tuple[Waiter, Any, bool]  # (waiter, result or exception, failed)


class Inbox:
    """A thread-safe queue drained on the home loop by ``accept([(item, waiter), ...])``."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        accept: Callable[[list[tuple[Any, Waiter]]], None],
    ) -> None:
        self.loop = loop
        self._accept = accept
        self._items: deque[tuple[Any, Waiter]] = deque()
        self._woken = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Any, waiter: Waiter) -> None:
        """Hand ``item`` over from any thread; raises RuntimeError if the home loop is closed."""
        self._items.append((item, waiter))
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
        items = self._items
        taken = []
        while items:  # popleft, not a copy and clear: other threads may append meanwhile
            taken.append(items.popleft())
        if taken:
            self._accept(taken)


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


class _Mailbox:
    """Outcomes bound for one caller loop; one wake-up however many batches finish meanwhile."""

    __slots__ = ("loop", "outcomes", "woken", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.outcomes: deque[Outcome] = deque()
        self.woken = False

    def post(self, outcomes: list[Outcome]) -> None:
        self.outcomes.extend(outcomes)
        if not self.woken:
            self.woken = True
            try:
                self.loop.call_soon_threadsafe(self.deliver)
            except RuntimeError:  # that loop is closed: its callers are gone
                self.outcomes.clear()
                self.woken = False

    def deliver(self) -> None:
        self.woken = False
        outcomes = self.outcomes
        while outcomes:
            waiter, value, failed = outcomes.popleft()
            _set(waiter, value, failed)


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


def settle(home: asyncio.AbstractEventLoop, outcomes: Iterable[Outcome]) -> None:
    """Resolve each waiter from the home loop, one wake-up per other loop."""
    elsewhere: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        waiter = outcome[0]
        if isinstance(waiter, asyncio.Future):
            loop = waiter.get_loop()
            if loop is not home:
                group = elsewhere.get(loop)
                if group is None:
                    group = elsewhere[loop] = []
                group.append(outcome)
                continue
        _set(waiter, outcome[1], outcome[2])
    for loop, group in elsewhere.items():
        _mailbox(loop).post(group)


def fail_all(
    home: asyncio.AbstractEventLoop, waiters: Iterable[Waiter], error: BaseException
) -> None:
    settle(home, [(waiter, error, True) for waiter in waiters])
