"""Turn ``SubResult``s into the encoded items of the batch response, and the response body.

Each item is encoded on its own, as the bytes it takes in the response (compact UTF-8 JSON:
orjson when installed, else the standard library, which writes the same bytes), so
``serialize_batch`` knows every item's exact size and keeps the whole response within
``MAX_BATCH_RESPONSE_SIZE``. A text body that escaping would blow up (``\\u0001`` is 6 bytes
for 1) goes as base64 instead; a long one is measured before it is encoded.
"""

from __future__ import annotations

import base64
import codecs
import functools
import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from batch_requests.conf import batch_settings
from batch_requests.dispatch import SubResult
from batch_requests.payload import ItemSpec

try:  # a C encoder ~8x faster than the standard library's for the batch response
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency on CPython
    orjson = None

#: The media type of the batch response (UTF-8 by definition, RFC 8259: no charset).
CONTENT_TYPE = "application/json"
# The standard library's spelling of orjson's output: compact, UTF-8 rather than \uXXXX.
_stdlib_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"),
                                  check_circular=False).encode


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON bytes (``UnicodeEncodeError`` for a lone surrogate).

    orjson when installed; the standard library otherwise, and for what orjson refuses (an
    integer beyond 64 bits in a deserialized body, a lone surrogate, nesting past 255).
    """
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:
            pass
    return _stdlib_encode(value).encode("utf-8")


# Bytes of the response around and between the items.
_WRAPPER = len('{"batch":[]}')  # the 2015 format's bare list ("[]") is shorter
_SEPARATOR = len(",")
_ATOMIC_FIELD = len(',"atomic":')
_BODY_FIELD = b',"body":'
_BASE64_END = b',"body_encoding":"base64"}'
_BASE64_FIELD = len(_BASE64_END) - 1
# Bytes that JSON escapes in a string; they take 2 bytes (\n, \"), or 6 for the long ones (\u0001).
_ESCAPED = bytes([*range(0x20), ord('"'), ord("\\")])
_ESCAPED_LONG = bytes(c for c in range(0x20) if c not in b"\b\t\n\f\r")
_SHORT_TEXT = 16 * 1024  # characters of a text encoded to be measured (6 times that at most)
_CHUNK = 1 << 20  # a longer one is counted in slices of this many bytes (bounded copies)
#: An item of at most this many bytes is never left out: room for it is kept from the start
#: (it is no larger than the error item that would replace it). The batch's own answers for
#: requests that did not run (424, 504) are all this small, so a left-out item did run.
SMALL_ITEM = 2048
#: Status of an item whose response is left out of the batch response (see ``serialize_batch``).
LEFT_OUT_STATUS = 502


class _Options(NamedTuple):
    """The settings that shape items, read once per batch."""

    duration_header: str | None
    deserialize: bool
    #: The duration header as a number of whole seconds, as the 2015 app sent it.
    whole_seconds: bool = False


def _options(whole_seconds: bool = False) -> _Options:
    return _Options(batch_settings.DURATION_HEADER_NAME if batch_settings.ADD_DURATION_HEADER
                    else None, bool(batch_settings.DESERIALIZE_RESPONSES), whole_seconds)


def format_duration(seconds: float) -> str:
    """Seconds as a decimal string with microsecond precision, e.g. ``"0.000412"``."""
    return f"{seconds:.6f}"


def render(items: Sequence[bytes], atomic: dict[str, Any] | None = None,
           legacy: bool = False) -> bytes:
    """The batch response: ``{"batch":[...]}`` (with ``atomic``), or the 2015 bare list."""
    joined = b",".join(items)
    if legacy:
        return b"[" + joined + b"]"
    tail = b"}" if atomic is None else b',"atomic":' + dumps(atomic) + b"}"
    return b'{"batch":[' + joined + b"]" + tail


def serialize_batch(results: Sequence[SubResult], items: Sequence[ItemSpec | None], *,
                    atomic: bool = False, whole_seconds: bool = False) -> list[bytes]:
    """The encoded items of the batch response, which stays within ``MAX_BATCH_RESPONSE_SIZE``.

    Items go in whole, in order, while the response fits, keeping room for each later item
    (``SMALL_ITEM`` bytes, or its error item if larger) and for the ``atomic`` member. The
    first item that does not fit, and every later item larger than ``SMALL_ITEM``, becomes a
    ``502`` item whose body says the request ran, with its status, and that its response was
    left out; so a client does not send a write again. Only the item being measured is ever
    built beyond what the response holds.

    With ``whole_seconds`` (a batch in the 2015 format), each item's duration header is a
    number of whole seconds, as the 2015 app sent it.
    """
    options = _options(whole_seconds)
    limit = batch_settings.MAX_BATCH_RESPONSE_SIZE
    room = max(SMALL_ITEM, _left_out_bound(options, limit))  # kept for each later item
    budget = limit - _WRAPPER - _SEPARATOR * max(len(results) - 1, 0)
    if atomic:
        budget -= _ATOMIC_FIELD + max(
            len(dumps({"committed": True, "failed_index": None})),
            len(dumps({"committed": False, "failed_index": len(results)})))
    later = len(results)
    full = False
    serialized: list[bytes] = []
    for result, spec in zip(results, items, strict=True):
        later -= 1
        item: bytes | None = None
        # Once full, only an item that may be small is built (a large body is not decoded).
        if not full or len(result.body) <= 16 * SMALL_ITEM or _omits_body(result, spec):
            item = _item(result, spec, options)
            if len(item) > SMALL_ITEM and (full or len(item) + later * room > budget):
                full, item = True, None
        if item is None:
            item = _item(_left_out(result, limit), spec, options)
        budget -= len(item)
        serialized.append(item)
    return serialized


def _item(result: SubResult, spec: ItemSpec | None, options: _Options) -> bytes:
    """The response item, as the bytes it takes in the batch response."""
    headers = dict(result.headers)
    if options.duration_header is not None:
        headers[options.duration_header] = (int(result.duration) if options.whole_seconds
                                            else format_duration(result.duration))
    reason = result.reason_phrase
    if not reason.isascii():  # a lone surrogate cannot be written as UTF-8
        reason = reason.encode("utf-8", "replace").decode("utf-8")
    name = spec.name if spec is not None else None
    if name is None:
        head = {"status_code": result.status_code, "reason_phrase": reason, "headers": headers}
    else:
        head = {"name": name, "status_code": result.status_code, "reason_phrase": reason,
                "headers": headers}
    encoded = dumps(head)
    if spec is not None and spec.omit_response_on_success and _omits_body(result, spec):
        return encoded
    body, is_base64 = _body(result, headers, options)
    return b"".join((encoded[:-1], _BODY_FIELD, body, _BASE64_END if is_base64 else b"}"))


def _omits_body(result: SubResult, spec: ItemSpec | None) -> bool:
    return (spec is not None and spec.omit_response_on_success
            and 200 <= result.status_code < 300)


def _body(result: SubResult, headers: dict[str, str], options: _Options) -> tuple[bytes, bool]:
    """The body as encoded in the item, and whether it is base64."""
    media = _media_type(headers)
    try:
        if not _is_text(media):
            raise ValueError(media)
        text = result.body.decode(result.charset)
    except (ValueError, LookupError):
        return _base64(result.body)
    if options.deserialize and text and _is_json(media):
        try:
            return dumps(json.loads(text, parse_constant=_not_json)), False
        except (ValueError, RecursionError):  # not JSON (NaN included), too deep, or a lone
            pass  # surrogate ("\ud800", which UTF-8 cannot hold): sent as the text
    # Text unless base64 is smaller: a body dense in control bytes, quotes or backslashes.
    base64_size = _base64_size(len(result.body)) + _BASE64_FIELD
    if len(text) <= _SHORT_TEXT:
        try:
            encoded = dumps(text)
        except UnicodeEncodeError:  # a lone surrogate, which UTF-8 cannot hold
            return _base64(result.body)
        return (encoded, False) if len(encoded) <= base64_size else _base64(result.body)
    size = _text_size(text, result)  # a long text is measured before it is encoded
    if size is None or size > base64_size:
        return _base64(result.body)
    return dumps(text), False


def _not_json(constant: str) -> Any:
    """``NaN`` and ``Infinity`` are not JSON: such a body goes as text, not as a value."""
    raise ValueError(constant)


def _base64(body: bytes) -> tuple[bytes, bool]:
    return b'"' + base64.b64encode(body) + b'"', True


def _base64_size(length: int) -> int:
    return 4 * ((length + 2) // 3) + 2  # with its quotes


def _text_size(text: str, result: SubResult) -> int | None:
    """Bytes of a long ``text`` as a JSON string in UTF-8; None if it cannot be UTF-8.

    Counted on its UTF-8 bytes (the body itself when that is its charset), without building
    the escaped string: every byte JSON escapes is ASCII, and a UTF-8 multi-byte sequence
    holds no ASCII byte.
    """
    if _is_utf8(result.charset):
        raw = result.body
    else:
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:
            return None
    size = len(raw) + 2
    for start in range(0, len(raw), _CHUNK):
        chunk = raw if len(raw) <= _CHUNK else raw[start:start + _CHUNK]
        escaped = len(chunk) - len(chunk.translate(None, _ESCAPED))
        if escaped:
            size += escaped + 4 * (len(chunk) - len(chunk.translate(None, _ESCAPED_LONG)))
    return size


@functools.lru_cache(maxsize=64)
def _is_utf8(charset: str) -> bool:
    """Whether text decoded with ``charset`` has the body's own bytes as its UTF-8."""
    try:
        return codecs.lookup(charset).name in ("utf-8", "ascii")
    except LookupError:
        return False


def _left_out(result: SubResult, limit: int) -> SubResult:
    """What replaces a result whose response does not fit in the batch response."""
    status = result.status_code
    body = json.dumps({
        "error": f"The request ran and answered {status}, but its response is left out: the "
                 f"batch response reached MAX_BATCH_RESPONSE_SIZE ({limit} bytes). Send it "
                 "again only if it is safe to repeat.",
        "ran": True, "original_status_code": status}).encode()
    return SubResult(result.index, LEFT_OUT_STATUS, "Bad Gateway",
                     [("Content-Type", "application/json")], body, duration=result.duration)


@functools.lru_cache(maxsize=16)
def _left_out_bound(options: _Options, limit: int) -> int:
    """The most bytes an error item of ``_left_out`` takes: longest name, 3-digit status,
    a duration under 10**6 s."""
    template = SubResult(0, 599, "", [], b"", duration=999999.999999)
    longest = ItemSpec(index=0, method="GET", url="/", name="n" * 100)
    return len(_item(_left_out(template, limit), longest, options))


def _media_type(headers: dict[str, str]) -> str:
    content_type = headers.get("Content-Type")  # as Django spells it; else any spelling
    if content_type is None:
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    return content_type.split(";", 1)[0].strip().lower()


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


TEXT_TYPES = frozenset({
    "", "application/javascript", "application/xml", "application/x-www-form-urlencoded",
    "application/problem+json", "image/svg+xml",
})


def _is_text(media: str) -> bool:
    """Whether a body is shown as text; anything else is sent base64-encoded."""
    return (media.startswith("text/") or media in TEXT_TYPES or _is_json(media)
            or media.endswith("+xml"))
