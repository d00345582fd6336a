"""``{% load batch_requests %}``: include the JS batcher without a build step.

``{% batch_requests_script %}`` writes a small inline module that imports ``batch.js`` from
the static files and puts a ready batcher on ``window`` (``window.batchFetch`` by default), so
a page's plain scripts can use it. ``{% batch_requests_js_url %}`` gives the module's URL for
pages that ``import`` it themselves. The options are written as JSON with ``<``, ``>`` and
``&`` escaped, so a value can never close the ``<script>`` element.

When ``batch.js`` cannot be loaded (most often: the app's static files are not served, e.g.
gunicorn without WhiteNoise, so the URL answers 404), the module's ``error`` event logs a
``console.error`` that names the URL and the fix, and ``window`` gets a
``batch-requests:error`` event (``detail``: ``{url, name, message}``), instead of a bare
"window.batchFetch is not a function" later.
"""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.templatetags.static import static
from django.utils.html import escape
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
    url = static(SCRIPT_PATH)
    # A static import keeps the contract above (a dynamic import() with top-level await would
    # not hold back the later module scripts); a failed import fires "error" on the element.
    # In an inline handler, names resolve on the element and document first (document.URL!),
    # hence window.URL and friends.
    on_error = (
        f"const url = new window.URL({_js(url)}, document.baseURI).href;"
        f"const message = 'django-batch-requests: could not load ' + url + ', so window.' + "
        f"{_js(name)} + ' is not set. The static files of the batch_requests app must be "
        'served at STATIC_URL: run "manage.py collectstatic" and serve STATIC_ROOT with '
        "WhiteNoise or the web server (runserver serves them only with DEBUG on).';"
        "window.console.error(message);"
        "window.dispatchEvent(new window.CustomEvent('batch-requests:error', "
        f"{{detail: {{url, name: {_js(name)}, message}}}}));"
    )
    return mark_safe(
        f'<script type="module" onerror="{escape(on_error)}">\n'
        f"import {{createBatcher}} from {_js(url)};\n"
        f"window[{_js(name)}] = createBatcher({_js(options)});\n"
        f'window.dispatchEvent(new CustomEvent("batch-requests:ready", '
        f"{{detail: window[{_js(name)}]}}));\n"
        "</script>"
    )
