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
from batch_requests.legacy import (
    NOT_A_LIST,
    is_legacy_batch,
    item_problem,
    looks_like_one_request,
    too_many_message,
)
from batch_requests.limits import (
    MAX_TIMEOUT,
    NOT_UNICODE,
    TOO_DEEP,
    any_surrogate,
    bad_timeout,
    deep_parts,
    excerpt,
    field_key,
    has_surrogate,
    kind,
    parse_headers,
)
from batch_requests.references import (
    MARKER_BYTES,
    Reference,
    find_references,
    reference_count_problem,
)
from batch_requests.uploads import Upload, form_fields

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE")
_METHODS = frozenset(METHODS)
REQUEST_KEYS = frozenset({"method", "url", "body", "headers"})
ITEM_KEYS = REQUEST_KEYS | {"name", "depends_on", "omit_response_on_success", "files"}
TOP_LEVEL_KEYS = frozenset({"batch", "atomic", "on_error", "timeout"})
# A request's name, as it appears in depends_on and in {result=NAME:PATH} references. Match
# it with fullmatch: "$" alone also matches before a final "\n". (The anchors stay for the
# OpenAPI schema, whose patterns are not anchored.)
NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
# Methods whose sub-request may carry uploaded files.
UPLOAD_METHODS = frozenset({"POST", "PUT", "PATCH"})


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
    #: Sent in the 2015 format (a bare list): answered in it (see ``batch_requests.legacy``).
    legacy: bool = False

    def budget(self, setting: float | None) -> float | None:
        """The batch's time budget: the client's, capped by the ``TIMEOUT`` setting.

        The client's ``timeout`` is finite and at most ``MAX_TIMEOUT`` (``parse_batch``
        refuses anything else), and the setting is always finite, so the result is too.
        """
        if self.timeout is None or setting is None:
            return setting if self.timeout is None else self.timeout
        return min(self.timeout, setting)

    @property
    def stops_on_error(self) -> bool:
        return self.atomic or self.on_error == "stop"


def parse_batch(raw: bytes, parts: dict[str, Upload] | None = None) -> BatchSpec:
    """Validate a batch document; ``parts`` are the files of a multipart batch (else None).

    Every problem is reported at once: those of the batch's own fields, then those of the
    items (the first of each item).

    A bare list of request objects, the 2015 app's format, is read as ``{"batch": [...]}``
    with the same checks and limits; its problems use the 2015 words where the 2015 app had
    them, and the spec and any ``BatchError`` are marked ``legacy``.
    """
    data = _load(raw, parts)
    if is_legacy_batch(data):
        try:
            return _parse_document(raw, {"batch": data}, parts, legacy=True)
        except BatchError as exc:
            exc.legacy = True
            raise
    if not isinstance(data, dict) or "batch" not in data:
        if looks_like_one_request(data):  # a 2015 client's request, not in a list
            raise BatchError.single(NOT_A_LIST, field="batch", legacy=True)
        raise BatchError.single('The request body must be a JSON object with a "batch" list '
                                "(or, in the 2015 format, a list of request objects).",
                                field="batch")
    return _parse_document(raw, data, parts)


def _parse_document(raw: bytes, data: dict, parts: dict[str, Upload] | None,
                    legacy: bool = False) -> BatchSpec:
    deep_fields, deep_items = deep_parts(data)
    problems: list[Problem] = list(deep_fields.values())
    unknown = sorted(set(data) - TOP_LEVEL_KEYS)
    if unknown:
        problems.append(Problem(f"Unknown top-level field(s): {_listed(unknown)}.",
                                field=field_key(unknown[0])))
    atomic = data.get("atomic", False)
    if not isinstance(atomic, bool) and "atomic" not in deep_fields:
        problems.append(Problem(f'"atomic" must be true or false, not {kind(atomic)}.',
                                field="atomic"))
    on_error = data.get("on_error", "continue")
    if on_error not in ON_ERROR and "on_error" not in deep_fields:
        problems.append(Problem(f'"on_error" must be "continue" or "stop", not '
                                f"{excerpt(on_error)}.", field="on_error"))
    timeout = data.get("timeout")
    if bad_timeout(timeout) and "timeout" not in deep_fields:
        problems.append(Problem(f'"timeout" must be a finite number of seconds above 0 and at '
                                f"most {MAX_TIMEOUT} (MAX_TIMEOUT, one day), not "
                                f"{excerpt(timeout)}.", field="timeout"))
    items = data["batch"]
    limit = batch_settings.MAX_LIMIT
    specs: list[ItemSpec] = []
    references = _may_hold_references(raw)
    if "batch" in deep_fields:
        pass
    elif not isinstance(items, list):
        problems.append(Problem(f'"batch" must be a list, not {kind(items)}.', field="batch"))
    elif not items:
        if not legacy:  # the 2015 app answered an empty list with an empty list
            problems.append(Problem('"batch" must hold at least one request.', field="batch"))
    elif len(items) > limit:
        problems.append(Problem(too_many_message(limit) if legacy else
                                f"The batch holds {len(items)} requests; the limit is {limit} "
                                "(MAX_LIMIT).", field="batch"))
    elif references and (too_many := reference_count_problem(items)) is not None:
        problems.append(too_many)  # counted before any path is parsed
    else:
        # Read once per batch, not once per header.
        header_limits = (batch_settings.MAX_HEADERS, batch_settings.MAX_HEADER_SIZE)
        for index, item in enumerate(items):
            if legacy and (problem := item_problem(index, item)) is not None:
                problems.append(problem)
                continue
            if index in deep_items:
                problems.append(deep_items[index])
                continue
            try:
                specs.append(parse_item(index, item, parts, header_limits=header_limits,
                                        references=references))
            except BatchError as exc:
                problems.extend(exc.problems)
    if problems:
        raise BatchError(problems)
    check_graph(specs)
    return BatchSpec(specs, atomic, on_error, timeout, legacy)


def parse_item(index: int, item: Any, parts: dict[str, Upload] | None = None, *,
               header_limits: tuple[int, int] | None = None,
               references: bool = True) -> ItemSpec:
    """One item; ``header_limits`` is (MAX_HEADERS, MAX_HEADER_SIZE), read if not given.

    ``references=False`` says the batch document cannot hold a reference (no marker, no
    ``\\u`` escape: see ``_may_hold_references``), so the item is not searched for one.
    The item must nest at most ``MAX_JSON_DEPTH`` - 2 levels (``parse_batch`` checks).
    """
    def fail(message: str, name: str | None) -> BatchError:
        return BatchError.single(message, index=index, field=name)

    if not isinstance(item, dict):
        raise fail(f"Each request must be a JSON object, not {kind(item)}.", None)
    keys = item.keys()
    if not keys <= ITEM_KEYS:
        unknown = sorted(keys - ITEM_KEYS)
        raise fail(f"Unknown field(s): {_listed(unknown)}.", field_key(unknown[0]))

    method = item.get("method")
    upper = method.upper() if isinstance(method, str) else None
    if upper not in _METHODS:
        shown = "missing" if method is None else excerpt(method)
        raise fail(f"method is {shown}; use one of {', '.join(METHODS)}.", "method")

    url = item.get("url")
    if not isinstance(url, str) or not url.strip():
        raise fail("url is required and must be a non-empty string.", "url")
    if has_surrogate(url):
        raise fail(f"url {NOT_UNICODE}.", "url")
    problem = url_problem(url)
    if problem:
        raise fail(problem, "url")

    if header_limits is None:
        header_limits = (batch_settings.MAX_HEADERS, batch_settings.MAX_HEADER_SIZE)
    given_headers = item.get("headers")
    headers = {} if given_headers is None else parse_headers(given_headers, fail,
                                                             *header_limits)
    given_body = item.get("body")
    body, has_body = (b"", False) if given_body is None else _encode_body(given_body, fail)
    data = given_body if isinstance(given_body, (dict, list)) else None
    if keys <= REQUEST_KEYS:  # the common case: nothing but the request itself
        spec = ItemSpec(index, upper, url, body, headers, has_body, data)
    else:
        spec = ItemSpec(
            index, upper, url, body, headers, has_body, data,
            name=_parse_name(item.get("name"), fail),
            depends_on=_parse_depends_on(item.get("depends_on"), fail),
            omit_response_on_success=_parse_flag(item, "omit_response_on_success", fail),
            files=_parse_files(item, upper, headers, parts, fail))
    if not references:
        return spec
    # A malformed reference or JSONPath is a 400 now, not a 424 later.
    found = find_references(spec)
    return dataclasses.replace(spec, references=tuple(found)) if found else spec


def url_problem(url: str) -> str | None:
    if "\r" in url or "\n" in url or "\x00" in url or not (url.startswith("/")
                                                       or "://" in url):
        return f"url {excerpt(url)} must be a path starting with '/' or an absolute http(s) URL."
    return None


def _parse_name(name: Any, fail) -> str | None:
    if name is None:
        return None
    if isinstance(name, str) and has_surrogate(name):
        raise fail(f"name {NOT_UNICODE}.", "name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise fail(f"name must be 1 to 100 letters, digits, '_', '.' or '-', not "
                   f"{excerpt(name)}.", "name")
    return name


def _parse_depends_on(value: Any, fail) -> tuple[str, ...]:
    if value is None:
        return ()
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise fail(f"depends_on must be a name or a list of names, not {kind(value)}.",
                   "depends_on")
    return tuple(dict.fromkeys(names))


def _parse_flag(item: dict, key: str, fail) -> bool:
    value = item.get(key, False)
    if not isinstance(value, bool):
        raise fail(f"{key} must be true or false, not {kind(value)}.", key)
    return value


def _parse_files(item: dict, method: str, headers: dict[str, str],
                 parts: dict[str, Upload] | None, fail) -> tuple[tuple[str, Upload], ...]:
    files = item.get("files")
    if files is None:
        return ()
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise fail('files must be an object that maps form fields to part names, like '
                   '{"avatar": "file1"}.', "files")
    if any(has_surrogate(text) for pair in files.items() for text in pair):
        raise fail(f"files {NOT_UNICODE}.", "files")
    if parts is None:
        raise fail("files needs a multipart/form-data batch that carries the files as parts.",
                   "files")
    if method not in UPLOAD_METHODS:
        raise fail(f"files can only be sent with POST, PUT or PATCH, not {method}.", "files")
    for header in headers:
        if header.lower() == "content-type":
            raise fail("A request with files may not set Content-Type: it is sent as "
                       "multipart/form-data.", "headers." + field_key(header))
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
            raise fail(f"files refers to part {excerpt(part)}, which is not a file in the "
                       "batch request.", "files." + field_key(form_field))
        uploads.append((form_field, parts[part]))
    return tuple(uploads)


def _encode_body(body: Any, fail) -> tuple[bytes, bool]:
    if body is None:
        return b"", False
    if isinstance(body, str):
        try:
            return body.encode("utf-8"), True
        except UnicodeEncodeError:
            raise fail(f"body {NOT_UNICODE}.", "body") from None
    if isinstance(body, (dict, list)):
        # json.dumps would escape a lone surrogate ("\\ud800"), and the view would read it
        # back: refused like one in a text body. Its escapes are lowercase "\\udXXX", so
        # most bodies are cleared without a walk.
        encoded = json.dumps(body, separators=(",", ":")).encode("utf-8")
        if b"\\ud" in encoded and any_surrogate(body):
            raise fail(f"body {NOT_UNICODE}.", "body")
        return encoded, True
    raise fail(f"body must be a string, an object or an array, not {kind(body)}.", "body")


def _may_hold_references(raw: bytes) -> bool:
    """Whether the document can hold a reference: its text, or a ``\\u`` escape that could
    spell one (the common batch has neither, and skips the count)."""
    return MARKER_BYTES in raw or b"\\u" in raw


def _load(raw: bytes, parts: dict[str, Upload] | None) -> Any:
    where, name = ("request body", "body") if parts is None else ("'batch' part", "batch")
    try:
        return json.loads(raw)
    except RecursionError:
        raise BatchError.single(f"The {where} {TOO_DEEP}.", field=name) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BatchError.single(f"The {where} is not valid JSON: {exc}.", field=name) from None


def _listed(keys: list[str], most: int = 5) -> str:
    shown = ", ".join(excerpt(key) for key in keys[:most])
    return shown if len(keys) <= most else f"{shown} and {len(keys) - most} more"


