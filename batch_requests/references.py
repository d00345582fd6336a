"""``{result=NAME:PATH}`` references: find them in an item, and fill them in before it runs.

PATH is a JSONPath into the JSON body of the response of the request called NAME, in the safe
subset of ``jsonpath.py`` (names, indices, wildcards, slices and one recursive descent).
Several matches join with commas. Where the value lands decides how it is written:
percent-encoded in the url (it stays one path segment or query value), as JSON string content
inside a JSON body, as is in a text body or a header value.

Every cost is bounded: MAX_REFERENCES references in a batch (counted before any path is
parsed), MAX_REFERENCE_PATH_LENGTH characters of a path (checked before it is parsed),
MAX_REFERENCE_VALUE_SIZE characters of a filled-in value, and WALK_LIMIT values of the
responses visited by the paths of one batch (``jsonpath.py``, which evaluates paths lazily).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from batch_requests.conf import batch_settings
from batch_requests.exceptions import BatchError, Problem
from batch_requests.jsonpath import SUBSET, WALK_LIMIT, TooFar, Walk, compile_path, select
from batch_requests.limits import EXCERPT, cut

if TYPE_CHECKING:
    from batch_requests.dispatch import SubResult
    from batch_requests.payload import ItemSpec

MARKER = "{result="
MARKER_BYTES = MARKER.encode()
REFERENCE = re.compile(r"\{result=([A-Za-z0-9_.\-]{1,100}):([^{}]+)\}")


@dataclass(frozen=True)
class Reference:
    text: str  # as written, e.g. "{result=create:$.id}"
    name: str
    path: str
    field: str  # where it was found: "url", "body" or "headers.<Name>"


class Unresolved(Exception):
    """A reference that cannot be filled in: the item answers 424 and does not run."""


def scan(text: str, field: str, max_length: int) -> list[Reference]:
    """The references in ``text``; ``ValueError`` if one is malformed, its path longer than
    ``max_length`` characters, or outside the subset."""
    found = []
    start = text.find(MARKER)
    while start != -1:
        match = REFERENCE.match(text, start)
        if match is None:
            raise ValueError(f"{text[start:start + EXCERPT]!r} is not a reference of the form "
                             "{result=NAME:$.json.path}.")
        reference = Reference(match.group(0), match.group(1), match.group(2), field)
        if len(reference.path) > max_length:  # before any parsing work
            raise ValueError(f"The JSONPath of {cut(reference.text)!r} is "
                             f"{len(reference.path)} characters long; the limit is "
                             f"{max_length} (MAX_REFERENCE_PATH_LENGTH).")
        problem = compile_path(reference.path)[1]
        if problem:
            raise ValueError(f"{cut(reference.text)!r}: {problem}; {SUBSET}.")
        found.append(reference)
        start = text.find(MARKER, match.end())
    return found


def _strings(data: Any) -> Iterator[str]:
    """The strings in a JSON value, in order (without recursion: any depth is fine)."""
    stack = [iter((data,))]
    while stack:
        for value in stack[-1]:
            if isinstance(value, str):
                yield value
            elif isinstance(value, dict):
                stack.append(iter(value.values()))
                break
            elif isinstance(value, list):
                stack.append(iter(value))
                break
        else:
            stack.pop()


def _raw_places(item: dict) -> Iterator[tuple[str, str]]:
    """(field, text) of every string of a batch item, as sent, where a reference may be."""
    for key in ("url", "body"):
        if isinstance(item.get(key), str):
            yield key, item[key]
    if isinstance(item.get("body"), (dict, list)):
        yield from (("body", text) for text in _strings(item["body"]))
    if isinstance(item.get("headers"), dict):
        yield from ((f"headers.{cut(name)}", value) for name, value in item["headers"].items()
                    if isinstance(value, str))


def reference_count_problem(items: list) -> Problem | None:
    """The problem of a batch that holds more than MAX_REFERENCES references, or None.

    Run on the items as sent, before any path is parsed: it counts the markers "{result="
    (every reference starts with one; a marker that is no reference is a 400 anyway) and
    stops at the item and field where the limit is passed.
    """
    limit = batch_settings.MAX_REFERENCES
    total = 0
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        for field, text in _raw_places(item):
            total += text.count(MARKER)
            if total > limit:
                return Problem(f"The batch holds more than {limit} references {{result=...}}; "
                               f"the limit is {limit} (MAX_REFERENCES).", index, field)
    return None


def find_references(spec: ItemSpec) -> list[Reference]:
    """Every reference of an item; a malformed one is a 400 naming the field it is in."""
    if MARKER not in spec.url and MARKER_BYTES not in spec.body and not any(
            MARKER in value for value in spec.headers.values()):
        return []  # the common case, decided without walking the body
    max_length = batch_settings.MAX_REFERENCE_PATH_LENGTH
    places = [("url", spec.url)]
    if spec.data is not None:
        places += [("body", text) for text in _strings(spec.data)]
    elif spec.has_body and MARKER.encode() in spec.body:
        places.append(("body", spec.body.decode("utf-8")))
    places += [(f"headers.{name}", value) for name, value in spec.headers.items()]
    found = []
    for field, text in places:
        if MARKER not in text:
            continue
        try:
            found += scan(text, field, max_length)
        except ValueError as exc:
            raise BatchError.single(str(exc), index=spec.index, field=field) from None
    return found


def resolve(spec: ItemSpec, responses: dict[str, tuple[int, SubResult]],
            cache: dict[str, Any] | None = None) -> ItemSpec:
    """The item with its references filled in from ``responses`` (name -> (index, result)).

    ``cache`` keeps parsed bodies, values and failures across the items of one batch (a
    response does not change once given), and what its paths may still visit (WALK_LIMIT).
    Raises ``Unresolved`` when a response is not JSON, a path matches nothing, or a value
    passes a limit.
    """
    cache = {} if cache is None else cache
    limit = batch_settings.MAX_REFERENCE_VALUE_SIZE
    values: dict[str, str] = {}
    for reference in spec.references:
        if reference.text not in cache:
            try:
                cache[reference.text] = _value(reference, responses, cache, limit)
            except Unresolved as exc:
                cache[reference.text] = _Failed(str(exc))
        value = cache[reference.text]
        if isinstance(value, _Failed):
            raise Unresolved(value.why)
        values[reference.text] = value
    if not values:
        return spec

    def fill(text: str, escape) -> str:
        return REFERENCE.sub(lambda m: escape(values[m.group(0)]), text)

    changes: dict[str, Any] = {"url": fill(spec.url, lambda v: quote(v, safe=",")),
                               "references": ()}
    headers = {name: fill(value, str) for name, value in spec.headers.items()}
    for name, value in headers.items():
        if any(c in value for c in "\r\n\x00"):
            raise Unresolved(f"The value of header {name!r} would hold a CR, LF or NUL "
                             "character after its references are filled in.")
    changes["headers"] = headers
    if spec.data is not None:
        try:
            changes["data"] = _fill_data(spec.data, lambda text: fill(text, str))
            changes["body"] = json.dumps(changes["data"], separators=(",", ":")).encode()
        except RecursionError:
            raise Unresolved("Not run: its body is nested too deeply to fill in its "
                             "references.") from None
    elif spec.has_body:
        changes["body"] = fill(spec.body.decode("utf-8"), str).encode("utf-8")
    return dataclasses.replace(spec, **changes)


def _fill_data(data: Any, fill) -> Any:
    """A JSON body with its strings filled in; ``json.dumps`` then escapes the values."""
    if isinstance(data, str):
        return fill(data) if MARKER in data else data
    if isinstance(data, dict):
        return {key: _fill_data(value, fill) for key, value in data.items()}
    if isinstance(data, list):
        return [_fill_data(value, fill) for value in data]
    return data


@dataclass(frozen=True)
class _Failed:
    """In the cache: why a response cannot be read, or a reference cannot be filled in."""

    why: str


class _TooLarge(Exception):
    """The value passes MAX_REFERENCE_VALUE_SIZE."""


def _value(reference: Reference, responses: dict[str, tuple[int, SubResult]],
           cache: dict[str, Any], limit: int) -> str:
    index, result = responses[reference.name]
    who = f"request {index} ({reference.name!r})"
    shown = cut(reference.text, 80)
    key = f"json:{reference.name}"  # cannot clash with a reference's text, which starts "{"
    if key not in cache:
        try:
            cache[key] = json.loads(result.body.decode(result.charset))
        except (ValueError, LookupError):
            cache[key] = _Failed("is not JSON")
        except RecursionError:
            cache[key] = _Failed("is nested too deeply to be read")
    document = cache[key]
    if isinstance(document, _Failed):
        raise Unresolved(f"Not run: {shown} cannot be resolved: the response of {who} "
                         f"{document.why}.")
    tree = compile_path(reference.path)[0]  # accepted when the batch was parsed
    walk = cache.setdefault("walk", Walk())  # the key cannot clash either
    try:
        text = _join(select(tree, document, walk), limit, walk)
    except _TooLarge:
        raise Unresolved(f"Not run: the value of {shown} would be longer than {limit} "
                         "characters (MAX_REFERENCE_VALUE_SIZE).") from None
    except TooFar:
        raise Unresolved(f"Not run: {shown} cannot be resolved: the references of this batch "
                         f"would visit more than {WALK_LIMIT} values of the responses.") from None
    except RecursionError:
        raise Unresolved(f"Not run: {shown} cannot be resolved: the response of {who} is "
                         "nested too deeply.") from None
    except Exception as exc:  # noqa: BLE001 - a 424 for this item, never a 500 for the batch
        raise Unresolved(f"Not run: {shown} cannot be resolved in the response of {who} "
                         f"({type(exc).__name__}).") from None
    if text is None:
        raise Unresolved(f"Not run: {shown} matched nothing in the response of {who}.")
    return text


_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _join(matches: Iterator[Any], limit: int, walk: Walk) -> str | None:
    """The matches as text joined with commas; None if there is none. Raises ``_TooLarge``
    as soon as the text would pass ``limit`` characters, before it is built; a piece of an
    encoded object or array counts as a value visited."""
    parts: list[str] = []
    size = -1  # no comma before the first match
    for value in matches:
        room = limit - size - 1
        if isinstance(value, (dict, list)):  # encoded a piece at a time, stopped at the limit
            chunks: list[str] = []
            length = 0
            for chunk in _ENCODER.iterencode(value):
                walk.spend()
                length += len(chunk)
                if length > room:
                    raise _TooLarge
                chunks.append(chunk)
            text = "".join(chunks)
        else:
            text = value if isinstance(value, str) else _ENCODER.encode(value)
        size += 1 + len(text)
        if size > limit:
            raise _TooLarge
        parts.append(text)
    return ",".join(parts) if parts else None
