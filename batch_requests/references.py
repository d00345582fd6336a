"""``{result=NAME:PATH}`` references: find them in an item, and fill them in before it runs.

PATH is a JSONPath (parsed by jsonpath-ng) into the JSON body of the response of the request
called NAME. Several matches join with commas. Where the value lands decides how it is
written: percent-encoded in the url (it stays one path segment or query value), as JSON
string content inside a JSON body, as is in a text body or a header value.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from batch_requests.exceptions import BatchError

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


@lru_cache(maxsize=512)
def compile_path(path: str) -> Any:
    # Imported on first use: jsonpath-ng takes ~20 ms to import, and most batches never
    # hold a reference.
    from jsonpath_ng.ext import parse

    return parse(path)


def scan(text: str, field: str) -> list[Reference]:
    """The references in ``text``; ``ValueError`` if one is malformed."""
    found = []
    start = text.find(MARKER)
    while start != -1:
        match = REFERENCE.match(text, start)
        if match is None:
            raise ValueError(f"{text[start:start + 60]!r} is not a reference of the form "
                             "{result=NAME:$.json.path}.")
        reference = Reference(match.group(0), match.group(1), match.group(2), field)
        try:
            compile_path(reference.path)
        except Exception as exc:  # noqa: BLE001 - jsonpath-ng's parser raises several types
            raise ValueError(f"{reference.text}: {reference.path!r} is not a valid JSONPath "
                             f"({exc}).") from None
        found.append(reference)
        start = text.find(MARKER, match.end())
    return found


def _strings(data: Any):
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)


def find_references(spec: ItemSpec) -> list[Reference]:
    """Every reference of an item; a malformed one is a 400 naming the field it is in."""
    if MARKER not in spec.url and MARKER_BYTES not in spec.body and not any(
            MARKER in value for value in spec.headers.values()):
        return []  # the common case, decided without walking the body
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
            found += scan(text, field)
        except ValueError as exc:
            raise BatchError.single(str(exc), index=spec.index, field=field) from None
    return found


def resolve(spec: ItemSpec, responses: dict[str, tuple[int, SubResult]],
            cache: dict[str, Any] | None = None) -> ItemSpec:
    """The item with its references filled in from ``responses`` (name -> (index, result)).

    ``cache`` keeps parsed bodies and values across the items of one batch (a response does
    not change once given). Raises ``Unresolved`` when a response is not JSON or a path
    matches nothing.
    """
    cache = {} if cache is None else cache
    values: dict[str, str] = {}
    for reference in spec.references:
        if reference.text not in cache:
            cache[reference.text] = _value(reference, responses, cache)
        values[reference.text] = cache[reference.text]
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
        changes["data"] = _fill_data(spec.data, lambda text: fill(text, str))
        changes["body"] = json.dumps(changes["data"], separators=(",", ":")).encode("utf-8")
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


def _value(reference: Reference, responses: dict[str, tuple[int, SubResult]],
           cache: dict[str, Any]) -> str:
    index, result = responses[reference.name]
    who = f"request {index} ({reference.name!r})"
    key = f"json:{reference.name}"  # cannot clash with a reference's text, which starts "{"
    if key not in cache:
        try:
            cache[key] = json.loads(result.body.decode(result.charset))
        except (ValueError, LookupError):
            raise Unresolved(f"Not run: {reference.text} cannot be resolved: the response of "
                             f"{who} is not JSON.") from None
    matches = compile_path(reference.path).find(cache[key])
    if not matches:
        raise Unresolved(f"Not run: {reference.text} matched nothing in the response of "
                         f"{who}.")
    return ",".join(_text(match.value) for match in matches)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))
