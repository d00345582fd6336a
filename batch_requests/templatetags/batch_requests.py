"""``{% load batch_requests %}``: include the JS batcher without a build step.

``{% batch_requests_script %}`` writes a small inline module that imports ``batch.js`` from
the static files and puts a ready batcher on ``window`` (``window.batchFetch`` by default), so
a page's plain scripts can use it. ``{% batch_requests_js_url %}`` gives the module's URL for
pages that ``import`` it themselves. The options are written as JSON with ``<``, ``>`` and
``&`` escaped, so a value can never close the ``<script>`` element.
"""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.templatetags.static import static
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

SCRIPT_PATH = "batch_requests/batch.js"
_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


def _js(value: Any) -> str:
    return json.dumps(value).translate(_ESCAPES)


@register.simple_tag
def batch_requests_js_url() -> str:
    """The static URL of ``batch.js``, e.g. for ``import {createBatcher} from "..."``."""
    return static(SCRIPT_PATH)


@register.simple_tag
def batch_requests_script(endpoint: str = "/api/v1/batch/", name: str = "batchFetch",
                          max_batch_size: int = 20, window_ms: int = 0) -> SafeString:
    """An inline module that sets ``window[name] = createBatcher({...})``.

    Module scripts run in document order after parsing, so later ``<script type="module">``
    elements can use ``window[name]`` directly; the ``batch-requests:ready`` event on
    ``window`` is for classic scripts that run earlier.
    """
    options = {"endpoint": endpoint, "maxBatchSize": int(max_batch_size),
               "windowMs": int(window_ms)}
    return mark_safe(
        '<script type="module">\n'
        f"import {{createBatcher}} from {_js(static(SCRIPT_PATH))};\n"
        f"window[{_js(name)}] = createBatcher({_js(options)});\n"
        f'window.dispatchEvent(new CustomEvent("batch-requests:ready", '
        f"{{detail: window[{_js(name)}]}}));\n"
        "</script>"
    )
