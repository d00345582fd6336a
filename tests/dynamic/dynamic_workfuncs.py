"""Batch functions that worker processes under test import by dotted path.

They talk to the test through files in ``$WORKFUNC_DIR``: a marker written when a batch starts,
a release file a batch may wait for, and a log of the items each process handled.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def _dir() -> Path:
    return Path(os.environ["WORKFUNC_DIR"])


def _log(items: list[Any]) -> None:
    with open(_dir() / f"handled-{os.getpid()}.log", "a") as log:
        log.writelines(f"{item}\n" for item in items)


def tag_with_pid(items: list[int]) -> list[list[int]]:
    """``[item, pid, batch size]`` for each item; hangs forever if ``WORKFUNC_HANG`` is set."""
    (_dir() / f"started-{os.getpid()}").write_text(str(len(items)))
    if os.environ.get("WORKFUNC_HANG"):
        time.sleep(3600)
    _log(items)
    return [[item, os.getpid(), len(items)] for item in items]


def wait_for_release(items: list[int]) -> list[int]:
    """Announce the batch, then finish only once the test creates the ``release`` file."""
    (_dir() / f"started-{os.getpid()}").write_text(str(len(items)))
    deadline = time.monotonic() + 30
    while not (_dir() / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    _log(items)
    return [item * 10 for item in items]
