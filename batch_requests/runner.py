"""Run a validated batch: its order, failure policy, dependencies and executor.

Without dependencies, a batch goes to the configured executor as a whole (parallel
executors split it in write-ordered waves). In graph mode (some item has ``depends_on`` or a
``{result=...}`` reference) the runner decides what runs when: one item at a time in
dependency order, or in waves of every item whose dependencies have finished, handed to the
executor's ``run_group``. Each item's references are filled in just before it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.http import HttpRequest

from batch_requests.concurrent.base import (
    BaseExecutor,
    Run,
    SequentialExecutor,
    deadline_after,
    past,
    time_left,
    timed_out,
)
from batch_requests.conf import batch_settings
from batch_requests.dispatch import SubResult, error_result
from batch_requests.exceptions import BatchError
from batch_requests.graph import dependencies, levels, run_order, uses_graph
from batch_requests.payload import BatchSpec, url_problem
from batch_requests.policies import (
    atomic_run,
    dependency_failed,
    failed,
    in_transaction,
    not_run,
)
from batch_requests.references import FillLimits, Unresolved, resolve
from batch_requests.subrequest import SubRequest, base_environ, build_subrequests


class BatchRun:
    """One batch being run: its items, the results so far, and what each item needs."""

    def __init__(self, parent: HttpRequest, spec: BatchSpec,
                 subrequests: Sequence[SubRequest]) -> None:
        self.parent = parent
        self.spec = spec
        self.subrequests = list(subrequests)
        self.deadline: float | None = None
        self.budget = ""
        self.graph = dependencies(spec.items) if uses_graph(spec.items) else None
        self.results: list[SubResult | None] = [None] * len(spec.items)
        self.names = {item.name: item.index for item in spec.items if item.name is not None}
        self._base: dict[str, str] | None = None
        self._cache: dict[str, Any] = {}  # parsed bodies and values of references
        self._limits: FillLimits | None = None  # read once, at the first reference

    def prepare(self, index: int) -> SubRequest | SubResult:
        """The sub-request, references filled in; or the 424 of an item that must not run."""
        item = self.spec.items[index]
        for dependency in sorted(self.graph[index]) if self.graph else ():
            result = self.results[dependency]
            assert result is not None, "dependencies are answered first"
            if failed(result):
                return dependency_failed(index, result, self.spec.items[dependency].name)
        if not item.references:
            return self.subrequests[index]
        responses = {name: (i, result) for name, i in self.names.items()
                     if (result := self.results[i]) is not None}
        if self._limits is None:
            self._limits = FillLimits.read()
        try:
            # Filling in stops at the first field past its limit (url, a header, the body);
            # the filled-in item then meets the limits of an item as sent, its url's length
            # (MAX_URL_LENGTH, once percent-encoded) when its sub-request is built.
            resolved = resolve(item, responses, self._cache, self._limits)
            problem = url_problem(resolved.url)
            if problem:
                raise Unresolved(f"Not run: after its references are filled in, {problem}")
            if self._base is None:
                self._base = base_environ(self.parent)
            sub = build_subrequests(self.parent, [resolved], self._base,
                                    self._limits.url)[0]
            sub.deadline, sub.budget = self.deadline, self.budget
            return sub
        except Unresolved as exc:
            return error_result(index, 424, str(exc))
        except BatchError as exc:
            return error_result(index, 424, f"Not run: after its references are filled in, "
                                            f"{exc.problems[0].message}")

    def record(self, result: SubResult) -> SubResult:
        self.results[result.index] = result
        return result

    def finished(self) -> list[SubResult]:
        assert all(r is not None for r in self.results)
        return list(self.results)  # type: ignore[arg-type]


def one_at_a_time(batch: BatchRun, run: Run, deadline: float | None,
                  stop_on_error: bool = False) -> list[SubResult]:
    """Request order (dependency order in graph mode); optionally stop at the first failure."""
    order = run_order(batch.graph) if batch.graph else range(len(batch.subrequests))
    cause: SubResult | None = None
    for index in order:
        sub = batch.subrequests[index]
        if cause is not None:
            batch.record(not_run(index, cause))
            continue
        if past(deadline):
            result = batch.record(timed_out(sub))
        else:
            prepared = batch.prepare(index)
            result = batch.record(prepared if isinstance(prepared, SubResult)
                                  else run(prepared))
        if stop_on_error and failed(result):
            cause = result
    return batch.finished()


def in_waves(batch: BatchRun, executor: BaseExecutor, run: Run,
             deadline: float | None) -> list[SubResult]:
    """Graph mode on a parallel executor: each wave is every item whose dependencies ran."""
    assert batch.graph is not None
    for wave in levels(batch.graph):
        ready = []
        for index in wave:
            prepared = batch.prepare(index)
            if isinstance(prepared, SubResult):
                batch.record(prepared)
            else:
                ready.append(prepared)
        if ready:
            for result in executor.run_group(ready, run, deadline):
                batch.record(result)
    return batch.finished()


def budget_label(asked: float | None, budget: float | None) -> str:
    """Which budget applies, in words: the client's ``timeout`` or the ``TIMEOUT`` setting."""
    if budget is None:
        return ""
    if asked is not None and asked <= budget:
        return f'its "timeout" of {budget:g} s'
    return f"TIMEOUT, {budget:g} s"


def run_batch(batch: BatchRun, executor: BaseExecutor, run: Run,
              timeout: float | None) -> tuple[list[SubResult], str]:
    """Run the batch as its policy says; return the results and how it ran (for the log).

    ``timeout`` is the batch's time budget: its deadline is stamped on every sub-request, so
    that a streaming body stops being read at it, wherever the item runs.
    """
    spec = batch.spec
    deadline = batch.deadline = deadline_after(timeout)
    batch.budget = budget_label(spec.timeout, timeout)
    max_size = batch_settings.MAX_RESPONSE_SIZE
    for sub in batch.subrequests:
        sub.deadline, sub.budget, sub.max_response_size = deadline, batch.budget, max_size
    if spec.atomic:
        run = atomic_run(run, getattr(batch.parent, "urlconf", None))  # marks every item
        return in_transaction(lambda: one_at_a_time(batch, run, deadline, True)), "atomic"
    if spec.stops_on_error:
        return one_at_a_time(batch, run, deadline, stop_on_error=True), "on_error=stop"
    name = type(executor).__name__
    if batch.graph is None:
        return executor.execute(batch.subrequests, run, time_left(deadline)), name
    if isinstance(executor, SequentialExecutor):
        return one_at_a_time(batch, run, deadline), f"{name}, dependencies"
    return in_waves(batch, executor, run, deadline), f"{name}, dependencies"
