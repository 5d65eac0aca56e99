"""HTTP response caching, written once for every adapter (ASGI, WSGI, Flask views).

:class:`ResponseCache` is the policy; the adapters (``cacheplug.integrations.asgi``,
``.wsgi``, ``.flask``) only translate their framework's request and response to
:class:`Request` and :class:`Response` and do the I/O. One request goes:

* :meth:`ResponseCache.begin` answers ``None`` (not cacheable: the adapter calls the
  application and passes its answer through untouched), a :class:`Response` to send (a
  stored one, or ``304 Not Modified``), or a :class:`Fill`;
* a :class:`Fill` is a miss: the adapter calls the application, asks :meth:`Fill.admit`
  about the response's status and headers as soon as it sees them (a response that cannot
  be stored streams through untouched, never buffered), gives the complete response to
  :meth:`Fill.respond` (which adds a strong ``ETag``, or answers ``304``), sends that, and
  calls :meth:`Fill.conclude` in the context the fill began in, which returns the store to
  run (an async adapter runs it in a worker thread).

What is guaranteed:

* only GET is stored; HEAD is answered from a stored GET (without the body), a HEAD miss
  passes through; requests with ``Authorization``, or with a cookie not named in
  ``allow_cookies``, pass through and are never stored; responses that set cookies, say
  ``no-store``, ``private``, ``no-cache`` or ``Vary: *``, or whose status is not in
  ``statuses``, are never stored;
* the key is scheme, host, method, path, query (pairs in a canonical order; same-name pairs
  keep theirs) and the request headers named by the response's ``Vary``; every part is
  escaped so that two different requests never share a key;
* ``Vary`` costs two lookups, whatever the number of variants: the URL's entry holds either
  the response itself (no ``Vary``) or the names it varies on, and the variant's key adds
  those headers' values;
* entries live in the cache's direct API binding (memory + disk: every process of the host
  sees them), carry the route's tags and the tags of every ``@cached`` value the response
  was computed from, and a response computed before an invalidation of one of them is never
  stored (the version snapshot is taken when the request arrives, not when it is stored);
* the request's ``Cache-Control`` is read only with ``respect_request_cache_control=True``:
  otherwise any client could make the application compute on every request.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from .. import invalidation as inv
from ..cache import Cache
from ..cache.calls import Pending, _ttl_seconds
from ..cache.invalidating import check_tags
from ..defaults import get_cache
from ..errors import ConfigurationError
from .syntax import (
    HOP_BY_HOP,
    NOT_MODIFIED_FIELDS,
    escape,
    etag_of,
    expires_in,
    header,
    headers_from,
    matches,
    parse_cache_control,
    seconds,
    vary_names,
)

__all__ = ["Fill", "Request", "Response", "ResponseCache", "Stored", "headers_from", "parse_cache_control"]

_MISS: Any = object()
_NEVER_STORED = ("no-store", "private", "no-cache")
_HOST = re.compile(r"(?:[a-z0-9_.-]+|\[[0-9a-f:.]+\])(?::[0-9]+)?")
# Characters kept as they are in keys; anything else (``%`` included) is percent-escaped,
# so that escaping is one-to-one and two different requests never map to one key.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/_.~!$&'()*+,;=:@-]*")
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9/_.~!$&'()*+,;=:@?-]*")
_MAX_KEY = 400
NOT_STORED = -1.0  # what ResponseCache.lifetime answers for a response that may not be stored


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as the policy sees it; adapters build it from their framework's.

    ``headers``: lower-case names, repeated fields joined (see :func:`headers_from`).
    ``path``: the decoded path the application routes on (mount point included);
    ``query``: the raw query string. ``native``: the framework's own request (the ASGI
    scope, the WSGI environ), for a ``tags`` callable that needs more.
    """

    method: str
    scheme: str
    host: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    native: Any = None


@dataclass(frozen=True, slots=True)
class Response:
    """A complete HTTP response: status, header fields (names in any case), body."""

    status: int
    headers: Sequence[tuple[str, str]]
    body: bytes = b""


class Stored(NamedTuple):
    """A response as the cache keeps it (a plain tuple: cheap to pickle for the disk tier)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stored_at: float
    expires: float | None


class _Variants(NamedTuple):
    """What a URL's entry holds when its response has ``Vary``: the header names."""

    names: tuple[str, ...]


def _check_statuses(statuses: Iterable[int]) -> frozenset[int]:
    out = frozenset(statuses)
    for status in out:
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
            raise ConfigurationError(f"statuses= takes HTTP status codes (200-599), got {status!r}")
        if status in (206, 304):
            raise ConfigurationError(
                f"statuses= cannot include {status}: a partial or not-modified response is not a "
                f"whole representation; give e.g. statuses=(200, 404)"
            )
    if not out:
        raise ConfigurationError("statuses= is empty: give e.g. statuses=(200,)")
    return out


class ResponseCache:
    """The HTTP caching policy over a :class:`~cacheplug.Cache` (see the module docstring).

    ``cache``: default :func:`~cacheplug.get_cache` at each request. ``ttl``: seconds (or a
    ``timedelta``) for responses without ``s-maxage``/``max-age``/``Expires``; ``None``: the
    cache's ``default_ttl``. ``tags``: tags for every stored response, or a callable of the
    :class:`Request` returning them (called when the response is stored, so the framework's
    routing has filled ``request.native``). ``statuses``: which responses are stored.
    ``allow_cookies``: cookie names that do not make a request personal (analytics,
    consent); a request with any other cookie passes through. ``max_body_size``: larger
    bodies pass through.
    """

    def __init__(
        self,
        *,
        cache: Cache | None = None,
        ttl: float | timedelta | None = 60.0,
        tags: Iterable[str] | Callable[[Request], Iterable[str]] | None = None,
        statuses: Iterable[int] = (200,),
        allow_cookies: Iterable[str] = (),
        respect_request_cache_control: bool = False,
        max_body_size: int = 1 << 20,
    ) -> None:
        if cache is not None and not isinstance(cache, Cache):
            raise ConfigurationError(f"cache= must be a cacheplug.Cache, got {cache!r}")
        self.cache = cache
        self.ttl = _ttl_seconds(ttl, "ttl")
        self.tags: Callable[[Request], Iterable[str]] | None = None
        self.static_tags: tuple[str, ...] = ()
        if callable(tags):
            self.tags = tags
        elif tags is not None:
            self.static_tags = check_tags(tags)
        self.statuses = _check_statuses(statuses)
        if isinstance(allow_cookies, str):
            raise ConfigurationError(f"allow_cookies= takes names: write allow_cookies=({allow_cookies!r},)")
        self.allow_cookies = frozenset(allow_cookies)
        if not isinstance(respect_request_cache_control, bool):
            raise ConfigurationError("respect_request_cache_control= takes True or False")
        self.respect_request_cache_control = respect_request_cache_control
        if isinstance(max_body_size, bool) or not isinstance(max_body_size, int) or max_body_size < 0:
            raise ConfigurationError(f"max_body_size= takes a number of bytes >= 0, got {max_body_size!r}")
        self.max_body_size = max_body_size

    # -- a request ---------------------------------------------------------------------------

    def begin(self, request: Request) -> Response | Fill | None:
        """What to do with ``request``: ``None`` (pass through), a reply, or a :class:`Fill`."""
        if request.method != "GET" and request.method != "HEAD":
            return None
        headers = request.headers
        if "authorization" in headers or not self._cookies_allowed(headers.get("cookie")):
            return None
        cache = self.cache if self.cache is not None else get_cache()
        if not cache.enabled:
            return None
        key = self.key(request)
        if key is None:
            return None
        asked = self._asked(headers) if self.respect_request_cache_control else None
        if asked is not None and "no-store" in asked:
            return None
        reload = asked is not None and "no-cache" in asked
        stored = _MISS if reload else self._find(cache, key, headers)
        now = cache.clock()
        if stored is not _MISS and (asked is None or _acceptable(stored, asked, now)):
            return _reply(stored, request, now)
        if asked is not None and "only-if-cached" in asked:
            return Response(504, (("Content-Type", "text/plain"), ("Content-Length", "0")))
        if request.method == "HEAD":
            return None  # a HEAD response has no body to serve a later GET with
        return Fill(self, cache, request, key)

    def key(self, request: Request) -> str | None:
        """The URL's key (``None``: a host that cannot be keyed safely; not cached)."""
        host = request.host.lower()
        if not _HOST.fullmatch(host):
            return None
        pairs = [p for p in request.query.split("&") if p]
        if len(pairs) > 1:
            pairs.sort(key=lambda p: p.partition("=")[0])  # stable: same-name pairs keep their order
        query = escape("&".join(pairs), _PLAIN_QUERY)
        # GET and HEAD share entries: a HEAD is answered from the stored GET.
        key = f"http:GET {request.scheme}://{host}{escape(request.path, _PLAIN_PATH)}?{query}"
        return key if len(key) <= _MAX_KEY else "http:#" + hashlib.sha256(key.encode()).hexdigest()

    def _find(self, cache: Cache, key: str, headers: Mapping[str, str]) -> Any:
        found = cache.get(key, _MISS)
        if type(found) is _Variants:
            found = cache.get(_variant_key(key, found.names, headers), _MISS)
        return found if type(found) is Stored else _MISS

    def _cookies_allowed(self, cookie: str | None) -> bool:
        if not cookie:
            return True
        allowed = self.allow_cookies
        return bool(allowed) and all(
            part.partition("=")[0].strip() in allowed for part in cookie.split(";") if part.strip()
        )

    @staticmethod
    def _asked(headers: Mapping[str, str]) -> dict[str, str | None]:
        if "cache-control" in headers:
            return parse_cache_control(headers["cache-control"])
        if "no-cache" in headers.get("pragma", "").lower():
            return {"no-cache": None}  # HTTP/1.0 (RFC 9111 5.4)
        return {}

    def tags_for(self, request: Request) -> tuple[str, ...]:
        """The route's tags for ``request`` (static ones, or the callable's, checked)."""
        if self.tags is None:
            return self.static_tags
        made = self.tags(request)
        try:
            return check_tags(made)
        except ConfigurationError as exc:
            raise ConfigurationError(f"the tags callable {self.tags!r} returned {made!r}: {exc}") from None

    # -- a response --------------------------------------------------------------------------

    def lifetime(self, status: int, headers: Sequence[tuple[str, str]], now: float) -> float | None:
        """Seconds a response may be stored (:data:`NOT_STORED`: it may not; ``None``: the
        cache's ``default_ttl``), from its status and headers."""
        if status not in self.statuses or header(headers, "set-cookie") is not None:
            return NOT_STORED
        directives = parse_cache_control(header(headers, "cache-control"))
        if any(name in directives for name in _NEVER_STORED) or "*" in vary_names(headers):
            return NOT_STORED
        for name in ("s-maxage", "max-age"):  # s-maxage speaks to shared caches like this one
            if name in directives:
                delta = seconds(directives[name])
                return NOT_STORED if delta is None or delta == 0 else float(delta)
        expires = header(headers, "expires")
        if expires is not None:
            lifetime = expires_in(expires, header(headers, "date"), now)
            return NOT_STORED if lifetime is None else lifetime
        return self.ttl


def _acceptable(stored: Stored, asked: Mapping[str, str | None], now: float) -> bool:
    """The request's ``max-age`` and ``min-fresh`` (only when they are respected)."""
    if "max-age" in asked:
        limit = seconds(asked["max-age"])
        if limit is None or now - stored.stored_at > limit:
            return False
    if "min-fresh" in asked:
        need = seconds(asked["min-fresh"])
        if need is None or (stored.expires is not None and stored.expires - now < need):
            return False
    return True


def _variant_key(key: str, names: tuple[str, ...], headers: Mapping[str, str]) -> str:
    parts = []
    for name in names:
        value = headers.get(name)
        parts.append(name if value is None else f"{name}={escape(value, _PLAIN_QUERY)}")
    variant = f"{key} vary({','.join(parts)})"
    return variant if len(variant) <= _MAX_KEY else "http:#" + hashlib.sha256(variant.encode()).hexdigest()


def _reply(stored: Stored, request: Request, now: float, aged: bool = True) -> Response:
    """A stored response for ``request``: with ``Age``, without a body for HEAD, or a 304."""
    age = (("Age", str(max(0, int(now - stored.stored_at)))),) if aged else ()
    etag = header(stored.headers, "etag")
    if matches(request.headers.get("if-none-match"), etag):
        kept = tuple(h for h in stored.headers if h[0].lower() in NOT_MODIFIED_FIELDS)
        return Response(304, (*kept, *age))
    return Response(stored.status, (*stored.headers, *age), b"" if request.method == "HEAD" else stored.body)


class Fill:
    """A miss being computed: admits, completes and stores the application's response.

    Created by :meth:`ResponseCache.begin`, which snapshots the version store's epoch and
    starts capturing the ``@cached`` reads the application makes (their tags join the
    response's). :meth:`conclude` must run once, in the context the fill began in.
    """

    __slots__ = (
        "_bucket",
        "_token",
        "cache",
        "extra_tags",
        "key",
        "names",
        "policy",
        "request",
        "seq0",
        "start",
        "stored",
        "ttl",
    )

    def __init__(self, policy: ResponseCache, cache: Cache, request: Request, key: str) -> None:
        self.policy = policy
        self.cache = cache
        self.request = request
        self.key = key
        self.seq0 = cache.epoch[0]
        self.start = cache.clock()
        self.ttl: float | None = NOT_STORED
        self.names: tuple[str, ...] = ()
        self.stored: Stored | None = None
        # Tags an adapter adds for this request (a Flask view's templates, say).
        self.extra_tags: tuple[str, ...] = ()
        bucket, token = inv.capture_begin()
        self._bucket: list[Any] | None = bucket
        self._token = token

    def admit(self, status: int, headers: Sequence[tuple[str, str]]) -> bool:
        """Whether a response with this status and these headers may be stored (else: pass it through)."""
        ttl = self.policy.lifetime(status, headers, self.cache.clock())
        length = header(headers, "content-length")
        if ttl == NOT_STORED or (length is not None and not _fits(length, self.policy.max_body_size)):
            return False
        self.ttl = ttl if ttl is not None else self.cache.default_ttl
        self.names = vary_names(headers)
        return True

    def respond(self, response: Response) -> Response:
        """The reply to send for the application's complete, admitted ``response``.

        Adds a strong ``ETag`` (a hash of the body) unless the application set one, and
        answers ``304`` when the request's ``If-None-Match`` matches it. A body larger than
        ``max_body_size`` is sent as it is and not stored.
        """
        if self.ttl == NOT_STORED or len(response.body) > self.policy.max_body_size:
            self.ttl = NOT_STORED
            return response
        headers = tuple((k, v) for k, v in response.headers if k.lower() not in HOP_BY_HOP)
        if header(headers, "etag") is None:
            headers = (*headers, ("ETag", etag_of(response.body)))
        now = self.cache.clock()
        self.stored = Stored(
            response.status, headers, response.body, now, None if self.ttl is None else now + self.ttl
        )
        return _reply(self.stored, self.request, now, aged=False)

    def conclude(self) -> Callable[[], None] | None:
        """Stop capturing; the store to run (``None``: nothing to store). Idempotent."""
        bucket = self._bucket
        if bucket is None:
            return None
        self._bucket = None
        inv.capture_end(self._token)
        stored = self.stored
        if stored is None:
            return None
        captured: dict[str, None] = dict.fromkeys((*self.policy.tags_for(self.request), *self.extra_tags))
        for read in bucket:  # as cacheplug.cache.flow.conclude: what the response was computed from
            captured.update(dict.fromkeys(read.cache.entry_tags(read.entry)))
        tags, names, key, ttl = tuple(captured), self.names, self.key, self.ttl

        def store() -> None:
            if names:
                _put(self, _variant_key(key, names, self.request.headers), stored, ttl, tags)
                _put(self, key, _Variants(names), ttl, tags)
            else:
                _put(self, key, stored, ttl, tags)

        return store

    @property
    def blocking(self) -> bool:
        """Whether the store writes a shared tier (an async adapter runs it in a worker thread)."""
        return bool(self.cache.tiering.lower)


def _fits(length: str, limit: int) -> bool:
    size = seconds(length)  # the same grammar: 1*DIGIT
    return size is not None and size <= limit


def _put(fill: Fill, key: str, value: Any, ttl: float | None, tags: tuple[str, ...]) -> None:
    """``Cache.set`` with the version snapshot taken when the request arrived (no stale set)."""
    cache = fill.cache
    if cache.blind():
        return
    skey = cache.user_key(key)
    pending = Pending(cache.direct, skey, skey, cache.direct.base_tags + tags, ttl, fill.seq0, fill.start)
    cache.finish(pending, value, True, lambda: skey, force=True)
