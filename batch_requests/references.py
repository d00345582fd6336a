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

What the values add to a field is bounded as it is filled in, counted as the field's own
limit measures it: characters of the percent-encoded url (MAX_URL_LENGTH), bytes of a header
value (MAX_HEADER_SIZE), bytes of the body (DATA_UPLOAD_MAX_MEMORY_SIZE, or
BODY_FILL_FALLBACK when that is None). Filling in stops as soon as a field passes its bound,
so no item builds a string much larger than it may send; the filled-in item then meets the
limits of an item as sent (MAX_HEADERS, MAX_HEADER_SIZE, DATA_UPLOAD_MAX_MEMORY_SIZE here,
MAX_URL_LENGTH when its sub-request is built).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from django.conf import settings

from batch_requests.conf import batch_settings
from batch_requests.exceptions import BatchError, Problem
from batch_requests.jsonpath import SUBSET, WALK_LIMIT, TooFar, Walk, compile_path, select
from batch_requests.limits import EXCERPT, cut

if TYPE_CHECKING:
    from batch_requests.dispatch import SubResult
    from batch_requests.payload import ItemSpec

#: Bytes the values of references may add to one body when Django's
#: DATA_UPLOAD_MAX_MEMORY_SIZE is None (no limit on a direct request's body): Django's default
#: for that setting, 2.5 MB.
BODY_FILL_FALLBACK = 2_621_440
# Values are measured (percent-encoded, UTF-8, JSON-escaped) this many characters at a time,
# so measuring never builds more than a chunk's encoding past the bound.
_CHUNK = 65536

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


@dataclass(frozen=True)
class FillLimits:
    """The limits of filling in an item's references; read once per batch."""

    value: int  # MAX_REFERENCE_VALUE_SIZE: characters of one value
    url: int  # MAX_URL_LENGTH: characters of the percent-encoded url
    headers: int  # MAX_HEADERS
    header_size: int  # MAX_HEADER_SIZE: bytes of a header, name and value
    body: int | None  # DATA_UPLOAD_MAX_MEMORY_SIZE: bytes of the body; None: no limit

    @classmethod
    def read(cls) -> FillLimits:
        return cls(batch_settings.MAX_REFERENCE_VALUE_SIZE, batch_settings.MAX_URL_LENGTH,
                   batch_settings.MAX_HEADERS, batch_settings.MAX_HEADER_SIZE,
                   settings.DATA_UPLOAD_MAX_MEMORY_SIZE)

    @property
    def body_fill(self) -> int:
        """Bytes the values may add to a body."""
        return BODY_FILL_FALLBACK if self.body is None else self.body


AFTER = "Not run: after its references are filled in, "


class _Room:
    """What the values filled into one field may still add, as its limit measures it."""

    __slots__ = ("left", "limit", "what")

    def __init__(self, limit: int, what: str) -> None:
        self.left = self.limit = limit
        self.what = what  # e.g. "url would be longer than 8192 characters ... (MAX_URL_LENGTH)"

    def take(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise Unresolved(f"{AFTER}{self.what}; filling in stopped there.")


def resolve(spec: ItemSpec, responses: dict[str, tuple[int, SubResult]],
            cache: dict[str, Any] | None = None,
            limits: FillLimits | None = None) -> ItemSpec:
    """The item with its references filled in from ``responses`` (name -> (index, result)).

    ``cache`` keeps parsed bodies, values and failures across the items of one batch (a
    response does not change once given), and what its paths may still visit (WALK_LIMIT).
    ``limits`` are the batch's ``FillLimits`` (read from the settings if not given).
    Raises ``Unresolved`` when a response is not JSON, a path matches nothing, a value
    passes a limit, or a field of the filled-in item would pass its own.
    """
    cache = {} if cache is None else cache
    limits = FillLimits.read() if limits is None else limits
    values: dict[str, str] = {}
    for reference in spec.references:
        if reference.text not in cache:
            try:
                cache[reference.text] = _value(reference, responses, cache, limits.value)
            except Unresolved as exc:
                cache[reference.text] = _Failed(str(exc))
        value = cache[reference.text]
        if isinstance(value, _Failed):
            raise Unresolved(value.why)
        values[reference.text] = value
    if not values:
        return spec

    def fill(text: str, room: _Room, escape, size) -> str:
        """``text`` with its references filled in; each value, escaped, takes its ``size``
        from ``room``, checked on its length first (no escaping shortens a value)."""
        def one(match: re.Match) -> str:
            value = values[match.group(0)]
            if len(value) > room.left:
                room.take(len(value))  # stops here, before the value is escaped
            escaped = escape(value, room.left)
            room.take(size(escaped))
            return escaped
        return REFERENCE.sub(one, text) if MARKER in text else text

    changes: dict[str, Any] = {"references": ()}
    url_room = _Room(limits.url, f"url would be longer than {limits.url} characters once "
                                 "percent-encoded (MAX_URL_LENGTH)")
    try:
        changes["url"] = fill(spec.url, url_room, _quoted, len)
    except UnicodeEncodeError:
        raise Unresolved(f"{AFTER}url would hold a lone surrogate, which is not valid "
                         "Unicode.") from None
    if len(spec.headers) > limits.headers:  # as sent; filling in adds none
        raise Unresolved(f"{AFTER}headers holds {len(spec.headers)} headers; the limit is "
                         f"{limits.headers} (MAX_HEADERS).")
    headers = dict(spec.headers)
    for name, value in spec.headers.items():
        if MARKER not in value:
            continue  # checked as sent
        shown = cut(name)
        room = _Room(limits.header_size - len(name),
                     f"header {shown!r} would be larger than {limits.header_size} bytes, "
                     "name and value (MAX_HEADER_SIZE)")
        filled = headers[name] = fill(value, room, _as_is, _utf8_size)
        if any(c in filled for c in "\r\n\x00"):
            raise Unresolved(f"The value of header {shown!r} would hold a CR, LF or NUL "
                             "character after its references are filled in.")
        size = len(name) + _utf8_size(filled)
        if size > limits.header_size:
            raise Unresolved(f"{AFTER}header {shown!r} is {size} bytes (name and value, "
                             f"UTF-8); the limit is {limits.header_size} (MAX_HEADER_SIZE).")
    changes["headers"] = headers
    body_room = _Room(limits.body_fill, (
        f"its body would be larger than {limits.body} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)"
        if limits.body is not None else f"its references would add more than "
        f"{BODY_FILL_FALLBACK} bytes to its body (BODY_FILL_FALLBACK, as "
        "DATA_UPLOAD_MAX_MEMORY_SIZE is None)"))
    if spec.data is not None:
        try:
            changes["data"] = _fill_data(spec.data,
                                         lambda text: fill(text, body_room, _as_is, _json_size))
            changes["body"] = json.dumps(changes["data"], separators=(",", ":")).encode()
        except RecursionError:
            raise Unresolved("Not run: its body is nested too deeply to fill in its "
                             "references.") from None
    elif spec.has_body:
        try:
            changes["body"] = fill(spec.body.decode("utf-8"), body_room, _as_is,
                                   _utf8_size).encode("utf-8")
        except UnicodeEncodeError:
            raise Unresolved(f"{AFTER}its body would hold a lone surrogate, which is not "
                             "valid Unicode.") from None
    if limits.body is not None and len(changes.get("body", b"")) > limits.body:
        raise Unresolved(f"{AFTER}its body is {len(changes['body'])} bytes; the limit is "
                         f"{limits.body} (DATA_UPLOAD_MAX_MEMORY_SIZE).")
    return dataclasses.replace(spec, **changes)


def _as_is(value: str, room: int) -> str:
    return value


def _quoted(value: str, room: int) -> str:
    """``value`` percent-encoded as one path segment or query value (its UTF-8 bytes), a
    chunk at a time: past ``room`` characters, what is built so far (a chunk over)."""
    if len(value) <= _CHUNK:
        return quote(value, safe=",")
    pieces: list[str] = []
    for start in range(0, len(value), _CHUNK):
        pieces.append(quote(value[start:start + _CHUNK], safe=","))
        room -= len(pieces[-1])
        if room < 0:
            break  # too long: the caller's room.take() stops the filling-in
    return "".join(pieces)


def _chunked(size):
    """``size`` of a text, measured a chunk at a time (the encoding of a chunk is built)."""
    def measure(text: str) -> int:
        if len(text) <= _CHUNK:
            return size(text)
        return sum(size(text[start:start + _CHUNK]) for start in range(0, len(text), _CHUNK))
    return measure


@_chunked
def _utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (lone surrogates counted as 3; they are refused later)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


@_chunked
def _json_size(text: str) -> int:
    """Characters of ``text`` in a JSON string as ``json.dumps`` writes it (ensure_ascii:
    6 for a non-ASCII character, 12 for one outside the BMP), quotes left out."""
    return len(_ENCODER.encode(text)) - 2


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
