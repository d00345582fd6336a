"""Multipart batches: read the files of the batch request, and encode a sub-request's files.

A batch sent as ``multipart/form-data`` carries the batch document in its ``batch`` part and
files in the other parts. An item names the parts it wants (``"files": {"avatar": "file1"}``)
and its sub-request receives a ``multipart/form-data`` body of its own, so ``request.FILES``
works in the view exactly as it does for a direct upload.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from batch_requests.exceptions import BatchError

# Form fields a multipart batch may carry besides its files: the batch document, and the CSRF
# token of a browser form (Django's CSRF check reads it).
FORM_FIELDS = ("batch", "csrfmiddlewaretoken")


@dataclass(frozen=True)
class Upload:
    """A file part of the batch request, read into memory (plain data: it may be pickled)."""

    filename: str
    content_type: str
    data: bytes


def is_multipart(request: HttpRequest) -> bool:
    return request.content_type == "multipart/form-data"


def read_multipart_batch(request: HttpRequest) -> tuple[bytes, dict[str, Upload]]:
    """The batch document and the file parts of a multipart batch request.

    Django's own parser reads the body, with its limits (``DATA_UPLOAD_MAX_MEMORY_SIZE`` for
    the form fields, ``DATA_UPLOAD_MAX_NUMBER_FILES``, files spooled to disk past
    ``FILE_UPLOAD_MAX_MEMORY_SIZE``); the caller turns its exceptions into 4xx answers.
    The ``batch`` part is the batch document whether it is a field or a file part: as a file
    it meets ``DATA_UPLOAD_MAX_MEMORY_SIZE`` too (``RequestDataTooBig``, a 413), on its size
    before it is read into memory.
    """
    post, files = request.POST, request.FILES
    for key in post:
        if key not in FORM_FIELDS:
            raise BatchError.single(f"Form field {key!r} is not a file; a multipart batch "
                                    "holds a 'batch' part and file parts.", field=key)
    batches = post.getlist("batch") + files.getlist("batch")
    if len(batches) != 1:
        shown = "no" if not batches else "more than one"
        raise BatchError.single(f"The multipart batch has {shown} 'batch' part; send the "
                                "batch document in exactly one part named 'batch'.",
                                field="batch")
    document = batches[0]
    if isinstance(document, str):
        raw = document  # a form field: Django's parser bounded it
    else:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and document.size > limit:
            raise RequestDataTooBig(f"The 'batch' part is {document.size} bytes; the limit is "
                                    f"{limit} (DATA_UPLOAD_MAX_MEMORY_SIZE).")
        raw = _read(document)
    parts = {}
    for key in files:
        if key == "batch":
            continue
        uploaded = files.getlist(key)
        if len(uploaded) > 1:
            raise BatchError.single(f"Part name {key!r} is used by {len(uploaded)} files; give "
                                    "each file a part name of its own.", field=key)
        upload = uploaded[0]
        parts[key] = Upload(upload.name or key, upload.content_type or
                            "application/octet-stream", _read(upload))
    return raw.encode("utf-8") if isinstance(raw, str) else raw, parts


def _read(upload: Any) -> bytes:
    upload.seek(0)
    return upload.read()


def form_fields(data: dict[str, Any]) -> list[tuple[str, str]]:
    """An item's body object as form fields: strings as they are, other scalars as JSON.

    A list gives one field per element. Raises ``ValueError`` for values with no form shape.
    """
    fields = []
    for key, value in data.items():
        for element in value if isinstance(value, list) else [value]:
            if isinstance(element, (dict, list)) or element is None:
                raise ValueError(f"Form field {key!r} must be a string, a number, a boolean "
                                 "or a list of them.")
            fields.append((key, element if isinstance(element, str) else json.dumps(element)))
    return fields


def encode_multipart(fields: list[tuple[str, str]],
                     files: tuple[tuple[str, Upload], ...]) -> tuple[str, bytes]:
    """``(content_type, body)`` of a ``multipart/form-data`` body (RFC 7578)."""
    payloads = [value.encode("utf-8") for _name, value in fields]
    payloads += [upload.data for _name, upload in files]
    boundary = secrets.token_hex(16)
    while any(boundary.encode("ascii") in payload for payload in payloads):
        boundary = secrets.token_hex(16)  # pragma: no cover - 1 in 2**128
    delimiter = f"--{boundary}\r\n".encode("ascii")
    chunks = []
    for (name, _value), payload in zip(fields, payloads, strict=False):
        chunks += [delimiter, _disposition(name), b"\r\n\r\n", payload, b"\r\n"]
    for name, upload in files:
        chunks += [delimiter, _disposition(name, upload.filename),
                   f"\r\nContent-Type: {_quote(upload.content_type)}\r\n\r\n".encode(),
                   upload.data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    return f"multipart/form-data; boundary={boundary}", b"".join(chunks)


def _disposition(name: str, filename: str | None = None) -> bytes:
    value = f'Content-Disposition: form-data; name="{_quote(name)}"'
    if filename is not None:
        value += f'; filename="{_quote(filename)}"'
    return value.encode("utf-8")


def _quote(value: str) -> str:
    """Escape as browsers do in multipart headers (WHATWG HTML: ``"``, CR and LF)."""
    return value.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")
