"""HTTP response caching for ASGI applications (Starlette, FastAPI, any ASGI 3 app).

:class:`CacheMiddleware` is a raw ASGI middleware (no ``BaseHTTPMiddleware``: nothing is
run in another task, and a streaming response streams) over :mod:`cacheplug.http`, which
decides everything; this module translates the scope to a :class:`~cacheplug.http.Request`
and messages to a :class:`~cacheplug.http.Response`, and does the I/O:

* a stored response is sent without calling the application;
* on a miss, ``http.response.start`` is held back only while the response may still be
  stored (:meth:`~cacheplug.http.Fill.admit`); a response in one body message is completed
  (ETag, 304) and sent, one in several (``more_body``: a stream) or with trailers passes
  through as it comes;
* the store runs after the application returned, in a worker thread when it writes a
  shared tier, so that a lock held by another process never stalls the event loop.

It needs no framework: no extra to install.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from datetime import timedelta
from typing import Any

from ..cache import Cache
from ..http import Fill, Request, Response, ResponseCache, headers_from

__all__ = ["CacheMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def request_of(scope: Scope) -> Request:
    """The policy's view of an ASGI ``http`` scope (the scope itself as ``native``)."""
    headers = headers_from((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", ()))
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    path, root = scope.get("path", "/"), scope.get("root_path", "")
    if root and not path.startswith(root):
        path = root + path
    return Request(
        scope.get("method", "GET"),
        scope.get("scheme", "http"),
        host,
        path,
        scope.get("query_string", b"").decode("latin-1"),
        headers,
        scope,
    )


def _encoded(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


async def _send_response(send: Send, response: Response) -> None:
    await send(
        {"type": "http.response.start", "status": response.status, "headers": _encoded(response.headers)}
    )
    await send({"type": "http.response.body", "body": response.body, "more_body": False})


class CacheMiddleware:
    """Serve an ASGI application's cacheable responses from a :class:`~cacheplug.Cache`.

    ``CacheMiddleware(app, cache=None, ttl=60, tags=None, statuses=(200,),
    allow_cookies=(), respect_request_cache_control=False, max_body_size=1 MiB)``; the
    options are :class:`cacheplug.http.ResponseCache`'s. Only ``http`` scopes are cached;
    ``websocket`` and ``lifespan`` pass through.
    """

    def __init__(
        self,
        app: ASGIApp,
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        plan = self.policy.begin(request_of(scope))
        if plan is None:
            await self.app(scope, receive, send)
        elif isinstance(plan, Response):
            await _send_response(send, plan)
        else:
            await _fill(self.app, scope, receive, send, plan)


async def _fill(app: ASGIApp, scope: Scope, receive: Receive, send: Send, fill: Fill) -> None:
    """Run the application for a miss; send its response (completed if storable); store it."""
    held: list[Any] = []  # [start message, its headers as str] while the response may be stored
    passing = False

    async def capture(message: Message) -> None:
        nonlocal passing
        if passing:
            await send(message)
            return
        kind = message["type"]
        if kind == "http.response.start" and not message.get("trailers", False):
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", ())]
            if fill.admit(message["status"], headers):
                held[:] = [message, headers]
                return
        elif kind == "http.response.body" and held and not message.get("more_body", False):
            passing = True  # whatever the application sends after its last body message
            reply = fill.respond(Response(held[0]["status"], held[1], bytes(message.get("body", b""))))
            await _send_response(send, reply)
            return
        passing = True  # a stream, trailers, an extension's message, or not storable
        if held:
            await send(held[0])
        await send(message)

    completed = False
    try:
        await app(scope, receive, capture)
        completed = True
    finally:
        # Here, not in capture(): the application may send from another task, and the
        # capture of its cached reads ends in the context it began in.
        store = fill.conclude()
    if completed and store is not None:
        if fill.blocking:
            await asyncio.to_thread(store)
        else:
            store()
