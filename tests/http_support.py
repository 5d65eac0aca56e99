"""Helpers of the HTTP caching tests: a scripted application (raw ASGI and raw WSGI) and clients.

:class:`Script` says what the application answers for each path and counts its calls; the
default body names the path, the query and the call number (``b"/p? #1"``), so a test tells
a computed response from a stored one by its body. :class:`AsgiClient` drives an ASGI app
through httpx's ``ASGITransport``; :class:`WsgiClient` builds a raw PEP 3333 environ and
checks both sides with ``wsgiref.validate``.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import sys
import urllib.parse
import wsgiref.validate
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from types import ModuleType
from typing import Any

import pytest

from .conftest import _service_unavailable


def needs(module: str) -> ModuleType:
    """Import a framework, or skip the module (fail with CACHEPLUG_REQUIRE_SERVICES=1)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        try:
            _service_unavailable(f"{module} is not installed: pip install -e '.[dev]'")
        except pytest.skip.Exception as skip:
            raise pytest.skip.Exception(skip.msg, allow_module_level=True) from None
        raise


@dataclass
class Answer:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None  # None: the default body naming the path, query and call
    stream: bool = False  # several body messages (ASGI) / a generator without Content-Length (WSGI)
    length: bool = True  # send Content-Length (WSGI: a list body without it is still complete)


class Script:
    """What the application answers per path; ``during[path]`` runs while it computes."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.calls: Counter[str] = Counter()
        self.during: dict[str, Callable[[], Any]] = {}
        self.seen: list[dict[str, str]] = []

    def answer(self, path: str, **kwargs: Any) -> None:
        self.answers[path] = Answer(**kwargs)

    def respond(self, method: str, path: str, query: str, headers: dict[str, str]) -> tuple[Answer, bytes]:
        self.calls[path] += 1
        self.seen.append(headers)
        hook = self.during.get(path)
        if hook is not None:
            hook()
        answer = self.answers.get(path, Answer())
        body = answer.body if answer.body is not None else f"{path}?{query} #{self.calls[path]}".encode()
        return answer, body

    @staticmethod
    def fields(answer: Answer) -> list[tuple[str, str]]:
        """The answer's header fields, with a Content-Type unless it names one."""
        given = [name.lower() for name, _ in answer.headers]
        return [*answer.headers, *([("Content-Type", "text/plain")] if "content-type" not in given else [])]


def asgi_app(script: Script) -> Callable[..., Any]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        answer, body = script.respond(scope["method"], scope["path"], scope["query_string"].decode(), headers)
        raw = [(k.lower().encode(), v.encode()) for k, v in script.fields(answer)]
        if answer.length and not answer.stream:
            raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": raw})
        if answer.stream:
            half = len(body) // 2
            await send({"type": "http.response.body", "body": body[:half], "more_body": True})
            await send({"type": "http.response.body", "body": body[half:], "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            await send({"type": "http.response.body", "body": body})

    return app


def wsgi_app(script: Script) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        path = environ["SCRIPT_NAME"] + environ["PATH_INFO"]
        answer, body = script.respond(environ["REQUEST_METHOD"], path, environ["QUERY_STRING"], headers)
        fields = script.fields(answer)
        if answer.length and not answer.stream:
            fields.append(("Content-Length", str(len(body))))
        start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}", fields)
        if answer.stream:
            return iter([body[: len(body) // 2], body[len(body) // 2 :]])
        return [body]

    return app


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names, repeats joined with ", "
    body: bytes


def _joined(pairs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs:
        name = name.lower()
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


class AsgiClient:
    """Requests to an ASGI app through httpx (each in its own event loop run)."""

    def __init__(self, app: Any, host: str = "testserver") -> None:
        self.httpx = needs("httpx")
        self.app = app
        self.host = host

    def request(self, method: str, target: str, headers: dict[str, str] | None = None) -> Reply:
        sent: list[bytes] = []

        async def recorded(scope: Any, receive: Any, send: Any) -> None:
            async def record(message: Any) -> None:
                if message["type"] == "http.response.body":
                    sent.append(message.get("body", b""))
                await send(message)

            await self.app(scope, receive, record)

        async def go() -> Reply:
            transport = self.httpx.ASGITransport(app=recorded)
            async with self.httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                response = await client.request(
                    method, target, headers={"host": self.host, **(headers or {})}
                )
                assert response.content == b"".join(sent) or method == "HEAD"
                # The body as the application (or the middleware) sent it, not as a server
                # would deliver it (no body for a HEAD).
                return Reply(response.status_code, _joined(list(response.headers.items())), b"".join(sent))

        return asyncio.run(go())

    def get(self, target: str, headers: dict[str, str] | None = None) -> Reply:
        return self.request("GET", target, headers)


class WsgiClient:
    """Requests to a WSGI app as raw environs, the app and its server side checked by wsgiref."""

    def __init__(self, app: Any, host: str = "testserver") -> None:
        self.app = wsgiref.validate.validator(app)
        self.host = host

    def request(self, method: str, target: str, headers: dict[str, str] | None = None) -> Reply:
        path, _, query = target.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": urllib.parse.unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": self.host,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in (headers or {}).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        started: list[Any] = []

        def start_response(status: str, fields: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, fields]
            return lambda data: None

        result = self.app(environ, start_response)
        try:
            body = b"".join(_chunks(result))
        finally:
            result.close()
        status, fields = started
        return Reply(int(status[:3]), _joined(fields), body)  # a server would drop a HEAD's body

    def get(self, target: str, headers: dict[str, str] | None = None) -> Reply:
        return self.request("GET", target, headers)


def _chunks(result: Any) -> Iterator[bytes]:
    yield from result
