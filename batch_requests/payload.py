"""Parse and validate the batch body into ``ItemSpec`` objects, before anything runs."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

from batch_requests.conf import batch_settings
from batch_requests.exceptions import BatchError, Problem
from batch_requests.graph import check_graph
from batch_requests.references import Reference, find_references
from batch_requests.uploads import Upload, form_fields

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE")
REQUEST_KEYS = frozenset({"method", "url", "body", "headers"})
ITEM_KEYS = REQUEST_KEYS | {"name", "depends_on", "omit_response_on_success", "files"}
TOP_LEVEL_KEYS = frozenset({"batch", "atomic", "on_error", "timeout"})
# A request's name, as it appears in depends_on and in {result=NAME:PATH} references.
NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
# Methods whose sub-request may carry uploaded files.
UPLOAD_METHODS = frozenset({"POST", "PUT", "PATCH"})
# RFC 9110 token characters, less "_": servers drop such headers, since WSGI would confuse
# "X_Custom" with "X-Custom".
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^`|~0-9A-Za-z]+$")
# Headers an item may not set: the batch request's own cookies are the only ones that apply.
FORBIDDEN_HEADERS = frozenset({"cookie"})


@dataclass
class ItemSpec:
    """One validated sub-request, as the client described it (treat it as read-only)."""

    index: int
    method: str
    url: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    has_body: bool = False
    #: The body as the client gave it when it was a JSON object or array (references are
    #: substituted in it, and its keys become form fields next to uploaded files).
    data: Any = None
    name: str | None = None
    depends_on: tuple[str, ...] = ()
    omit_response_on_success: bool = False
    #: (form field, upload) pairs: files the sub-request receives as multipart/form-data.
    files: tuple[tuple[str, Upload], ...] = ()
    #: The ``{result=NAME:PATH}`` references it holds (filled in before it runs).
    references: tuple[Reference, ...] = ()


ON_ERROR = ("continue", "stop")


@dataclass(frozen=True)
class BatchSpec:
    """A validated batch: its items and how failures are handled."""

    items: list[ItemSpec]
    atomic: bool = False
    on_error: str = "continue"
    timeout: float | None = None

    def budget(self, setting: float | None) -> float | None:
        """The batch's time budget: the client's, capped by the ``TIMEOUT`` setting."""
        if self.timeout is None or setting is None:
            return setting if self.timeout is None else self.timeout
        return min(self.timeout, setting)

    @property
    def stops_on_error(self) -> bool:
        return self.atomic or self.on_error == "stop"


def parse_batch(raw: bytes, parts: dict[str, Upload] | None = None) -> BatchSpec:
    """Validate a batch document; ``parts`` are the files of a multipart batch (else None)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        where = ("request body", "body") if parts is None else ("'batch' part", "batch")
        raise BatchError.single(f"The {where[0]} is not valid JSON: {exc}.", field=where[1]) \
            from None
    if not isinstance(data, dict) or "batch" not in data:
        raise BatchError.single('The request body must be a JSON object with a "batch" list.',
                                field="batch")
    unknown = sorted(set(data) - TOP_LEVEL_KEYS)
    if unknown:
        raise BatchError.single(f"Unknown top-level field(s): {', '.join(unknown)}.",
                                field=unknown[0])
    atomic = data.get("atomic", False)
    if not isinstance(atomic, bool):
        raise BatchError.single(f'"atomic" must be true or false, not {_kind(atomic)}.',
                                field="atomic")
    on_error = data.get("on_error", "continue")
    if on_error not in ON_ERROR:
        raise BatchError.single(f'"on_error" must be "continue" or "stop", not {on_error!r}.',
                                field="on_error")
    timeout = data.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or timeout <= 0):
        raise BatchError.single(f'"timeout" must be a number of seconds above 0, not '
                                f"{timeout!r}.", field="timeout")
    items = data["batch"]
    if not isinstance(items, list):
        raise BatchError.single(f'"batch" must be a list, not {_kind(items)}.', field="batch")
    if not items:
        raise BatchError.single('"batch" must hold at least one request.', field="batch")
    limit = batch_settings.MAX_LIMIT
    if len(items) > limit:
        raise BatchError.single(
            f"The batch holds {len(items)} requests; the limit is {limit} (MAX_LIMIT).",
            field="batch",
        )
    specs: list[ItemSpec] = []
    problems: list[Problem] = []
    for index, item in enumerate(items):
        try:
            specs.append(parse_item(index, item, parts))
        except BatchError as exc:
            problems.extend(exc.problems)
    if problems:
        raise BatchError(problems)
    check_graph(specs)
    return BatchSpec(specs, atomic, on_error, timeout)


def parse_item(index: int, item: Any, parts: dict[str, Upload] | None = None) -> ItemSpec:
    def fail(message: str, name: str | None) -> BatchError:
        return BatchError.single(message, index=index, field=name)

    if not isinstance(item, dict):
        raise fail(f"Each request must be a JSON object, not {_kind(item)}.", None)
    keys = item.keys()
    unknown = sorted(keys - ITEM_KEYS)
    if unknown:
        raise fail(f"Unknown field(s): {', '.join(unknown)}.", unknown[0])

    method = item.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        shown = "missing" if method is None else repr(method)
        raise fail(f"method is {shown}; use one of {', '.join(METHODS)}.", "method")

    url = item.get("url")
    if not isinstance(url, str) or not url.strip():
        raise fail("url is required and must be a non-empty string.", "url")
    problem = url_problem(url)
    if problem:
        raise fail(problem, "url")

    headers = _parse_headers(item.get("headers"), fail)
    given_body = item.get("body")
    body, has_body = _encode_body(given_body, fail)
    data = given_body if isinstance(given_body, (dict, list)) else None
    if keys <= REQUEST_KEYS:  # the common case: nothing but the request itself
        spec = ItemSpec(index, method.upper(), url, body, headers, has_body, data)
    else:
        spec = ItemSpec(
            index, method.upper(), url, body, headers, has_body, data,
            name=_parse_name(item.get("name"), fail),
            depends_on=_parse_depends_on(item.get("depends_on"), fail),
            omit_response_on_success=_parse_flag(item, "omit_response_on_success", fail),
            files=_parse_files(item, method.upper(), headers, parts, fail))
    # A malformed reference or JSONPath is a 400 now, not a 424 later.
    references = find_references(spec)
    return dataclasses.replace(spec, references=tuple(references)) if references else spec


def url_problem(url: str) -> str | None:
    if any(c in url for c in "\r\n\x00") or not (url.startswith("/") or "://" in url):
        return f"url {url!r} must be a path starting with '/' or an absolute http(s) URL."
    return None


def _parse_name(name: Any, fail) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not NAME.match(name):
        raise fail(f"name must be 1 to 100 letters, digits, '_', '.' or '-', not {name!r}.",
                   "name")
    return name


def _parse_depends_on(value: Any, fail) -> tuple[str, ...]:
    if value is None:
        return ()
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise fail(f"depends_on must be a name or a list of names, not {_kind(value)}.",
                   "depends_on")
    return tuple(dict.fromkeys(names))


def _parse_flag(item: dict, key: str, fail) -> bool:
    value = item.get(key, False)
    if not isinstance(value, bool):
        raise fail(f"{key} must be true or false, not {_kind(value)}.", key)
    return value


def _parse_files(item: dict, method: str, headers: dict[str, str],
                 parts: dict[str, Upload] | None, fail) -> tuple[tuple[str, Upload], ...]:
    files = item.get("files")
    if files is None:
        return ()
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise fail('files must be an object that maps form fields to part names, like '
                   '{"avatar": "file1"}.', "files")
    if parts is None:
        raise fail("files needs a multipart/form-data batch that carries the files as parts.",
                   "files")
    if method not in UPLOAD_METHODS:
        raise fail(f"files can only be sent with POST, PUT or PATCH, not {method}.", "files")
    for header in headers:
        if header.lower() == "content-type":
            raise fail("A request with files may not set Content-Type: it is sent as "
                       "multipart/form-data.", f"headers.{header}")
    body = item.get("body")
    if body is not None and not isinstance(body, dict):
        raise fail("With files, body must be an object of form fields.", "body")
    try:
        form_fields(body or {})
    except ValueError as exc:
        raise fail(str(exc), "body") from None
    uploads = []
    for form_field, part in files.items():
        if part not in parts:
            raise fail(f"files refers to part {part!r}, which is not a file in the batch "
                       "request.", f"files.{form_field}")
        uploads.append((form_field, parts[part]))
    return tuple(uploads)


def _parse_headers(headers: Any, fail) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise fail(f"headers must be an object of strings, not {_kind(headers)}.", "headers")
    for name, value in headers.items():
        where = f"headers.{name}"
        if not HEADER_NAME.match(name):
            raise fail(f"{name!r} is not a valid HTTP header name.", where)
        if not isinstance(value, str):
            raise fail(f"The value of header {name!r} must be a string, not {_kind(value)}.",
                       where)
        if any(c in value for c in "\r\n\x00"):
            raise fail(f"The value of header {name!r} holds a CR, LF or NUL character.", where)
        if name.lower() in FORBIDDEN_HEADERS:
            raise fail(f"A request in a batch may not set {name!r}; the batch request's own "
                       "cookies apply to every request.", where)
    return dict(headers)


def _encode_body(body: Any, fail) -> tuple[bytes, bool]:
    if body is None:
        return b"", False
    if isinstance(body, str):
        return body.encode("utf-8"), True
    if isinstance(body, (dict, list)):
        return json.dumps(body, separators=(",", ":")).encode("utf-8"), True
    raise fail(f"body must be a string, an object or an array, not {_kind(body)}.", "body")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), "a value")
