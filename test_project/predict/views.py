"""JSON views over the batched model: a sync view for WSGI and an async one for ASGI.

Under WSGI each request thread blocks on the shared background loop; under ASGI the async view
awaits on the server's loop. Either way, concurrent requests ride in the same batch.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponseNotAllowed, JsonResponse

from batch_requests.dynamic import BatchError

from .model import WEIGHTS, score


def _features(request: HttpRequest) -> list[float] | JsonResponse | HttpResponseNotAllowed:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
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


def predict(request: HttpRequest) -> JsonResponse | HttpResponseNotAllowed:
    features = _features(request)
    if not isinstance(features, list):
        return features
    try:
        return _answer(score({"features": features}))
    except BatchError as exc:
        return JsonResponse({"error": str(exc)}, status=503)


async def apredict(request: HttpRequest) -> JsonResponse | HttpResponseNotAllowed:
    features = _features(request)
    if not isinstance(features, list):
        return features
    try:
        return _answer(await score({"features": features}))
    except BatchError as exc:
        return JsonResponse({"error": str(exc)}, status=503)


# A JSON API called by scripts, not a form: set by hand because Django 4.2's csrf_exempt
# decorator does not keep an async view async.
predict.csrf_exempt = True  # type: ignore[attr-defined]
apredict.csrf_exempt = True  # type: ignore[attr-defined]
