"""One shared event loop in a daemon thread, for callers that are not async.

Sync Django views (WSGI, or ASGI's thread pool) have no running loop, and a batch can only
gather callers that share one. They all submit to this loop. It starts on first use, can be
shut down, and a forked child (gunicorn's pre-fork workers) starts its own instead of
inheriting a parent's thread that does not exist there.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_fork_hook_installed = False
_on_shutdown: list[weakref.WeakMethod[Callable[[], None]]] = []


def _forget_after_fork() -> None:
    global _loop, _thread, _lock
    _loop = None
    _thread = None
    _lock = threading.Lock()
    _on_shutdown.clear()


def get_loop() -> asyncio.AbstractEventLoop:
    """The shared background loop, started if needed."""
    global _loop, _thread, _fork_hook_installed
    loop = _loop
    if loop is not None and not loop.is_closed():
        return loop
    with _lock:
        if _loop is not None and not _loop.is_closed():
            return _loop
        if not _fork_hook_installed:
            os.register_at_fork(after_in_child=_forget_after_fork)
            _fork_hook_installed = True
        new_loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(new_loop)
            new_loop.call_soon(started.set)
            new_loop.run_forever()

        thread = threading.Thread(target=run, name="batch-requests-dynamic-loop", daemon=True)
        thread.start()
        started.wait()
        _loop, _thread = new_loop, thread
        return new_loop


def current_loop() -> asyncio.AbstractEventLoop | None:
    """The background loop if it is running now, without starting one (a cheap check)."""
    return _loop


def in_loop_thread() -> bool:
    """True when called from the background loop's own thread (blocking there would deadlock)."""
    return _thread is not None and threading.current_thread() is _thread


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the background loop and block this thread until it is done."""
    if in_loop_thread():
        coro.close()
        raise RuntimeError("blocking call from the batcher's own loop thread; use 'await'")
    future = asyncio.run_coroutine_threadsafe(coro, get_loop())
    try:
        return future.result(timeout)
    except BaseException:
        future.cancel()
        raise


def home_object(owner: Any, build: Callable[[asyncio.AbstractEventLoop], Any]) -> Any:
    """``owner._home``, the object a batcher keeps on the background loop, built with
    ``build(loop)`` on first use and again after a fork or a shutdown (its ``abort`` is then
    called). ``owner`` holds ``_home`` and a ``_lock``."""
    loop = get_loop()
    home = owner._home
    if home is not None and home.loop is loop:
        return home
    with owner._lock:
        home = owner._home
        if home is None or home.loop is not loop:
            home = build(loop)
            on_shutdown(home.abort)
            owner._home = home
    return home


def on_shutdown(method: Callable[[], None]) -> None:
    """Call the bound ``method`` on the loop when it shuts down (held weakly)."""
    _on_shutdown.append(weakref.WeakMethod(method))  # type: ignore[arg-type]


def _run_shutdown_hooks() -> None:
    hooks = list(_on_shutdown)
    _on_shutdown.clear()
    for ref in hooks:
        method = ref()
        if method is not None:
            method()


def shutdown(timeout: float = 5.0) -> None:
    """Stop the background loop and join its thread; the next use starts a fresh one.

    Batchers homed on it fail their waiting callers first, so no caller is left hanging.
    """
    global _loop, _thread
    with _lock:
        loop, thread = _loop, _thread
        _loop = _thread = None
    if loop is None or thread is None:
        return
    loop.call_soon_threadsafe(_run_shutdown_hooks)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout)
    if not thread.is_alive():
        loop.close()
