"""The Redis wire format shared by web processes and workers.

A stream entry carries every request one caller process had waiting when it flushed (packing
is what makes Redis cheap per item); a reply is one list push per caller process per batch, so
each web process needs a single blocking reader, never a poll. Payloads are JSON, never pickle:
whoever can write to Redis must not be able to run code in a web process or a worker.

Keys of a function ``name`` under ``prefix``: ``{prefix}:{name}:requests`` (the stream, consumer
group ``workers``), ``{prefix}:{name}:reply:{client}`` (one list per web process),
``{prefix}:{name}:dead`` (the dead-letter stream: entries no worker could finish) and
``{prefix}:{name}:done:{entry id}`` (short-lived: requests already answered of an entry that a
worker split across two batches).
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
#: The dead-letter stream is capped to about this many entries (``XADD ... MAXLEN ~``).
DEAD_MAXLEN = 10_000

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True)
class Keys:
    """Redis key names of one batched function."""

    prefix: str
    name: str

    @property
    def stream(self) -> str:
        return f"{self.prefix}:{self.name}:requests"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:{self.name}:dead"

    def done(self, entry_id: bytes | str) -> str:
        """The requests already answered of an entry split across two batches (a set)."""
        if isinstance(entry_id, bytes):
            entry_id = entry_id.decode()
        return f"{self.prefix}:{self.name}:done:{entry_id}"

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
    """Reply key, deadline (epoch seconds), ``[[request id, item], ...]`` and how many items."""
    return {"r": reply_key, "d": repr(deadline), "p": _dumps(pairs), "n": str(len(pairs))}


def decode_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> list[Request]:
    """The requests packed in one stream entry; ``[]`` for an entry this format cannot read."""
    try:
        reply_key = fields[b"r"].decode()
        deadline = float(fields[b"d"])
        pairs = json.loads(fields[b"p"])
        return [Request(entry_id, reply_key, deadline, int(rid), item) for rid, item in pairs]
    except (KeyError, ValueError, TypeError, UnicodeDecodeError):
        return []


def entry_time(entry_id: bytes | str) -> float:
    """When an entry was added, in seconds since the epoch (the Redis server's clock)."""
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    return int(entry_id.partition("-")[0]) / 1000


def dead_letter(
    entry_id: bytes, fields: dict[bytes, bytes], deliveries: int, reason: str
) -> dict[bytes, bytes]:
    """The dead-letter stream's entry for ``entry_id``: its own fields and why it is there.

    ``r``, ``d``, ``p`` and ``n`` are the original fields (reply key, deadline, packed requests,
    their number), so ``XADD`` of those back to the requests stream queues it again.
    """
    dead = {key: value for key, value in fields.items() if key in (b"r", b"d", b"p", b"n")}
    dead[b"id"] = entry_id
    dead[b"deliveries"] = str(deliveries).encode()
    dead[b"reason"] = reason.encode()
    return dead


def error_body(kind: str, exc: BaseException | None = None, message: str = "") -> list[str]:
    if exc is not None:
        return [kind, type(exc).__name__, str(exc)]
    return [kind, "", message]


def length_body(expected: int, got: int | None) -> list[str]:
    """The error body of :class:`ResultLengthError` (``got`` is ``None`` for a non-list)."""
    return error_body("length", message=f"{expected}/{'' if got is None else got}")


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
        expected, _, got = message.partition("/")
        try:
            return ResultLengthError(int(expected), int(got) if got.isdigit() else None)
        except ValueError:
            return RemoteBatchError("ResultLengthError", message)
    if kind == "retries":
        return DeliveryLimitError(message)
    if kind == "encode":
        return EncodingError(f"result could not be encoded as JSON: {type_name}: {message}")
    return RemoteBatchError(type_name, message)
