"""The batch endpoint in a drf-spectacular OpenAPI schema (optional).

drf-spectacular only describes DRF views, and ``handle_batch_requests`` is a plain Django view,
so this postprocessing hook adds it. Opt in with, after drf-spectacular's default hook::

    SPECTACULAR_SETTINGS = {
        "POSTPROCESSING_HOOKS": [
            "drf_spectacular.hooks.postprocess_schema_enums",
            "batch_requests.schema.postprocess_batch_schema",
        ],
    }

Every URL routed to a view marked ``batch_requests_endpoint = True`` gets a ``post`` operation,
and the components ``BatchRequest``, ``BatchRequestItem``, ``BatchResponse``,
``BatchResponseItem`` and ``BatchErrors`` are set (replacing components of the same name).
Nothing here imports drf-spectacular: the hook only uses the generator it is given.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from django.urls import URLPattern, URLResolver

from batch_requests.conf import batch_settings
from batch_requests.exceptions import MAX_ERRORS_SHOWN
from batch_requests.payload import MAX_TIMEOUT, METHODS, NAME

ERROR_STATUSES = {
    "400": "The batch is malformed; nothing ran.",
    "403": "The batch uses references, carries cookies and failed the CSRF check; or an "
           "atomic batch came from a caller who is not authenticated.",
    "405": "The batch was not sent with POST.",
    "409": "An atomic batch on a site whose DatabaseCache lives in the database the batch's "
           "transaction covers.",
    "413": "The batch (or the 'batch' part of a multipart batch, field or file) is larger "
           "than DATA_UPLOAD_MAX_MEMORY_SIZE.",
}

DESCRIPTION = (
    "Run several requests to this site in one round trip. Each item is run through Django's "
    "own handler with the caller's credentials (cookies, Authorization) and answers exactly as "
    "the same request sent on its own; the answers come back in request order. A batch that "
    "cannot be run is refused with a list of errors before anything runs. With files, send "
    'multipart/form-data: a "batch" part holding the JSON document and the file parts that '
    'items name in "files".'
)


def postprocess_batch_schema(result: dict, generator: Any, request: Any, public: bool,
                             **kwargs: Any) -> dict:
    """drf-spectacular postprocessing hook: describe every batch endpoint of the URLconf."""
    inspector = generator.endpoint_inspector_cls(generator.patterns, generator.urlconf)
    paths = {inspector.get_path_from_regex(regex) for regex in _batch_routes(inspector.patterns)}
    if not paths:
        return result
    schemes = result.get("components", {}).get("securitySchemes", {})
    for path in sorted(paths):
        result.setdefault("paths", {}).setdefault(path, {})["post"] = _operation(path, schemes)
    result.setdefault("components", {}).setdefault("schemas", {}).update(_components())
    return result


def _batch_routes(patterns: list, prefix: str = "") -> Iterator[str]:
    """The route (as drf-spectacular joins them) of each pattern that leads to a batch view."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _batch_routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and getattr(pattern.callback,
                                                         "batch_requests_endpoint", False):
            yield route


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str) -> dict:
    return {"application/json": {"schema": _ref(name)}}


def _operation(path: str, schemes: dict) -> dict:
    operation: dict[str, Any] = {
        "operationId": "_".join(re.findall(r"\w+", path) + ["create"]),
        "summary": "Run a batch of requests",
        "description": DESCRIPTION,
        "tags": ["batch"],
        "requestBody": {"required": True, "content": {
            **_json("BatchRequest"),
            "multipart/form-data": {"schema": {
                "type": "object",
                "required": ["batch"],
                "properties": {"batch": {
                    "type": "string",
                    "description": "The BatchRequest JSON document, as a field or a file part.",
                }},
                "additionalProperties": {"type": "string", "format": "binary"},
            }},
        }},
        "responses": {
            "200": {"description": "One answer per request, in request order.",
                    "content": _json("BatchResponse")},
            **{status: {"description": text, "content": _json("BatchErrors")}
               for status, text in ERROR_STATUSES.items()},
        },
    }
    operation["responses"]["405"]["headers"] = {"Allow": {"schema": {"type": "string"}}}
    parameters = [{"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
                  for name in re.findall(r"{(\w+)}", path)]
    if parameters:  # only for a batch URL with converters, which this app never routes itself
        operation["parameters"] = parameters
    if schemes:  # sub-requests see the caller's credentials, whichever they are, or none
        operation["security"] = [{name: []} for name in schemes] + [{}]
    return operation


def _strings(description: str) -> dict:
    return {"type": "object", "additionalProperties": {"type": "string"},
            "description": description}


def _components() -> dict[str, dict]:
    any_case = "|".join("".join(f"[{c}{c.lower()}]" for c in method) for method in METHODS)
    return {
        "BatchRequest": {
            "type": "object",
            "required": ["batch"],
            "additionalProperties": False,
            "properties": {
                "batch": {"type": "array", "minItems": 1, "maxItems": batch_settings.MAX_LIMIT,
                          "items": _ref("BatchRequestItem")},
                "atomic": {"type": "boolean", "default": False, "description":
                           "Run in one transaction of the default database; stop and roll "
                           "back at the first item answering 400 or more."},
                "on_error": {"type": "string", "enum": ["continue", "stop"],
                             "default": "continue", "description":
                             '"stop": items after the first failure answer 424 and do not run.'},
                "timeout": {"type": "number", "minimum": 0, "exclusiveMinimum": True,
                            "maximum": MAX_TIMEOUT,
                            "description": "Seconds for the whole batch, capped by the "
                            "TIMEOUT setting."},
            },
        },
        "BatchRequestItem": {
            "type": "object",
            "required": ["method", "url"],
            "additionalProperties": False,
            "properties": {
                "method": {"type": "string", "pattern": f"^(?:{any_case})$",
                           "description": f"{', '.join(METHODS)}, in any case."},
                "url": {"type": "string", "minLength": 1,
                        "maxLength": batch_settings.MAX_URL_LENGTH, "description":
                        "A path with an optional query, or an absolute http(s) URL to a host "
                        f"in ALLOWED_HOSTS; at most {batch_settings.MAX_URL_LENGTH} characters "
                        "once percent-encoded (MAX_URL_LENGTH), also after its references are "
                        "filled in."},
                "body": {"oneOf": [{"type": "string"}, {"type": "object"},
                                   {"type": "array", "items": {}}],
                         "description": "Sent as is; an object or array is sent as JSON."},
                "headers": _strings("HTTP headers for this request only (no Cookie)."),
                "name": {"type": "string", "pattern": NAME.pattern,
                         "description": 'Unique in the batch; target of "depends_on" and '
                         "{result=NAME:JSONPATH} references."},
                "depends_on": {"oneOf": [{"type": "string"},
                                         {"type": "array", "items": {"type": "string"}}],
                               "description": "Names of the requests this one waits for."},
                "omit_response_on_success": {"type": "boolean", "default": False},
                "files": _strings("Multipart batches only: the sub-request's file field "
                                  "name -> the name of a part of the batch request."),
            },
        },
        "BatchResponse": {
            "type": "object",
            "required": ["batch"],
            "properties": {
                "batch": {"type": "array", "items": _ref("BatchResponseItem")},
                "atomic": {"type": "object", "required": ["committed", "failed_index"],
                           "description": "Only for atomic batches.",
                           "properties": {
                               "committed": {"type": "boolean"},
                               "failed_index": {"type": "integer", "nullable": True},
                           }},
            },
        },
        "BatchResponseItem": {
            "type": "object",
            "required": ["status_code", "reason_phrase", "headers"],
            "properties": {
                "name": {"type": "string"},
                "status_code": {"type": "integer"},
                "reason_phrase": {"type": "string"},
                "headers": _strings("The response's headers and the duration header."),
                "body": {"description": "Text, or base64 (see body_encoding), or any JSON "
                         "value with DESERIALIZE_RESPONSES. Absent with "
                         "omit_response_on_success on a 2xx."},
                "body_encoding": {"type": "string", "enum": ["base64"]},
            },
        },
        "BatchErrors": {
            "type": "object",
            "required": ["errors"],
            "properties": {"more_errors": {"type": "integer", "minimum": 1, "description":
                                           "How many problems were left out of errors, "
                                           f"which lists at most the first {MAX_ERRORS_SHOWN}."},
                           "errors": {"type": "array", "minItems": 1,
                                      "maxItems": MAX_ERRORS_SHOWN, "items": {
                "type": "object",
                "required": ["message", "index", "field"],
                "properties": {
                    "message": {"type": "string"},
                    "index": {"type": "integer", "nullable": True,
                              "description": "The item, or null for the batch as a whole."},
                    "field": {"type": "string", "nullable": True},
                },
            }}},
        },
    }

