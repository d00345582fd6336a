"""Shared by the benchmarks: Django set-up for in-process runs, timing and table printing."""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def setup_django() -> None:
    """Configure test_project in this process, DEBUG off, on a throwaway SQLite file.

    The file keeps the checkout's db.sqlite3 out of the way; it is migrated only by
    ``bench_token()`` (the token-authenticated DRF view needs the user and token tables).
    """
    import django
    from django.conf import settings

    if settings.configured:
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "test_project.settings")
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_DB_NAME",
                          os.path.join(tempfile.mkdtemp(prefix="bench-"), "inproc.sqlite3"))
    for key in ("BATCH_EXECUTOR", "BATCH_NUM_WORKERS"):
        os.environ.pop(key, None)
    django.setup()


USER = "bench"


def bench_token() -> str:
    """Migrate the throwaway DB (once per process) and return the API token of user "bench"."""
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    global _TOKEN
    if _TOKEN is None:
        call_command("migrate", verbosity=0, interactive=False)
        user, _ = User.objects.get_or_create(username=USER)
        _TOKEN = Token.objects.get_or_create(user=user)[0].key
    return _TOKEN


_TOKEN: str | None = None


def timed(func: Callable[[], object]) -> float:
    """Seconds one call of ``func`` takes."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def median_time(func: Callable[[], object], repeats: int, budget: float,
                warmup: int = 1) -> float:
    """Median seconds of ``func`` over at most ``repeats`` runs and about ``budget`` seconds
    (at least one run counts, whatever the budget)."""
    for _ in range(warmup):
        func()
    deadline = time.monotonic() + budget
    samples = []
    for _ in range(repeats):
        samples.append(timed(func))
        if time.monotonic() > deadline:
            break
    return statistics.median(samples)


def interleaved(ways: dict[str, Callable[[], object]], repeats: int,
                budget: float, warmup: int = 1, collect: bool = True) -> dict[str, float]:
    """Median seconds of each way, run in turn round after round (after ``warmup`` rounds),
    so that a burst of load from elsewhere on the machine hits all of them alike. Stops after
    ``repeats`` rounds or once ``budget`` seconds have passed (at least one round counts).

    With ``collect``, the garbage collector runs before each sample, untimed: in-process, a
    way that leaves much garbage (the peer builds a handler per item) would otherwise make the
    next way pay for it. A live benchmark passes ``collect=False``: its garbage is in the
    server, and a full collection of this process's own heap just before a sample evicts
    the caches the server's core shares, slowing the sample (see ``bench.roundtrips``)."""
    for _ in range(warmup):
        for func in ways.values():
            func()
    samples: dict[str, list[float]] = {name: [] for name in ways}
    deadline = time.monotonic() + budget
    for _ in range(repeats):
        for name, func in ways.items():
            if collect:
                gc.collect()
            samples[name].append(timed(func))
        if time.monotonic() > deadline:
            break
    return {name: statistics.median(values) for name, values in samples.items()}


def verdict(ratio: float, goal: str) -> str:
    """ "yes"/"no": whether ``ratio`` meets a goal written "<= 1.10" or ">= 4.5"."""
    op, number = goal.split()
    return "yes" if (ratio <= float(number) if op == "<=" else ratio >= float(number)) else "no"


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain text table, columns right-aligned except the first."""
    cells = [headers] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        rest = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        parts = [row[0].ljust(widths[0]), *rest]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if value < 100 else f"{value:.0f}"
    return str(value)


def section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)
