"""Turn a validated item into a ``SubRequest``: a WSGI environ built from the batch request.

A sub-request must look to Django exactly as the same request sent on its own by the same
client: it keeps the batch request's connection (host, scheme, client address, proxy
headers) and credentials (cookies, Authorization, Origin/Referer, CSRF header), and takes its
method, path, query, body and other headers from the item. ``SubRequest`` is plain data, so it
can cross a process boundary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import SplitResult, clear_cache, unquote_to_bytes, urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.http.request import split_domain_port, validate_host
from django.urls import Resolver404, URLResolver, get_resolver, get_script_prefix
from django.utils.encoding import iri_to_uri, repercent_broken_unicode

from batch_requests.conf import batch_settings
from batch_requests.exceptions import BatchError
from batch_requests.limits import cut, excerpt
from batch_requests.payload import ItemSpec
from batch_requests.uploads import Upload, form_fields

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


# The characters Django's iri_to_uri() leaves as they are: urllib's always-safe ones and its
# safe="/#%[]=:;$&()+,!?*@'~". A URL of only these needs no quoting.
_URI_SAFE = re.compile(r"[A-Za-z0-9_.\-~/#%\[\]=:;$&()+,!?*@']*").fullmatch

# Urls and paths longer than this are never kept in a process-wide cache (urlsplit's, the
# nesting check's): a cache entry outlives the batch that made it.
CACHED_LENGTH = 512
# urlsplit without its LRU cache (Python 3.11+); None on 3.10, whose cache is a dict of its
# last 20 urls (see _split).
_urlsplit_uncached = getattr(urlsplit, "__wrapped__", None)

#: The environ key that marks a sub-request. A client cannot send it: servers put headers in
#: the environ only as ``HTTP_*`` keys. The batch view refuses any request that carries it.
SUBREQUEST_KEY = "batch_requests.subrequest"


@dataclass
class SubRequest:
    index: int
    method: str
    environ: dict[str, str]
    body: bytes = b""
    dont_enforce_csrf_checks: bool = False
    extra: dict = field(default_factory=dict)
    #: The batch's deadline (``time.monotonic()``, system-wide, so it holds in worker
    #: processes too): a streaming body is not read past it.
    deadline: float | None = None
    #: Which budget set the deadline, for the 504 messages (e.g. 'its "timeout" of 0.5 s').
    budget: str = ""
    #: Set for every item of an atomic batch (see ``policies.atomic_run``): the request is
    #: marked ``batch_requests_atomic`` so a durable-transaction conflict can be told apart.
    atomic: bool = False
    #: ``MAX_RESPONSE_SIZE``, read once per batch rather than once per item.
    max_response_size: int | None = None
    #: (form fields, files) of a ``multipart/form-data`` body, encoded only when the item runs
    #: (``dispatch.make_request``): a file that many items upload is not copied for each of
    #: them before the first one runs.
    multipart: tuple[list[tuple[str, str]], tuple[tuple[str, Upload], ...]] | None = None

    @property
    def path(self) -> str:
        return self.environ.get("PATH_INFO", "")


def build_subrequests(parent: HttpRequest, specs: list[ItemSpec],
                      base: dict[str, str] | None = None,
                      max_url_length: int | None = None) -> list[SubRequest]:
    """One ``SubRequest`` per item; ``base`` is ``base_environ(parent)`` if already made,
    ``max_url_length`` the MAX_URL_LENGTH setting if already read.

    Raises ``BatchError`` (400, naming the item and its field) for an item that cannot run,
    a url longer than MAX_URL_LENGTH once percent-encoded among them.
    """
    base = base_environ(parent) if base is None else base
    csrf_off = bool(getattr(parent, "_dont_enforce_csrf_checks", False))
    # get_resolver() is itself cached per urlconf and replaced when URL caches are cleared;
    # looked up once per batch, like MAX_URL_LENGTH.
    resolver = get_resolver(getattr(parent, "urlconf", None))
    max_url = batch_settings.MAX_URL_LENGTH if max_url_length is None else max_url_length
    return [_build(parent, base, spec, csrf_off, resolver, max_url) for spec in specs]


def base_environ(parent: HttpRequest) -> dict[str, str]:
    """What every sub-request of ``parent`` takes from it: connection and credentials."""
    meta = parent.META
    keys = set(CONNECTION_KEYS) | set(batch_settings.HEADERS_TO_INCLUDE)
    keys.add(settings.CSRF_HEADER_NAME)
    base = {k: meta[k] for k in keys if isinstance(meta.get(k), str)}
    base["SCRIPT_NAME"] = meta.get("SCRIPT_NAME", "") if isinstance(meta.get("SCRIPT_NAME"),
                                                                      str) else ""
    base["wsgi.url_scheme"] = "https" if batch_settings.USE_HTTPS else parent.scheme
    base[SUBREQUEST_KEY] = "1"
    base.setdefault("SERVER_NAME", "localhost")
    base.setdefault("SERVER_PORT", "443" if base["wsgi.url_scheme"] == "https" else "80")
    return base


def _build(parent: HttpRequest, base: dict[str, str], spec: ItemSpec,
           csrf_off: bool, resolver: URLResolver, max_url: int) -> SubRequest:
    environ = dict(base)
    path_info, query = _locate(parent, spec, environ, resolver, max_url)
    environ["REQUEST_METHOD"] = spec.method
    environ["PATH_INFO"] = path_info
    environ["QUERY_STRING"] = query
    for name, value in spec.headers.items():
        key = "HTTP_" + name.upper().replace("-", "_")
        if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            continue
        if key in PARENT_WINS:
            continue
        environ[key] = value if value.isascii() else _wsgi_header(spec, name, value)
    if spec.files:  # CONTENT_TYPE and CONTENT_LENGTH are set when the body is encoded
        sub = SubRequest(spec.index, spec.method, environ, b"", csrf_off)
        sub.multipart = (form_fields(spec.data or {}), spec.files)
        return sub
    content_type = _header(spec.headers, "content-type")
    if content_type is None and spec.has_body:
        content_type = batch_settings.DEFAULT_CONTENT_TYPE
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    environ["CONTENT_LENGTH"] = str(len(spec.body))
    return SubRequest(spec.index, spec.method, environ, spec.body, csrf_off)


def _locate(parent: HttpRequest, spec: ItemSpec, environ: dict[str, str],
            resolver: URLResolver | None = None,
            max_url: int | None = None) -> tuple[str, str]:
    """Return (path_info, query) and point the environ at an absolute URL's host if it has one.

    The url, percent-encoded as it travels (``iri_to_uri``), may be at most ``max_url``
    (MAX_URL_LENGTH) characters: checked before it is encoded or split, since encoding only
    lengthens it.
    """
    if max_url is None:
        max_url = batch_settings.MAX_URL_LENGTH
    url = spec.url
    if len(url) > max_url:
        raise _url_too_long(spec, len(url), max_url, "")
    if not _URI_SAFE(url):  # else iri_to_uri would return it unchanged
        try:
            url = iri_to_uri(url)
        except UnicodeError:
            raise BatchError.single("url holds a lone surrogate, which is not valid Unicode.",
                                    index=spec.index, field="url") from None
        if len(url) > max_url:  # a character can take 12 ("%F0%9F%98%80")
            raise _url_too_long(spec, len(url), max_url, " once percent-encoded")
    parts = urlsplit(url) if len(url) <= CACHED_LENGTH else _split_uncached(url)
    if parts.scheme or parts.netloc:
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BatchError.single(f"url {excerpt(spec.url)} must use http or https.",
                                    index=spec.index, field="url")
        scheme = environ["wsgi.url_scheme"]
        if parts.scheme != scheme:
            # The scheme says how the client reached the site (is_secure(), secure cookies,
            # redirects): it is the batch request's, never an item's.
            raise BatchError.single(
                f"url {excerpt(spec.url)} uses {parts.scheme}, but the batch's requests run "
                f"over {scheme} like the batch request itself; use a path or a {scheme} URL.",
                index=spec.index, field="url")
        domain, _port = split_domain_port(parts.netloc)
        if not domain or not validate_host(domain, _allowed_hosts()):
            raise BatchError.single(
                f"url {excerpt(spec.url)} points at a host that is not in ALLOWED_HOSTS.",
                index=spec.index, field="url",
            )
        environ["HTTP_HOST"] = parts.netloc
    # PATH_INFO as a WSGI server gives it (percent-decoded, latin-1), and the path Django
    # will resolve from it: nesting is checked on what will run, not on what was written.
    path = parts.path or "/"  # ASCII, after iri_to_uri; so is it without a %-escape
    path_info = unquote_to_bytes(path).decode("latin-1") if "%" in path else path
    script_name = environ.get("SCRIPT_NAME", "").rstrip("/")
    if script_name and (path_info == script_name or path_info.startswith(script_name + "/")):
        path_info = path_info[len(script_name):] or "/"
    _refuse_nesting(parent, spec, resolved_path(path_info), resolver)
    return path_info, parts.query


def _split_uncached(url: str) -> SplitResult:
    """``urlsplit(url)`` leaving nothing of ``url`` in urlsplit's cache, so that no client's
    long url outlives its batch there: Python 3.11+ keeps its last 128 answers (an LRU cache,
    bypassed here), Python 3.10 its last 20 (dropped with urllib's ``clear_cache``)."""
    if _urlsplit_uncached is not None:
        return _urlsplit_uncached(url)
    parts = urlsplit(url)  # pragma: no cover - Python 3.10
    clear_cache()  # pragma: no cover
    return parts  # pragma: no cover


def _url_too_long(spec: ItemSpec, length: int, limit: int, how: str) -> BatchError:
    return BatchError.single(f"url {cut(spec.url)!r} is {length} characters long{how}; "
                             f"the limit is {limit} (MAX_URL_LENGTH).",
                             index=spec.index, field="url")


def _resolves_to_batch(resolver: URLResolver, path: str) -> bool:
    """Whether ``path`` resolves to a batch view."""
    try:
        match = resolver.resolve(path)
    except Resolver404:
        return False
    return bool(getattr(match.func, "batch_requests_endpoint", False))


#: The answer for paths of at most CACHED_LENGTH characters, cached since the handler
#: resolves again: the cache holds at most 1024 x 512 characters of paths.
_is_batch_endpoint = lru_cache(maxsize=1024)(_resolves_to_batch)


def _refuse_nesting(parent: HttpRequest, spec: ItemSpec, path: str,
                    resolver: URLResolver | None = None) -> None:
    if resolver is None:
        resolver = get_resolver(getattr(parent, "urlconf", None))
    # A longer path is resolved uncached: no client's path outlives its batch in the cache.
    nested = (_is_batch_endpoint if len(path) <= CACHED_LENGTH else _resolves_to_batch)
    if nested(resolver, path):
        prefix = get_script_prefix().rstrip("/")
        raise BatchError.single(
            f"url {excerpt(spec.url)} leads to {excerpt(prefix + path)}, a batch endpoint; batches "
            "cannot be nested.",
            index=spec.index, field="url",
        )


def _wsgi_header(spec: ItemSpec, name: str, value: str) -> str:
    """A non-ASCII header value as a WSGI server passes it: its UTF-8 bytes read as latin-1."""
    try:
        return value.encode("utf-8").decode("latin-1")
    except UnicodeError:
        raise BatchError.single(f"The value of header {excerpt(name)} holds a lone surrogate, "
                                "which is not valid Unicode.", index=spec.index,
                                field=f"headers.{name[:100]}") from None


def resolved_path(path_info: str) -> str:
    """The path Django resolves from a WSGI ``PATH_INFO`` (latin-1 text of UTF-8 bytes)."""
    if path_info.isascii():  # valid UTF-8 as it is: nothing to re-percent-encode
        return path_info
    return repercent_broken_unicode(path_info.encode("latin-1")).decode()


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
