"""Turn a ``SubResult`` into the JSON item of the batch response."""

from __future__ import annotations

import base64
import json
from typing import Any

from batch_requests.conf import batch_settings
from batch_requests.dispatch import SubResult
from batch_requests.payload import ItemSpec


def format_duration(seconds: float) -> str:
    """Seconds as a decimal string with microsecond precision, e.g. ``"0.000412"``."""
    return f"{seconds:.6f}"


def serialize_result(result: SubResult, spec: ItemSpec | None = None) -> dict[str, Any]:
    """The response item; ``spec`` (the request) adds its ``name`` and may omit the body."""
    headers = dict(result.headers)
    if batch_settings.ADD_DURATION_HEADER:
        headers[batch_settings.DURATION_HEADER_NAME] = format_duration(result.duration)
    item: dict[str, Any] = {}
    if spec is not None and spec.name is not None:
        item["name"] = spec.name
    item.update(status_code=result.status_code, reason_phrase=result.reason_phrase,
                headers=headers)
    if not (spec is not None and spec.omit_response_on_success
            and 200 <= result.status_code < 300):
        item.update(_body(result, headers))
    return item


def _body(result: SubResult, headers: dict[str, str]) -> dict[str, Any]:
    media = _media_type(headers)
    try:
        if not _is_text(media):
            raise ValueError(media)
        text = result.body.decode(result.charset)
    except (ValueError, LookupError):
        return {"body": base64.b64encode(result.body).decode("ascii"), "body_encoding": "base64"}
    if batch_settings.DESERIALIZE_RESPONSES and text and _is_json(media):
        try:
            return {"body": json.loads(text)}
        except ValueError:
            pass
    return {"body": text}


def _media_type(headers: dict[str, str]) -> str:
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
