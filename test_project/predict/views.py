"""JSON views over the batched model: a sync view for WSGI and an async one for ASGI.

Under WSGI each request thread blocks on the shared background loop; under ASGI the async view
awaits on the server's loop. Either way, concurrent requests ride in the same batch.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from batch_requests.dynamic import BatchError

from .model import WEIGHTS, score


def _features(request: HttpRequest) -> list[float] | JsonResponse:
    try:
        body = json.loads(request.body)
        features = [float(x) for x in body["features"]]
    except (ValueError, TypeError, KeyError):
        return JsonResponse({"error": "expected {\"features\": [numbers]}"}, status=400)
    if len(features) != len(WEIGHTS):
        return JsonResponse({"error": f"expected {len(WEIGHTS)} features"}, status=400)
    return features


def _answer(result: Any) -> JsonResponse:
    return JsonResponse(result)


@csrf_exempt
@require_POST
def predict(request: HttpRequest) -> JsonResponse:
    features = _features(request)
    if isinstance(features, JsonResponse):
        return features
    try:
        return _answer(score({"features": features}))
    except BatchError as exc:
        return JsonResponse({"error": str(exc)}, status=503)


@csrf_exempt
@require_POST
async def apredict(request: HttpRequest) -> JsonResponse:
    features = _features(request)
    if isinstance(features, JsonResponse):
        return features
    try:
        return _answer(await score({"features": features}))
    except BatchError as exc:
        return JsonResponse({"error": str(exc)}, status=503)
