"""Small helpers shared by the batch tests."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

BATCH_URL = "/api/v1/batch/"


def post_batch(client: Client, items: list[dict[str, Any]] | Any, **extra: Any):
    """POST a batch (or any JSON document) and return the response."""
    payload = {"batch": items} if isinstance(items, list) else items
    return client.post(BATCH_URL, json.dumps(payload), content_type="application/json",
                       **extra)


def batch_items(client: Client, items: list[dict[str, Any]], **extra: Any) -> list[dict]:
    response = post_batch(client, items, **extra)
    assert response.status_code == 200, response.content
    return response.json()["batch"]
