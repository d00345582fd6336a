"""Small helpers shared by the dynamic batching tests and their fixtures."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    """Poll ``predicate`` until truthy; a bound on waiting, never an assertion about speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached within {timeout} s")


class Recorder:
    """A sync batch function that doubles its items and keeps every batch it was called with
    (thread-safe: worker threads of several tests' fixtures call it)."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.lock = threading.Lock()

    def __call__(self, items: list[Any]) -> list[Any]:
        with self.lock:
            self.batches.append(list(items))
        return [item * 2 for item in items]

    def seen(self) -> set[Any]:
        return {item for batch in self.batches for item in batch}
