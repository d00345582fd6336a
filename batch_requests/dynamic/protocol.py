"""The Redis wire format shared by web processes and workers.

A stream entry carries every request one caller process had waiting when it flushed (packing
is what makes Redis cheap per item); a reply is one list push per caller process per batch, so
each web process needs a single blocking reader, never a poll. Payloads are JSON, never pickle:
whoever can write to Redis must not be able to run code in a web process or a worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import (
    BatchError,
    DeliveryLimitError,
    EncodingError,
    RemoteBatchError,
    ResultLengthError,
)

GROUP = "workers"
OK = 0
FAILED = 1

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True)
class Keys:
    """Redis key names of one batched function."""

    prefix: str
    name: str

    @property
    def stream(self) -> str:
        return f"{self.prefix}:{self.name}:requests"

    def reply(self, client_id: str) -> str:
        return f"{self.prefix}:{self.name}:reply:{client_id}"


@dataclass(frozen=True)
class Request:
    """One caller's item, as a worker sees it."""

    entry_id: bytes
    reply_key: str
    deadline: float
    request_id: int
    item: Any


def encode_entry(reply_key: str, deadline: float, pairs: list[tuple[int, Any]]) -> dict[str, str]:
    return {"r": reply_key, "d": repr(deadline), "p": _dumps(pairs)}


def decode_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> list[Request]:
    """The requests packed in one stream entry; ``[]`` for an entry this format cannot read."""
    try:
        reply_key = fields[b"r"].decode()
        deadline = float(fields[b"d"])
        pairs = json.loads(fields[b"p"])
    except (KeyError, ValueError, UnicodeDecodeError):
        return []
    return [Request(entry_id, reply_key, deadline, int(rid), item) for rid, item in pairs]


def error_body(kind: str, exc: BaseException | None = None, message: str = "") -> list[str]:
    if exc is not None:
        return [kind, type(exc).__name__, str(exc)]
    return [kind, "", message]


def encode_reply(answers: list[list[Any]]) -> str:
    """``[[request_id, OK, value] | [request_id, FAILED, error_body], ...]`` as JSON.

    A value JSON cannot hold fails its own caller only.
    """
    try:
        return _dumps(answers)
    except (TypeError, ValueError):
        safe = []
        for answer in answers:
            try:
                _dumps(answer[2])
            except (TypeError, ValueError) as exc:
                answer = [answer[0], FAILED, error_body("encode", exc)]
            safe.append(answer)
        return _dumps(safe)


def decode_error(body: list[str]) -> BatchError:
    """The exception a caller raises for a worker's error body."""
    kind, type_name, message = (list(body) + ["", "", ""])[:3]
    if kind == "length":
        return ResultLengthError(*[int(n) for n in message.split("/")])
    if kind == "retries":
        return DeliveryLimitError(message)
    if kind == "encode":
        return EncodingError(f"result could not be encoded as JSON: {type_name}: {message}")
    return RemoteBatchError(type_name, message)
