"""Parse and validate the batch body into ``ItemSpec`` objects, before anything runs."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from itertools import chain, compress
from typing import Any

from batch_requests.conf import batch_settings
from batch_requests.exceptions import BatchError, Problem
from batch_requests.graph import check_graph
from batch_requests.references import (
    MARKER_BYTES,
    Reference,
    find_references,
    reference_count_problem,
)
from batch_requests.uploads import Upload, form_fields

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE")
REQUEST_KEYS = frozenset({"method", "url", "body", "headers"})
ITEM_KEYS = REQUEST_KEYS | {"name", "depends_on", "omit_response_on_success", "files"}
TOP_LEVEL_KEYS = frozenset({"batch", "atomic", "on_error", "timeout"})
# A request's name, as it appears in depends_on and in {result=NAME:PATH} references. Match
# it with fullmatch: "$" alone also matches before a final "\n". (The anchors stay for the
# OpenAPI schema, whose patterns are not anchored.)
NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
# Methods whose sub-request may carry uploaded files.
UPLOAD_METHODS = frozenset({"POST", "PUT", "PATCH"})
# RFC 9110 token characters, less "_": servers drop such headers, since WSGI would confuse
# "X_Custom" with "X-Custom". Matched with fullmatch, like NAME.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^`|~0-9A-Za-z]+")
# Headers an item may not set: the batch request's own cookies are the only ones that apply.
FORBIDDEN_HEADERS = frozenset({"cookie"})
# A client's "timeout" above this many seconds (one day) is refused as absurd, like one that
# is not a finite number above 0. An accepted value is still capped by the TIMEOUT setting.
MAX_TIMEOUT = 86400
# Levels of nesting of the batch document: its object is level 1, "batch" level 2, an item
# level 3 and an item's body level 4 (a body may nest 97 levels, itself included). Deeper is
# a 400, found without recursion right after parsing, so that nothing later (json.dumps of a
# body, the reference scan) can reach Python's recursion limit.
MAX_JSON_DEPTH = 100
# Characters of a client's string that an error message quotes; the rest is left out.
EXCERPT_LENGTH = 60
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_NOT_UNICODE = ("holds a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not "
                "valid Unicode")
_TOO_DEEP = (f"is nested too deeply: a batch document may nest at most {MAX_JSON_DEPTH} levels "
             "of objects and arrays (MAX_JSON_DEPTH)")


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
    """
    data = _load(raw, parts)
    if not isinstance(data, dict) or "batch" not in data:
        raise BatchError.single('The request body must be a JSON object with a "batch" list.',
                                field="batch")
    deep_fields, deep_items = _deep_parts(data)
    problems: list[Problem] = list(deep_fields.values())
    unknown = sorted(set(data) - TOP_LEVEL_KEYS)
    if unknown:
        problems.append(Problem(f"Unknown top-level field(s): {_listed(unknown)}.",
                                field=_key(unknown[0])))
    atomic = data.get("atomic", False)
    if not isinstance(atomic, bool) and "atomic" not in deep_fields:
        problems.append(Problem(f'"atomic" must be true or false, not {_kind(atomic)}.',
                                field="atomic"))
    on_error = data.get("on_error", "continue")
    if on_error not in ON_ERROR and "on_error" not in deep_fields:
        problems.append(Problem(f'"on_error" must be "continue" or "stop", not '
                                f"{excerpt(on_error)}.", field="on_error"))
    timeout = data.get("timeout")
    if _bad_timeout(timeout) and "timeout" not in deep_fields:
        problems.append(Problem(f'"timeout" must be a finite number of seconds above 0 and at '
                                f"most {MAX_TIMEOUT} (MAX_TIMEOUT, one day), not "
                                f"{excerpt(timeout)}.", field="timeout"))
    items = data["batch"]
    limit = batch_settings.MAX_LIMIT
    specs: list[ItemSpec] = []
    if "batch" in deep_fields:
        pass
    elif not isinstance(items, list):
        problems.append(Problem(f'"batch" must be a list, not {_kind(items)}.', field="batch"))
    elif not items:
        problems.append(Problem('"batch" must hold at least one request.', field="batch"))
    elif len(items) > limit:
        problems.append(Problem(
            f"The batch holds {len(items)} requests; the limit is {limit} (MAX_LIMIT).",
            field="batch"))
    elif _may_hold_references(raw) and (too_many := reference_count_problem(items)) is not None:
        problems.append(too_many)  # counted before any path is parsed
    else:
        # Read once per batch, not once per header.
        header_limits = (batch_settings.MAX_HEADERS, batch_settings.MAX_HEADER_SIZE)
        for index, item in enumerate(items):
            if index in deep_items:
                problems.append(deep_items[index])
                continue
            try:
                specs.append(parse_item(index, item, parts, header_limits=header_limits))
            except BatchError as exc:
                problems.extend(exc.problems)
    if problems:
        raise BatchError(problems)
    check_graph(specs)
    return BatchSpec(specs, atomic, on_error, timeout)


def parse_item(index: int, item: Any, parts: dict[str, Upload] | None = None, *,
               header_limits: tuple[int, int] | None = None) -> ItemSpec:
    """One item; ``header_limits`` is (MAX_HEADERS, MAX_HEADER_SIZE), read if not given.

    The item must nest at most ``MAX_JSON_DEPTH`` - 2 levels (``parse_batch`` checks).
    """
    def fail(message: str, name: str | None) -> BatchError:
        return BatchError.single(message, index=index, field=name)

    if not isinstance(item, dict):
        raise fail(f"Each request must be a JSON object, not {_kind(item)}.", None)
    keys = item.keys()
    unknown = sorted(keys - ITEM_KEYS)
    if unknown:
        raise fail(f"Unknown field(s): {_listed(unknown)}.", _key(unknown[0]))

    method = item.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        shown = "missing" if method is None else excerpt(method)
        raise fail(f"method is {shown}; use one of {', '.join(METHODS)}.", "method")

    url = item.get("url")
    if not isinstance(url, str) or not url.strip():
        raise fail("url is required and must be a non-empty string.", "url")
    if _has_surrogate(url):
        raise fail(f"url {_NOT_UNICODE}.", "url")
    problem = url_problem(url)
    if problem:
        raise fail(problem, "url")

    if header_limits is None:
        header_limits = (batch_settings.MAX_HEADERS, batch_settings.MAX_HEADER_SIZE)
    headers = _parse_headers(item.get("headers"), fail, *header_limits)
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
        return f"url {excerpt(url)} must be a path starting with '/' or an absolute http(s) URL."
    return None


def _parse_name(name: Any, fail) -> str | None:
    if name is None:
        return None
    if isinstance(name, str) and _has_surrogate(name):
        raise fail(f"name {_NOT_UNICODE}.", "name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise fail(f"name must be 1 to 100 letters, digits, '_', '.' or '-', not "
                   f"{excerpt(name)}.", "name")
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
    if any(_has_surrogate(text) for pair in files.items() for text in pair):
        raise fail(f"files {_NOT_UNICODE}.", "files")
    if parts is None:
        raise fail("files needs a multipart/form-data batch that carries the files as parts.",
                   "files")
    if method not in UPLOAD_METHODS:
        raise fail(f"files can only be sent with POST, PUT or PATCH, not {method}.", "files")
    for header in headers:
        if header.lower() == "content-type":
            raise fail("A request with files may not set Content-Type: it is sent as "
                       "multipart/form-data.", "headers." + _key(header))
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
                       "batch request.", "files." + _key(form_field))
        uploads.append((form_field, parts[part]))
    return tuple(uploads)


def _parse_headers(headers: Any, fail, max_headers: int, max_size: int) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise fail(f"headers must be an object of strings, not {_kind(headers)}.", "headers")
    if len(headers) > max_headers:  # before looking at any of them
        raise fail(f"headers holds {len(headers)} headers; the limit is {max_headers} "
                   "(MAX_HEADERS).", "headers")
    for name, value in headers.items():
        where = "headers." + _key(name)
        if _has_surrogate(name):
            raise fail(f"The header name {excerpt(name)} {_NOT_UNICODE}.", where)
        if not HEADER_NAME.fullmatch(name):
            raise fail(f"{excerpt(name)} is not a valid HTTP header name.", where)
        shown = excerpt(name)
        if not isinstance(value, str):
            raise fail(f"The value of header {shown} must be a string, not {_kind(value)}.",
                       where)
        if _has_surrogate(value):
            raise fail(f"The value of header {shown} {_NOT_UNICODE}.", where)
        if any(c in value for c in "\r\n\x00"):
            raise fail(f"The value of header {shown} holds a CR, LF or NUL character.", where)
        size = len(name) + (len(value) if value.isascii() else len(value.encode("utf-8")))
        if size > max_size:
            raise fail(f"Header {shown} is {size} bytes (name and value, UTF-8); the limit is "
                       f"{max_size} (MAX_HEADER_SIZE).", where)
        if name.lower() in FORBIDDEN_HEADERS:
            raise fail(f"A request in a batch may not set {shown}; the batch request's own "
                       "cookies apply to every request.", where)
    return dict(headers)


def _encode_body(body: Any, fail) -> tuple[bytes, bool]:
    if body is None:
        return b"", False
    if isinstance(body, str):
        try:
            return body.encode("utf-8"), True
        except UnicodeEncodeError:
            raise fail(f"body {_NOT_UNICODE}.", "body") from None
    if isinstance(body, (dict, list)):
        # json.dumps would escape a lone surrogate ("\\ud800"), and the view would read it
        # back: refused like one in a text body. Its escapes are lowercase "\\udXXX", so
        # most bodies are cleared without a walk.
        encoded = json.dumps(body, separators=(",", ":")).encode("utf-8")
        if b"\\ud" in encoded and _any_surrogate(body):
            raise fail(f"body {_NOT_UNICODE}.", "body")
        return encoded, True
    raise fail(f"body must be a string, an object or an array, not {_kind(body)}.", "body")


def _may_hold_references(raw: bytes) -> bool:
    """Whether the document can hold a reference: its text, or a ``\\u`` escape that could
    spell one (the common batch has neither, and skips the count)."""
    return MARKER_BYTES in raw or b"\\u" in raw


def _load(raw: bytes, parts: dict[str, Upload] | None) -> Any:
    where, name = ("request body", "body") if parts is None else ("'batch' part", "batch")
    try:
        return json.loads(raw)
    except RecursionError:
        raise BatchError.single(f"The {where} {_TOO_DEEP}.", field=name) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BatchError.single(f"The {where} is not valid JSON: {exc}.", field=name) from None


def _bad_timeout(value: Any) -> bool:
    if value is None:
        return False
    # NaN fails every comparison and the infinities fail the range, so both are refused.
    return (isinstance(value, bool) or not isinstance(value, (int, float))
            or not 0 < value <= MAX_TIMEOUT)


def _too_deep(value: Any, levels: int) -> bool:
    """Whether ``value`` nests more than ``levels`` levels of objects and arrays.

    Iterative, one level at a time: it must not recurse on the very documents it is there
    to refuse. Picking the containers out of a level runs in C (compress), so a large body
    costs a fraction of its json.loads.
    """
    if not _is_container(type(value)):
        return False
    level = [value]
    for depth in range(1, levels + 1):
        children = list(compress(_children(level), map(_is_container,
                                                       map(type, _children(level)))))
        if not children:
            return False
        if depth == levels:
            return True
        level = list(filter(None, children))  # an empty one adds no level below it
    return True


_is_container = frozenset({dict, list}).__contains__


def _children(level: list) -> Any:
    return chain.from_iterable(v.values() if type(v) is dict else v for v in level)


def _deep_parts(data: dict) -> tuple[dict[str, Problem], dict[int, Problem]]:
    """The parts of the batch document nested deeper than ``MAX_JSON_DEPTH``.

    Returns the batch's own fields that are too deep, and the items that are (naming the
    item's field, usually "body", that is).
    """
    fields: dict[str, Problem] = {}
    items: dict[int, Problem] = {}
    for key, value in data.items():
        if key == "batch" and isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    # The document, "batch" and the item are three levels already.
                    name = next((name for name, part in item.items()
                                 if _too_deep(part, MAX_JSON_DEPTH - 3)), None)
                    if name is not None:
                        items[index] = Problem(f"{excerpt(name)} {_TOO_DEEP}.", index,
                                               _key(name))
                elif _too_deep(item, MAX_JSON_DEPTH - 2):
                    items[index] = Problem(f"The request {_TOO_DEEP}.", index)
        elif _too_deep(value, MAX_JSON_DEPTH - 1):
            fields[key] = Problem(f"{excerpt(key)} {_TOO_DEEP}.", field=_key(key))
    return fields, items


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def _any_surrogate(data: Any) -> bool:
    """Whether a string or key anywhere in a JSON value holds a lone surrogate (iterative)."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if _has_surrogate(value):
                return True
        elif isinstance(value, dict):
            if any(_has_surrogate(key) for key in value):
                return True
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def excerpt(value: Any) -> str:
    """A client's value as an error message shows it: never more than a short excerpt.

    A string is quoted (repr, which escapes control characters and lone surrogates) and cut
    to ``EXCERPT_LENGTH`` characters; a number too; an object or array is only named.
    """
    if isinstance(value, str):
        if len(value) <= EXCERPT_LENGTH:
            return repr(value)
        return f"{value[:EXCERPT_LENGTH]!r}... ({len(value)} characters)"
    if value is None or isinstance(value, (bool, int, float)):
        text = repr(value)
        return text if len(text) <= EXCERPT_LENGTH else f"{text[:EXCERPT_LENGTH]}..."
    return _kind(value)


def _key(key: str) -> str:
    """A client's object key as a problem's ``field``: shortened, lone surrogates escaped."""
    if len(key) > 100:
        key = key[:EXCERPT_LENGTH] + "..."
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def _listed(keys: list[str], most: int = 5) -> str:
    shown = ", ".join(excerpt(key) for key in keys[:most])
    return shown if len(keys) <= most else f"{shown} and {len(keys) - most} more"


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), "a value")
