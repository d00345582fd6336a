"""One bad item fails only itself: a batch whose function raises is split and retried.

When the batch function raises for several items, the items are split in halves and each half
is called again, recursively, until the calls succeed or a single item fails on its own; only
those items get the error. One poison item in ``n`` costs at most ``1 + 2·⌈log₂ n⌉`` calls
(the failing half is split again, the good half answers at once); a batch where every item fails
costs ``2n - 1`` calls. Both backends use it; ``split=False`` (``SPLIT_ON_ERROR``) restores
"the whole batch gets the exception", for functions whose side effects must not repeat.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import ResultLengthError

Call = Callable[[list[Any]], Awaitable[Any]]
Observe = Callable[[int, float, bool], None]  # (items, seconds run, raised)


class Failed:
    """An item's outcome when the function raised for it (as opposed to returning an error)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


async def call_split(
    call: Call, items: list[Any], *, split: bool = True, observe: Observe | None = None
) -> list[Any]:
    """One outcome per item: its result, or :class:`Failed` wrapping what was raised for it.

    A result list of the wrong length is a bug of the function, not a bad item: every item of
    that call gets :class:`ResultLengthError`, without splitting. ``CancelledError`` propagates.
    """
    started = time.perf_counter()
    try:
        results = await call(items)
    except Exception as exc:
        if observe is not None:
            observe(len(items), time.perf_counter() - started, True)
        if not split or len(items) < 2:
            failed = Failed(exc)
            return [failed] * len(items)
        middle = (len(items) + 1) // 2
        first = await call_split(call, items[:middle], split=True, observe=observe)
        return first + await call_split(call, items[middle:], split=True, observe=observe)
    if observe is not None:
        observe(len(items), time.perf_counter() - started, False)
    try:
        count = len(results)
    except TypeError:
        count = None
    if count != len(items):
        return [Failed(ResultLengthError(len(items), count))] * len(items)
    return list(results)
