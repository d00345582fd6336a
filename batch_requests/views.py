"""The batch endpoint: ``handle_batch_requests`` (the name the 2015 app's urls.py routes)."""

from __future__ import annotations

import time

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from batch_requests.concurrent.executor import get_executor
from batch_requests.conf import batch_settings
from batch_requests.csrf import csrf_failure
from batch_requests.dispatch import SubResult, run_subrequest
from batch_requests.exceptions import BatchError
from batch_requests.payload import parse_batch
from batch_requests.serialize import format_duration, serialize_result
from batch_requests.subrequest import build_subrequests

try:  # Django 5.1+: the endpoint is reachable without login; each sub-request is still judged.
    from django.contrib.auth.decorators import login_not_required
except ImportError:  # pragma: no cover - Django < 5.1
    def login_not_required(view):  # type: ignore[no-redef]
        return view


@csrf_exempt  # The session-cookie case is checked in csrf_failure(); see batch_requests.csrf.
@login_not_required
def handle_batch_requests(request: HttpRequest) -> JsonResponse:
    start = time.perf_counter()
    try:
        results = _handle(request)
    except BatchError as exc:
        response = JsonResponse(exc.as_json(), status=exc.status)
        if exc.status == 405:
            response["Allow"] = "POST"
        return response
    response = JsonResponse({"batch": [serialize_result(r) for r in results]})
    _add_timing(response, results, time.perf_counter() - start)
    for result in results:
        for key, morsel in result.cookies.items():
            response.cookies[key] = morsel
    return response


handle_batch_requests.batch_requests_endpoint = True  # type: ignore[attr-defined]


def _handle(request: HttpRequest) -> list[SubResult]:
    if request.method != "POST":
        raise BatchError.single(f"Method {request.method} is not allowed; send the batch "
                                "with POST.", status=405)
    try:
        raw = request.body
    except RequestDataTooBig:
        raise BatchError.single("The batch body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE.",
                                field="body", status=413) from None
    reason = csrf_failure(request)
    if reason is not None:
        raise BatchError.single(f"CSRF verification failed: {reason}. A batch sent with a "
                                "session cookie needs a CSRF token.", status=403)
    specs = parse_batch(raw)
    subrequests = build_subrequests(request, specs)
    return get_executor().execute(subrequests, run_subrequest, batch_settings.TIMEOUT)


def _add_timing(response: JsonResponse, results: list[SubResult], total: float) -> None:
    if batch_settings.ADD_DURATION_HEADER:
        response[batch_settings.DURATION_HEADER_NAME] = format_duration(total)
    if batch_settings.SERVER_TIMING:
        entries = [f"batch;dur={total * 1000:.3f}"]
        entries += [f"sub{r.index};dur={r.duration * 1000:.3f}" for r in results]
        response["Server-Timing"] = ", ".join(entries)
