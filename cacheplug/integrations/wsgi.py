"""HTTP response caching for WSGI applications (Flask, Django's WSGI handler, any PEP 3333 app).

:class:`CacheMiddleware` translates the environ to a :class:`~cacheplug.http.Request` and
the application's answer to a :class:`~cacheplug.http.Response`; :mod:`cacheplug.http`
decides everything. On a miss, ``start_response`` is held back only while the response may
still be stored (:meth:`~cacheplug.http.Fill.admit`). A body is read whole only when it is
known to be complete and bounded: a ``Content-Length`` within ``max_body_size``, or a list
or tuple. Any other body is a stream and passes through as it comes, never buffered.

:func:`run_fill` is that machinery on its own: the Flask integration finishes its views'
responses with it, after Flask has added its session cookie and ``Vary: Cookie``.
It needs no framework: no extra to install.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from http import HTTPStatus
from typing import Any

from ..cache import Cache
from ..http import Fill, Request, Response, ResponseCache

__all__ = ["CacheMiddleware", "request_of", "run_fill"]

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def request_of(environ: Environ) -> Request:
    """The policy's view of a WSGI environ (the environ itself as ``native``)."""
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k[:5] == "HTTP_"}
    host = headers.get("host") or f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    return Request(
        environ.get("REQUEST_METHOD", "GET"),
        environ.get("wsgi.url_scheme", "http"),
        host,
        environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
        environ.get("QUERY_STRING", ""),
        headers,
        environ,
    )


def _status_line(status: int, original: str) -> str:
    if original[:3] == str(status):
        return original
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _serve(start_response: StartResponse, response: Response, original: str = "") -> list[bytes]:
    start_response(_status_line(response.status, original), list(response.headers))
    return [response.body]


class _Passing:
    """What was written before the stream was recognised, then the stream (closed with it)."""

    def __init__(self, written: list[bytes], body: Iterable[bytes]) -> None:
        self.written, self.body = written, body

    def __iter__(self) -> Iterator[bytes]:
        yield from self.written
        yield from self.body

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        if close is not None:
            close()


def run_fill(
    app: WSGIApp, environ: Environ, start_response: StartResponse, fill_of: Callable[[], Fill | None]
) -> Iterable[bytes]:
    """Run ``app`` for a miss: serve its response (completed if storable) and store it.

    ``fill_of()`` is asked when the application starts its response: the fill of this
    request, or ``None`` (then everything passes through). The fill is concluded here, in
    the caller's context, whatever happens.
    """
    held: list[Any] = []  # [status line, headers] while the response may still be stored
    written: list[bytes] = []
    passing = False
    fill: Fill | None = None

    def intercept(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        nonlocal passing, fill
        if not passing and exc_info is None and not held:
            fill = fill_of()
            if fill is not None and fill.admit(int(status[:3]), headers):
                held[:] = [status, headers]
                return written.append
        passing = True
        held.clear()
        return (
            start_response(status, headers, exc_info)
            if exc_info is not None
            else start_response(status, headers)
        )

    def conclude() -> Callable[[], None] | None:
        found = fill if fill is not None else fill_of()
        return found.conclude() if found is not None else None

    try:
        body = app(environ, intercept)
    except BaseException:
        conclude()
        raise
    complete = held and (isinstance(body, (list, tuple)) or _length(held[1]) is not None)
    if not complete or fill is None:
        conclude()
        passing = True
        if held:  # admitted, but a body of unknown length: a stream
            start_response(held[0], held[1])
            return _Passing(written, body)
        return body
    try:
        chunks = [*written, *body]
    except BaseException:
        conclude()
        raise
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    status, headers = held
    reply = fill.respond(Response(int(status[:3]), headers, b"".join(chunks)))
    store = conclude()
    if store is not None:
        store()
    return _serve(start_response, reply, status)


def _length(headers: list[tuple[str, str]]) -> str | None:
    for name, value in headers:
        if name.lower() == "content-length":
            return value
    return None


class CacheMiddleware:
    """Serve a WSGI application's cacheable responses from a :class:`~cacheplug.Cache`.

    ``CacheMiddleware(app, cache=None, ttl=60, tags=None, statuses=(200,),
    allow_cookies=(), respect_request_cache_control=False, max_body_size=1 MiB)``; the
    options are :class:`cacheplug.http.ResponseCache`'s, as for the ASGI middleware.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        cache: Cache | None = None,
        ttl: float | timedelta | None = 60.0,
        tags: Iterable[str] | Callable[[Request], Iterable[str]] | None = None,
        statuses: Iterable[int] = (200,),
        allow_cookies: Iterable[str] = (),
        respect_request_cache_control: bool = False,
        max_body_size: int = 1 << 20,
    ) -> None:
        self.app = app
        self.policy = ResponseCache(
            cache=cache,
            ttl=ttl,
            tags=tags,
            statuses=statuses,
            allow_cookies=allow_cookies,
            respect_request_cache_control=respect_request_cache_control,
            max_body_size=max_body_size,
        )

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        plan = self.policy.begin(request_of(environ))
        if plan is None:
            return self.app(environ, start_response)
        if isinstance(plan, Response):
            return _serve(start_response, plan)
        return run_fill(self.app, environ, start_response, lambda: plan)
