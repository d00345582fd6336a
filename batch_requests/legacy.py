"""The 2015 app's wire format, which its clients still send.

tanwanirahul/django-batch-requests took a bare JSON list of requests and answered a bare list
of responses, with its duration header in whole seconds and its errors as plain text. A bare
list is only another envelope around the same items: ``parse_batch`` reads it as
``{"batch": [...]}`` and applies every check and limit of that format; only the errors the
2015 app had keep its words and status (400), and the answer keeps its shape.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse

from batch_requests.exceptions import BatchError, Problem

# The 2015 app's error answers, word for word (batch_requests/views.py of 2015).
NOT_A_LIST = "The body of batch request should always be list!"
URL_AND_METHOD_REQUIRED = "Request definition should have url, method defined."
INVALID_METHOD = "Invalid request method."
TOO_MANY = "You can batch maximum of {limit} requests."
#: The methods the 2015 app accepted (compared in lower case).
METHODS = frozenset({"get", "post", "put", "patch", "delete", "head", "options", "connect",
                     "trace"})
#: The keys of a 2015 request.
REQUEST_KEYS = frozenset({"url", "method", "body", "headers"})
#: How an error answer is sent (the 2015 app sent it as text/html; it is plain text).
CONTENT_TYPE = "text/plain; charset=utf-8"


def is_legacy_batch(data: Any) -> bool:
    """Whether a batch document is in the 2015 format: a list of request objects.

    A list of anything else is neither format, and is refused as before.
    """
    return isinstance(data, list) and all(isinstance(item, dict) for item in data)


def looks_like_one_request(data: Any) -> bool:
    """Whether a document is one 2015 request that a client forgot to put in a list."""
    return isinstance(data, dict) and bool(data) and data.keys() <= REQUEST_KEYS


def item_problem(index: int, item: dict) -> Problem | None:
    """The 2015 app's checks of a request, in its order; its words if one fails."""
    url, method = item.get("url"), item.get("method")
    if url is None or method is None:
        return Problem(URL_AND_METHOD_REQUIRED, index, "url" if url is None else "method")
    if not isinstance(method, str) or method.lower() not in METHODS:
        return Problem(INVALID_METHOD, index, "method")
    return None


def too_many_message(limit: int) -> str:
    return TOO_MANY.format(limit=limit)


def error_response(error: BatchError) -> HttpResponse:
    """A refused 2015-format batch: its first problem as plain text, with the error's status.

    The 2015 app stopped at the first problem and said it in its own words; those answers
    are unchanged. A problem it did not check names the request (its index) it is about.
    """
    problem = error.problems[0]
    text = problem.message
    if problem.index is not None and text not in (URL_AND_METHOD_REQUIRED, INVALID_METHOD):
        text = f"Request {problem.index}: {text}"
    return HttpResponse(text, status=error.status, content_type=CONTENT_TYPE)


def whole_seconds(seconds: float) -> int:
    """A duration as the 2015 app sent it: whole seconds, rounded down."""
    return int(seconds)
