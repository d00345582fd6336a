"""A tiny logistic-regression "model" scored a whole batch at a time.

Stands in for ML inference: the per-batch work (one pass over a feature matrix) is what dynamic
batching amortizes. Pure Python, so the demo needs no numpy. With the Redis backend, serve it with
``python manage.py batch_worker test_project.predict.model:score``.
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Any

from batch_requests.dynamic import batched

WEIGHTS = (0.8, -0.4, 0.25, 1.1)
BIAS = -0.1
_batch_ids = itertools.count(1)


def _matvec(rows: list[list[float]]) -> list[float]:
    return [sum(w * x for w, x in zip(WEIGHTS, row, strict=False)) + BIAS for row in rows]


@batched(name="test_project.predict")
def score(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Score every item's ``features``; each answer says which batch it rode in and its size."""
    batch_id = f"{os.getpid()}-{next(_batch_ids)}"
    logits = _matvec([item["features"] for item in items])
    return [
        {"score": 1 / (1 + math.exp(-z)), "batch_id": batch_id, "batch_size": len(items)}
        for z in logits
    ]
