"""Shared measuring code: latency percentiles and one printed line per run."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(repr=False)
class Run:
    system: str
    items: int
    answered: int
    seconds: float
    latencies: list[float]
    cpu: float = 0.0  # process CPU time (every thread) over the same span as ``seconds``

    def __repr__(self) -> str:
        # Short on purpose: asyncio.run() formats its finished main task (whose result is a Run)
        # into a ValueError message when it restores the SIGINT handler (Python 3.11), and the
        # default repr would spell out every latency.
        return f"Run({self.system!r}, {self.answered}/{self.items}, {self.seconds:.3f} s)"

    @property
    def throughput(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def line(self) -> str:
        return (f"{self.system:<16} items={self.items:>6} answered={self.answered:>6} "
                f"throughput={self.throughput:>9.0f}/s p50={self.pct(0.5):8.1f} ms "
                f"p99={self.pct(0.99):8.1f} ms")


def median_run(runs: list[Run]) -> Run:
    """The run with the median throughput, so one lucky or unlucky round does not decide."""
    ordered = sorted(runs, key=lambda r: r.throughput)
    return ordered[len(ordered) // 2]


def ratio(ours: Run, theirs: Run) -> str:
    tp = ours.throughput / theirs.throughput if theirs.throughput else float("inf")
    p50 = theirs.pct(0.5) / ours.pct(0.5) if ours.pct(0.5) else float("nan")
    p99 = theirs.pct(0.99) / ours.pct(0.99) if ours.pct(0.99) else float("nan")
    return f"ratio ours/theirs: throughput x{tp:.2f}; latency p50 x{p50:.2f} lower, " \
           f"p99 x{p99:.2f} lower"


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0
