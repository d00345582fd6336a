"""The batch endpoint: ``handle_batch_requests`` (the name the 2015 app's urls.py routes)."""

from __future__ import annotations

import logging
import time

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from batch_requests.concurrent.executor import get_executor
from batch_requests.conf import batch_settings
from batch_requests.csrf import csrf_failure
from batch_requests.dispatch import SubResult, keeping_urlconf, run_subrequest
from batch_requests.exceptions import BatchError
from batch_requests.legacy import error_response, whole_seconds
from batch_requests.payload import BatchSpec, parse_batch
from batch_requests.policies import check_atomic_allowed, failed
from batch_requests.runner import BatchRun, run_batch
from batch_requests.serialize import CONTENT_TYPE, format_duration, render, serialize_batch
from batch_requests.signals import batch_finished, batch_started
from batch_requests.subrequest import SUBREQUEST_KEY, SubRequest, build_subrequests
from batch_requests.uploads import is_multipart, read_multipart_batch

logger = logging.getLogger("batch_requests")

try:  # Django 5.1+: the endpoint is reachable without login; each sub-request is still judged.
    from django.contrib.auth.decorators import login_not_required
except ImportError:  # pragma: no cover - Django < 5.1
    def login_not_required(view):  # type: ignore[no-redef]
        return view


@csrf_exempt  # Each item meets CsrfViewMiddleware; the batch itself: see batch_requests.csrf.
@login_not_required
def handle_batch_requests(request: HttpRequest) -> HttpResponse:
    start = time.perf_counter()
    legacy = False  # the batch is in the 2015 format (a bare list)
    try:
        spec = _validate(request)
        legacy = spec.legacy
        subrequests = build_subrequests(request, spec.items)
        if spec.atomic:
            check_atomic_allowed(request, subrequests)  # atomic must not erase bookkeeping
    except BatchError as exc:
        if exc.legacy or legacy:
            return error_response(exc)
        response = JsonResponse(exc.as_json(), status=exc.status)
        if exc.status == 405:
            response["Allow"] = "POST"
        return response
    batch_started.send(sender=None, request=request, subrequests=subrequests)
    body, results, mode = _execute(request, spec, subrequests)
    duration = time.perf_counter() - start
    batch_finished.send(sender=None, request=request, results=results, duration=duration)
    if logger.isEnabledFor(logging.INFO):  # the statuses are joined only for a log that shows them
        logger.info("batch of %d requests, %s, %.6f s, statuses %s", len(results), mode,
                    duration, " ".join(str(r.status_code) for r in results))
    response = HttpResponse(body, content_type=CONTENT_TYPE)
    _add_timing(response, results, duration, legacy)
    for result in results:
        for key, morsel in result.cookies.items():
            response.cookies[key] = morsel
    return response


handle_batch_requests.batch_requests_endpoint = True  # type: ignore[attr-defined]


def _validate(request: HttpRequest) -> BatchSpec:
    if request.META.get(SUBREQUEST_KEY):
        # Checked on what runs, whatever the url was written as (encoded, absolute, filled
        # in by a reference): a batch can never run inside a batch.
        raise BatchError.single("This request is itself a request of a batch; batches cannot "
                                "be nested.", field="url")
    if request.method != "POST":
        raise BatchError.single(f"Method {request.method} is not allowed; send the batch "
                                "with POST.", status=405)
    try:
        raw, parts = read_multipart_batch(request) if is_multipart(request) else (
            request.body, None)
    except RequestDataTooBig:
        raise BatchError.single("The batch body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE.",
                                field="body", status=413) from None
    except (MultiPartParserError, SuspiciousOperation) as exc:
        # Malformed multipart, or more fields/files than DATA_UPLOAD_MAX_NUMBER_FIELDS/FILES.
        raise BatchError.single(f"The multipart batch cannot be read: {exc}",
                                field="body") from None
    spec = parse_batch(raw, parts)
    reason = csrf_failure(request, spec)
    if reason is not None:
        raise BatchError.single(f"CSRF verification failed: {reason}", status=403,
                                legacy=spec.legacy)
    return spec


def _execute(request: HttpRequest, spec: BatchSpec, subrequests: list[SubRequest],
             ) -> tuple[bytes, list[SubResult], str]:
    """Run the batch; return the response body, the results, and how it ran (for the log).

    The body of a batch in the 2015 format is, as it was, the bare list of items.
    """
    batch = BatchRun(request, spec, subrequests)
    with keeping_urlconf():
        results, mode = run_batch(batch, get_executor(), run_subrequest,
                                  spec.budget(batch_settings.TIMEOUT))
    items = serialize_batch(results, spec.items, atomic=spec.atomic, whole_seconds=spec.legacy)
    atomic = None
    if spec.atomic:
        failure = next((r.index for r in results if failed(r)), None)
        atomic = {"committed": failure is None, "failed_index": failure}
    return render(items, atomic, legacy=spec.legacy), results, mode


def _add_timing(response: HttpResponse, results: list[SubResult], total: float,
                legacy: bool = False) -> None:
    if batch_settings.ADD_DURATION_HEADER:
        # In whole seconds for a batch in the 2015 format, as the 2015 app sent it.
        response[batch_settings.DURATION_HEADER_NAME] = (
            str(whole_seconds(total)) if legacy else format_duration(total))
    if batch_settings.SERVER_TIMING:
        entries = [f"batch;dur={total * 1000:.3f}"]
        entries += [f"sub{r.index};dur={r.duration * 1000:.3f}" for r in results]
        response["Server-Timing"] = ", ".join(entries)
