"""Turn ``SubResult``s into the JSON items of the batch response.

Each item's encoded size is known before the response is written (its short strings by
escaping them, a long text body by counting the bytes JSON escapes, base64 by arithmetic), so
``serialize_batch`` keeps the whole response within ``MAX_BATCH_RESPONSE_SIZE`` and a text
body that escaping would blow up (``\\u0001`` is 6 bytes for 1) goes as base64 instead.
"""

from __future__ import annotations

import base64
import codecs
import functools
import json
from collections.abc import Sequence
from itertools import chain
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any, NamedTuple

from batch_requests.conf import batch_settings
from batch_requests.dispatch import SubResult
from batch_requests.payload import ItemSpec

#: How the view writes the batch response (``JsonResponse(json_dumps_params=..., charset=...)``):
#: UTF-8, so non-ASCII text costs its UTF-8 bytes rather than 6 or 12 bytes of ``\uXXXX``.
#: The sizes below are the sizes of exactly this encoding.
JSON_DUMPS_PARAMS: dict[str, Any] = {"ensure_ascii": False}
JSON_CHARSET = "utf-8"
_encode = json.JSONEncoder(**JSON_DUMPS_PARAMS).encode
# The same output, without JSONEncoder.encode's set-up on each call (for bodies that
# DESERIALIZE_RESPONSES turns into JSON values: json.loads' output needs no cycle check).
_c_encoder = c_make_encoder and c_make_encoder(
    None, None, encode_basestring, None, ": ", ", ", False, False, True)


def _json_text(value: Any) -> str:
    return "".join(_c_encoder(value, 0)) if _c_encoder else _encode(value)


# Bytes of the response around and between the items, with json.dumps' default separators.
_WRAPPER = len('{"batch": []}')
_SEPARATOR = len(", ")
# An item without its body: these bytes, the status's digits, the escaped strings (reason,
# header names and values; as one string, in quotes), "{}" or 8 bytes a header ("": "", ),
# and for a named item, '"name": "", '.
_ENVELOPE = len('{"status_code": , "reason_phrase": , "headers": }')
_NAME_FIELD = len('"name": "", ')
_BODY_FIELD = len(', "body": ')  # after the encoded item without its body, before the "}"
_BASE64_FIELD = len(', "body_encoding": "base64"')
# Bytes that JSON escapes in a string; they take 2 bytes (\n, \"), or 6 for the long ones (\u0001).
_ESCAPED = bytes([*range(0x20), ord('"'), ord("\\")])
_ESCAPED_LONG = bytes(c for c in range(0x20) if c not in b"\b\t\n\f\r")
_SHORT_TEXT = 16 * 1024  # characters of a text measured by escaping it (6 times that at most)
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


def serialize_batch(results: Sequence[SubResult], items: Sequence[ItemSpec | None], *,
                    atomic: bool = False, whole_seconds: bool = False) -> list[dict[str, Any]]:
    """The items of the batch response, which stays within ``MAX_BATCH_RESPONSE_SIZE`` bytes.

    Items go in whole, in order, while the response fits, keeping room for each later item
    (``SMALL_ITEM`` bytes, or its error item if larger) and for the ``atomic`` member. The
    first item that does not fit, and every later item larger than ``SMALL_ITEM``, becomes a
    ``502`` item whose body says the request ran, with its status, and that its response was
    left out; so a client does not send a write again. Only the item being measured is ever
    built beyond what the response holds.

    With ``whole_seconds`` (a batch in the 2015 format), each item's duration header is a
    number of whole seconds, as the 2015 app sent it (measured as the string, never shorter).
    """
    options = _options(whole_seconds)
    limit = batch_settings.MAX_BATCH_RESPONSE_SIZE
    room = max(SMALL_ITEM, _left_out_bound(options, limit))  # kept for each later item
    budget = limit - _WRAPPER - _SEPARATOR * max(len(results) - 1, 0)
    if atomic:
        budget -= len(', "atomic": ') + max(
            len(_encode({"committed": True, "failed_index": None})),
            len(_encode({"committed": False, "failed_index": len(results)})))
    later = len(results)
    full = False
    serialized: list[dict[str, Any]] = []
    for result, spec in zip(results, items, strict=True):
        later -= 1
        item: dict[str, Any] | None = None
        # Once full, only an item that may be small is built (a large body is not decoded).
        if not full or len(result.body) <= 16 * SMALL_ITEM or _omits_body(result, spec):
            item, size = _item(result, spec, options)
            if size > SMALL_ITEM and (full or size + later * room > budget):
                full, item = True, None
        if item is None:
            item, size = _item(_left_out(result, limit), spec, options)
        budget -= size
        serialized.append(item)
    return serialized


def serialize_result(result: SubResult, spec: ItemSpec | None = None) -> dict[str, Any]:
    """The response item; ``spec`` (the request) adds its ``name`` and may omit the body."""
    return _item(result, spec, _options())[0]


def _item(result: SubResult, spec: ItemSpec | None,
          options: _Options) -> tuple[dict[str, Any], int]:
    """The response item and the bytes it takes in the (UTF-8) batch response."""
    headers = dict(result.headers)
    if options.duration_header is not None:
        # Measured as this string, which no number of whole seconds is longer than.
        headers[options.duration_header] = format_duration(result.duration)
    reason = result.reason_phrase
    if not reason.isascii():  # a lone surrogate cannot be written as UTF-8
        reason = reason.encode("utf-8", "replace").decode("utf-8")
    name = spec.name if spec is not None else None
    item: dict[str, Any] = {} if name is None else {"name": name}
    item.update(status_code=result.status_code, reason_phrase=reason, headers=headers)
    # What json.dumps(item) writes, without building it: the fixed bytes, the status, every
    # string escaped (measured at once), their quotes and separators.
    strings = encode_basestring("".join([name or "", reason, *chain.from_iterable(
        headers.items())]))
    size = (_ENVELOPE + len(str(result.status_code)) + _utf8_size(strings)
            + (8 * len(headers) if headers else 2) + (0 if name is None else _NAME_FIELD))
    if options.whole_seconds and options.duration_header is not None:
        headers[options.duration_header] = int(result.duration)  # type: ignore[assignment]
    if not _omits_body(result, spec):
        body, body_size, is_base64 = _body(result, headers, options)
        item["body"] = body
        size += _BODY_FIELD + body_size
        if is_base64:
            item["body_encoding"] = "base64"
            size += _BASE64_FIELD
    return item, size


def _omits_body(result: SubResult, spec: ItemSpec | None) -> bool:
    return (spec is not None and spec.omit_response_on_success
            and 200 <= result.status_code < 300)


def _body(result: SubResult, headers: dict[str, str], options: _Options) -> tuple[Any, int, bool]:
    """The body as it goes in the item, its encoded size, and whether it is base64."""
    media = _media_type(headers)
    try:
        if not _is_text(media):
            raise ValueError(media)
        text = result.body.decode(result.charset)
    except (ValueError, LookupError):
        return _base64(result.body)
    if options.deserialize and text and _is_json(media):
        try:
            value = json.loads(text)
            return value, _utf8_size(_json_text(value)), False
        except (ValueError, RecursionError):  # not JSON, too deep, or a lone surrogate
            pass  # ("\ud800", which UTF-8 cannot hold): sent as the text
    size = _text_size(text, result)
    # Text unless base64 is smaller: a body dense in control bytes, quotes or backslashes.
    if size is None or size > _base64_size(len(result.body)) + _BASE64_FIELD:
        return _base64(result.body)
    return text, size, False


def _base64(body: bytes) -> tuple[str, int, bool]:
    return base64.b64encode(body).decode("ascii"), _base64_size(len(body)), True


def _utf8_size(encoded: str) -> int:
    """Bytes of JSON text in UTF-8 (``UnicodeEncodeError`` for a lone surrogate)."""
    return len(encoded) if encoded.isascii() else len(encoded.encode("utf-8"))


def _base64_size(length: int) -> int:
    return 4 * ((length + 2) // 3) + 2  # with its quotes


def _text_size(text: str, result: SubResult) -> int | None:
    """Bytes of ``text`` as a JSON string in UTF-8; None if it cannot be UTF-8 (surrogates).

    A short text is escaped (in C) and measured. A longer one is counted on its UTF-8 bytes
    (the body itself when that is its charset), without building the escaped string: every
    byte JSON escapes is ASCII, and a UTF-8 multi-byte sequence holds no ASCII byte.
    """
    if len(text) <= _SHORT_TEXT:
        try:
            return _utf8_size(encode_basestring(text))
        except UnicodeEncodeError:
            return None
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
    return _item(_left_out(template, limit), longest, options)[1]


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
