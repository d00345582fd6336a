"""The dependency graph of a batch: ``name``, ``depends_on`` and ``{result=...}`` references.

A batch is in *graph mode* when an item declares ``depends_on`` or holds a reference; its
declared dependencies are then the only order between its items. The graph is checked
before anything runs: duplicate names, unknown names and cycles are 400s.
"""

from __future__ import annotations

import heapq
from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING

from batch_requests.exceptions import BatchError, Problem

if TYPE_CHECKING:
    from batch_requests.payload import ItemSpec


def _named(specs: list[ItemSpec]) -> tuple[dict[str, int], list[Problem]]:
    names: dict[str, int] = {}
    problems = []
    for spec in specs:
        if spec.name is None:
            continue
        if spec.name in names:
            problems.append(Problem(f"name {spec.name!r} is already used by request "
                                    f"{names[spec.name]}; names must be unique.",
                                    spec.index, "name"))
        else:
            names[spec.name] = spec.index
    return names, problems


def dependencies(specs: list[ItemSpec]) -> dict[int, set[int]]:
    """For each item, the indexes of the items it waits for (names must be known)."""
    names = {spec.name: spec.index for spec in specs if spec.name is not None}
    graph = {}
    for spec in specs:
        wanted = set(spec.depends_on) | {ref.name for ref in spec.references}
        graph[spec.index] = {names[name] for name in wanted}
    return graph


def uses_graph(specs: list[ItemSpec]) -> bool:
    return any(spec.depends_on or spec.references for spec in specs)


def check_graph(specs: list[ItemSpec]) -> None:
    """Raise a 400 ``BatchError`` for duplicate or unknown names and for cycles."""
    if not any(spec.name or spec.depends_on or spec.references for spec in specs):
        return
    names, problems = _named(specs)
    for spec in specs:
        for name in spec.depends_on:
            if name not in names:
                problems.append(Problem(f"depends_on names {name!r}, which no request in the "
                                        "batch is called.", spec.index, "depends_on"))
        for reference in spec.references:
            if reference.name not in names:
                problems.append(Problem(f"{reference.text} refers to {reference.name!r}, which "
                                        "no request in the batch is called.", spec.index,
                                        reference.field))
    if problems:
        raise BatchError(problems)
    if not uses_graph(specs):
        return
    try:
        TopologicalSorter(dependencies(specs)).prepare()
    except CycleError as exc:
        cycle = exc.args[1]
        shown = " -> ".join(f"{i} ({specs[i].name!r})" for i in cycle)
        raise BatchError.single(f"The dependencies form a cycle: requests {shown}. No request "
                                "can run first.", index=cycle[0], field="depends_on") from None


def run_order(graph: dict[int, set[int]]) -> list[int]:
    """One item at a time: request order, except that an item waits for its dependencies."""
    sorter = TopologicalSorter(graph)
    sorter.prepare()
    ready = list(sorter.get_ready())
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        sorter.done(index)
        for index in sorter.get_ready():
            heapq.heappush(ready, index)
    return order


def levels(graph: dict[int, set[int]]) -> list[list[int]]:
    """Waves for parallel executors: each holds every item whose dependencies ran before it."""
    sorter = TopologicalSorter(graph)
    sorter.prepare()
    waves = []
    while sorter.is_active():
        wave = sorted(sorter.get_ready())
        waves.append(wave)
        sorter.done(*wave)
    return waves
