"""Turn a validated item into a ``SubRequest``: a WSGI environ built from the batch request.

A sub-request must look to Django exactly as the same request sent on its own by the same
client: it keeps the batch request's connection (host, scheme, client address, proxy
headers) and credentials (cookies, Authorization, Origin/Referer, CSRF header), and takes its
method, path, query, body and other headers from the item. ``SubRequest`` is plain data, so it
can cross a process boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import unquote_to_bytes, urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.http.request import split_domain_port, validate_host
from django.urls import Resolver404, URLResolver, get_resolver, get_script_prefix
from django.utils.encoding import iri_to_uri

from batch_requests.conf import batch_settings
from batch_requests.exceptions import BatchError
from batch_requests.payload import ItemSpec
from batch_requests.uploads import encode_multipart, form_fields

# META keys that describe the connection or carry the client's credentials. They are always
# taken from the batch request; HEADERS_TO_INCLUDE adds more.
CONNECTION_KEYS = (
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "REMOTE_HOST",
    "REMOTE_USER",
    "HTTP_HOST",
    "HTTP_AUTHORIZATION",
    "HTTP_ORIGIN",
    "HTTP_REFERER",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_REAL_IP",
    "HTTP_FORWARDED",
)
# Item headers that are ignored: where the request comes from is the batch request's business
# (a proxy's X-Forwarded-* included). An item may still bring its own Authorization.
PARENT_WINS = frozenset(CONNECTION_KEYS) - {"HTTP_AUTHORIZATION"}


@dataclass
class SubRequest:
    index: int
    method: str
    environ: dict[str, str]
    body: bytes = b""
    dont_enforce_csrf_checks: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.environ.get("PATH_INFO", "")


def build_subrequests(parent: HttpRequest, specs: list[ItemSpec],
                      base: dict[str, str] | None = None) -> list[SubRequest]:
    """One ``SubRequest`` per item; ``base`` is ``base_environ(parent)`` if already made."""
    base = base_environ(parent) if base is None else base
    csrf_off = bool(getattr(parent, "_dont_enforce_csrf_checks", False))
    return [_build(parent, base, spec, csrf_off) for spec in specs]


def base_environ(parent: HttpRequest) -> dict[str, str]:
    """What every sub-request of ``parent`` takes from it: connection and credentials."""
    meta = parent.META
    keys = set(CONNECTION_KEYS) | set(batch_settings.HEADERS_TO_INCLUDE)
    keys.add(settings.CSRF_HEADER_NAME)
    base = {k: meta[k] for k in keys if isinstance(meta.get(k), str)}
    base["SCRIPT_NAME"] = meta.get("SCRIPT_NAME", "") if isinstance(meta.get("SCRIPT_NAME"),
                                                                      str) else ""
    base["wsgi.url_scheme"] = "https" if batch_settings.USE_HTTPS else parent.scheme
    base.setdefault("SERVER_NAME", "localhost")
    base.setdefault("SERVER_PORT", "443" if base["wsgi.url_scheme"] == "https" else "80")
    return base


def _build(parent: HttpRequest, base: dict[str, str], spec: ItemSpec,
           csrf_off: bool) -> SubRequest:
    environ = dict(base)
    path, query = _locate(parent, spec, environ)
    environ["REQUEST_METHOD"] = spec.method
    environ["PATH_INFO"] = unquote_to_bytes(path).decode("latin-1")
    environ["QUERY_STRING"] = query
    for name, value in spec.headers.items():
        key = "HTTP_" + name.upper().replace("-", "_")
        if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            continue
        if key in PARENT_WINS:
            continue
        environ[key] = value
    body = spec.body
    content_type = _header(spec.headers, "content-type")
    if spec.files:
        content_type, body = encode_multipart(form_fields(spec.data or {}), spec.files)
    elif content_type is None and spec.has_body:
        content_type = batch_settings.DEFAULT_CONTENT_TYPE
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    environ["CONTENT_LENGTH"] = str(len(body))
    return SubRequest(spec.index, spec.method, environ, body, csrf_off)


def _locate(parent: HttpRequest, spec: ItemSpec, environ: dict[str, str]) -> tuple[str, str]:
    """Return (path_info, query) and point the environ at an absolute URL's host if it has one."""
    url = iri_to_uri(spec.url)
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BatchError.single(f"url {spec.url!r} must use http or https.",
                                    index=spec.index, field="url")
        domain, _port = split_domain_port(parts.netloc)
        if not domain or not validate_host(domain, _allowed_hosts()):
            raise BatchError.single(
                f"url {spec.url!r} points at a host that is not in ALLOWED_HOSTS.",
                index=spec.index, field="url",
            )
        environ["HTTP_HOST"] = parts.netloc
        environ["wsgi.url_scheme"] = parts.scheme
    path = parts.path or "/"
    script_name = environ.get("SCRIPT_NAME", "").rstrip("/")
    if script_name and (path == script_name or path.startswith(script_name + "/")):
        path = path[len(script_name):] or "/"
    _refuse_nesting(parent, spec, path)
    return path, parts.query


@lru_cache(maxsize=1024)
def _is_batch_endpoint(resolver: URLResolver, path: str) -> bool:
    """Whether ``path`` resolves to a batch view; cached, since the handler resolves again."""
    try:
        match = resolver.resolve(path)
    except Resolver404:
        return False
    return bool(getattr(match.func, "batch_requests_endpoint", False))


def _refuse_nesting(parent: HttpRequest, spec: ItemSpec, path: str) -> None:
    # get_resolver() is itself cached per urlconf and replaced when URL caches are cleared.
    if _is_batch_endpoint(get_resolver(getattr(parent, "urlconf", None)), path):
        prefix = get_script_prefix().rstrip("/")
        raise BatchError.single(
            f"url {prefix + path!r} is a batch endpoint; batches cannot be nested.",
            index=spec.index, field="url",
        )


def _allowed_hosts() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None
