"""The limits on the batch document, checked before anything runs.

Its nesting depth (MAX_JSON_DEPTH, found without recursion), lone surrogates in its strings,
the client's ``timeout`` (MAX_TIMEOUT), the headers of an item (MAX_HEADERS, MAX_HEADER_SIZE,
names and values), and how an error message quotes a client's text: never more than an excerpt.
"""

from __future__ import annotations

import re
from itertools import chain, compress
from typing import Any

from batch_requests.exceptions import Problem

# RFC 9110 token characters, less "_": WSGI cannot tell "X_Custom" from "X-Custom", so an
# item's "_" is read as "-" (the 2015 app's clients write "content_type", "X_CUSTOM") before
# the name is matched, with fullmatch like NAME; every later check sees the dashed name.
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
#: Characters of a caller's text that an error message quotes.
EXCERPT = 60
_SURROGATE = re.compile(r"[\ud800-\udfff]")
NOT_UNICODE = ("holds a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not "
                "valid Unicode")
TOO_DEEP = (f"is nested too deeply: a batch document may nest at most {MAX_JSON_DEPTH} levels "
             "of objects and arrays (MAX_JSON_DEPTH)")


def bad_timeout(value: Any) -> bool:
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


def deep_parts(data: dict) -> tuple[dict[str, Problem], dict[int, Problem]]:
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
                    # The document, "batch" and the item are three levels already. Only
                    # objects and arrays nest (most items hold none: strings, null).
                    for name, part in item.items():
                        if _is_container(type(part)) and _too_deep(part, MAX_JSON_DEPTH - 3):
                            items[index] = Problem(f"{excerpt(name)} {TOO_DEEP}.", index,
                                                   field_key(name))
                            break
                elif _too_deep(item, MAX_JSON_DEPTH - 2):
                    items[index] = Problem(f"The request {TOO_DEEP}.", index)
        elif _too_deep(value, MAX_JSON_DEPTH - 1):
            fields[key] = Problem(f"{excerpt(key)} {TOO_DEEP}.", field=field_key(key))
    return fields, items


def has_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def any_surrogate(data: Any) -> bool:
    """Whether a string or key anywhere in a JSON value holds a lone surrogate (iterative)."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if has_surrogate(value):
                return True
        elif isinstance(value, dict):
            if any(has_surrogate(key) for key in value):
                return True
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def parse_headers(headers: Any, fail, max_headers: int, max_size: int) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise fail(f"headers must be an object of strings, not {kind(headers)}.", "headers")
    if len(headers) > max_headers:  # before looking at any of them
        raise fail(f"headers holds {len(headers)} headers; the limit is {max_headers} "
                   "(MAX_HEADERS).", "headers")
    parsed: dict[str, str] = {}
    seen: dict[str, str] = {}  # lower-case dashed name -> the name as the item wrote it
    for name, value in headers.items():
        where = "headers." + field_key(name)
        if has_surrogate(name):
            raise fail(f"The header name {excerpt(name)} {NOT_UNICODE}.", where)
        header = name.replace("_", "-") if "_" in name else name  # "content_type": Content-Type
        if not HEADER_NAME.fullmatch(header):
            raise fail(f"{excerpt(name)} is not a valid HTTP header name.", where)
        shown = excerpt(name)
        key = header.lower()
        if key in seen:
            raise fail(f"Headers {excerpt(seen[key])} and {shown} are the same header (names "
                       "are case-insensitive and '_' is read as '-'); send it once.", where)
        seen[key] = name
        if not isinstance(value, str):
            raise fail(f"The value of header {shown} must be a string, not {kind(value)}.",
                       where)
        if has_surrogate(value):
            raise fail(f"The value of header {shown} {NOT_UNICODE}.", where)
        if any(c in value for c in "\r\n\x00"):
            raise fail(f"The value of header {shown} holds a CR, LF or NUL character.", where)
        size = len(name) + (len(value) if value.isascii() else len(value.encode("utf-8")))
        if size > max_size:
            raise fail(f"Header {shown} is {size} bytes (name and value, UTF-8); the limit is "
                       f"{max_size} (MAX_HEADER_SIZE).", where)
        if key in FORBIDDEN_HEADERS:
            raise fail(f"A request in a batch may not set {shown}; the batch request's own "
                       "cookies apply to every request.", where)
        parsed[header] = value
    return parsed


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
    return kind(value)


def field_key(key: str) -> str:
    """A client's object key as a problem's ``field``: shortened, lone surrogates escaped."""
    if len(key) > 100:
        key = key[:EXCERPT_LENGTH] + "..."
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), "a value")


def cut(text: str, limit: int = EXCERPT) -> str:
    """``text``, or its start: an error message never echoes a caller's text whole."""
    return text if len(text) <= limit else text[:limit] + "..."
