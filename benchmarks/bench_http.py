"""Issue 10 (HTTP response caching): a cached response against the view computing it.

* **raw calls** (no test client, no server): the ASGI middleware awaited with a scope and
  no-op ``receive``/``send``, the WSGI middleware called with an environ and a no-op
  ``start_response``, over a ``Cache([MemoryTier(), DiskTier(dir)])``. ``cacheplug``: a hit
  (the response was stored before the first round); ``uncached``: the bare application,
  whose view computes for 1 ms (a busy loop); ``miss``: the middleware on a new URL every
  request (compute, then store in memory and on disk), for reference;
* **requests per second** over real servers (figures for reference, no target): uvicorn
  (1 worker) and gunicorn (2 sync workers: one per core of this machine), a cached route and
  the same route uncached, driven for a few seconds by client threads in this process (so
  the client shares the machine's cores with the server). ``python benchmarks/bench_http.py``
  prints the same figures without pytest.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import interleaved, record, rounds

from cacheplug import Cache, DiskTier, MemoryTier
from cacheplug.integrations import asgi, wsgi

VIEW_SECONDS = 0.001
OPS = 50
ROUNDS = 12
BODY = b'{"id": 1, "name": "' + b"x" * 200 + b'"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def _compute() -> None:
    deadline = time.perf_counter() + VIEW_SECONDS
    while time.perf_counter() < deadline:
        pass


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"page=1&sort=name",
        "headers": [
            (b"host", b"api.example.com"),
            (b"user-agent", b"bench/1.0"),
            (b"accept", b"application/json"),
            (b"accept-encoding", b"gzip, deflate"),
            (b"connection", b"keep-alive"),
        ],
        "server": ("api.example.com", 80),
        "client": ("127.0.0.1", 50000),
    }


def _environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "page=1&sort=name",
        "SERVER_NAME": "api.example.com",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "api.example.com",
        "HTTP_USER_AGENT": "bench/1.0",
        "HTTP_ACCEPT": "application/json",
        "HTTP_ACCEPT_ENCODING": "gzip, deflate",
        "HTTP_CONNECTION": "keep-alive",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": None,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


_RAW = [(k.lower().encode(), v.encode()) for k, v in HEADERS]


class _Views:
    """The raw ASGI and WSGI applications of the benchmark, counting their computations."""

    def __init__(self) -> None:
        self.computed = 0

    async def asgi(self, scope: Any, receive: Any, send: Any) -> None:
        self.computed += 1
        _compute()
        await send({"type": "http.response.start", "status": 200, "headers": _RAW})
        await send({"type": "http.response.body", "body": BODY})

    def wsgi(self, environ: Any, start_response: Any) -> list[bytes]:
        self.computed += 1
        _compute()
        start_response("200 OK", HEADERS)
        return [BODY]


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    pass


def _start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
    return None


def _asgi_calls(loop: asyncio.AbstractEventLoop, app: Any, scopes: Callable[[], Iterable[Any]]) -> Any:
    """A function awaiting ``app`` once per scope of ``scopes()`` on ``loop``."""

    async def calls() -> None:
        for scope in scopes():
            await app(scope, _receive, _send)

    return lambda: loop.run_until_complete(calls())


def _wsgi_calls(app: Any, environs: Callable[[], Iterable[Any]]) -> Any:
    def calls() -> None:
        for environ in environs():
            app(environ, _start_response)

    return calls


@pytest.fixture
def event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def _cache(workdir: Path, closing: list[Any]) -> Cache:
    disk = DiskTier(workdir / "disk")
    cache = Cache([MemoryTier(), disk])
    closing.extend([disk, cache])
    return cache


def bench_http_asgi(
    benchmark: Any, bench_pass: int, workdir: Path, closing: list[Any], event_loop: asyncio.AbstractEventLoop
) -> None:
    """ASGI: a stored response, the view computing for 1 ms, and a miss that stores."""
    views = _Views()
    middleware = asgi.CacheMiddleware(views.asgi, cache=_cache(workdir, closing), ttl=3600)
    hot = _scope("/items/1")
    event_loop.run_until_complete(middleware(hot, _receive, _send))
    fresh = itertools.count(1000)
    new: list[Any] = []
    computed = views.computed
    series = interleaved(
        benchmark,
        "http_asgi",
        {
            "cacheplug": _asgi_calls(event_loop, middleware, lambda: itertools.repeat(hot, OPS)),
            "uncached": _asgi_calls(event_loop, views.asgi, lambda: itertools.repeat(hot, OPS)),
            "miss": _asgi_calls(event_loop, middleware, lambda: new),
        },
        OPS,
        rounds(ROUNDS),
        setup=lambda: new.__setitem__(slice(None), [_scope(f"/items/{next(fresh)}") for _ in range(OPS)]),
    )
    # Every uncached and every missing call computed; not one hit did.
    assert views.computed - computed == 2 * OPS * (len(series["http_asgi.uncached"]) + 1)


def bench_http_wsgi(benchmark: Any, bench_pass: int, workdir: Path, closing: list[Any]) -> None:
    """WSGI: a stored response, the view computing for 1 ms, and a miss that stores."""
    views = _Views()
    middleware = wsgi.CacheMiddleware(views.wsgi, cache=_cache(workdir, closing), ttl=3600)
    hot = _environ("/items/1")
    middleware(hot, _start_response)
    fresh = itertools.count(1000)
    new: list[Any] = []
    computed = views.computed
    series = interleaved(
        benchmark,
        "http_wsgi",
        {
            "cacheplug": _wsgi_calls(middleware, lambda: itertools.repeat(hot, OPS)),
            "uncached": _wsgi_calls(views.wsgi, lambda: itertools.repeat(hot, OPS)),
            "miss": _wsgi_calls(middleware, lambda: new),
        },
        OPS,
        rounds(ROUNDS),
        setup=lambda: new.__setitem__(slice(None), [_environ(f"/items/{next(fresh)}") for _ in range(OPS)]),
    )
    assert views.computed - computed == 2 * OPS * (len(series["http_wsgi.uncached"]) + 1)


# -- requests per second over real servers -------------------------------------------------------

SERVER_APP = textwrap.dedent(
    """
    import time
    from cacheplug.integrations import asgi, wsgi

    BODY = b'{"id": 1, "name": "' + b"x" * 200 + b'"}'
    HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]
    RAW = [(k.lower().encode(), v.encode()) for k, v in HEADERS]

    def compute():
        deadline = time.perf_counter() + 0.001
        while time.perf_counter() < deadline:
            pass

    async def view(scope, receive, send):
        if scope["type"] != "http":
            return
        compute()
        await send({"type": "http.response.start", "status": 200, "headers": RAW})
        await send({"type": "http.response.body", "body": BODY})

    cached_view = asgi.CacheMiddleware(view, ttl=3600)

    async def asgi_app(scope, receive, send):
        app = cached_view if scope.get("path", "").startswith("/cached") else view
        await app(scope, receive, send)

    def wsgi_view(environ, start_response):
        compute()
        start_response("200 OK", HEADERS)
        return [BODY]

    cached_wsgi = wsgi.CacheMiddleware(wsgi_view, ttl=3600)

    def wsgi_app(environ, start_response):
        app = cached_wsgi if environ["PATH_INFO"].startswith("/cached") else wsgi_view
        return app(environ, start_response)
    """
)
SECONDS = float(os.environ.get("CACHEPLUG_BENCH_HTTP_SECONDS", "3"))
CLIENTS = 4


def _drive(port: int, path: str, seconds: float) -> float:
    """Requests per second answered with 200 by ``CLIENTS`` threads over ``seconds``."""
    done = [0] * CLIENTS
    failed: list[str] = []
    stop = time.perf_counter() + seconds

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.perf_counter() < stop:
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as exc:
                failed.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            if response.status != 200:
                failed.append(str(response.status))
            done[index] += 1
            if response.will_close:  # gunicorn's sync workers close every connection
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    elapsed = time.perf_counter() - start
    assert not failed, failed[:3]
    return sum(done) / elapsed


def _command(server: str, fd: int) -> list[str]:
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "app_module:asgi_app", "--fd", str(fd), "--workers", "1",
                "--log-level", "warning", "--no-access-log"]  # fmt: skip
    return [sys.executable, "-m", "gunicorn", "-w", "2", "--bind", f"fd://{fd}", "--log-level", "warning",
            "app_module:wsgi_app"]  # fmt: skip


def requests_per_second(seconds: float = SECONDS) -> dict[str, float]:
    """``{"<server>.<cached|uncached>": requests per second}`` for uvicorn and gunicorn."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cacheplug-bench-http-") as tmp:
        (Path(tmp) / "app_module.py").write_text(SERVER_APP)
        env = dict(os.environ, CACHEPLUG_DIR=os.path.join(tmp, "cache"))
        env["PYTHONPATH"] = os.pathsep.join([tmp, str(Path(__file__).resolve().parents[1])])
        for server in ("uvicorn", "gunicorn"):
            listener = socket.socket()
            # Inherited by accepted connections on Linux: no Nagle delay on the server's small
            # writes (a server given a socket by fd may not set it itself).
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            listener.bind(("127.0.0.1", 0))
            listener.listen(256)
            port = listener.getsockname()[1]
            process = subprocess.Popen(
                _command(server, listener.fileno()),
                cwd=tmp,
                env=env,
                pass_fds=[listener.fileno()],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            listener.close()
            try:
                _drive(port, "/cached/items/1", 0.5)  # every worker stores or loads the entry
                _drive(port, "/items/1", 0.5)
                for kind, path in (("cached", "/cached/items/1"), ("uncached", "/items/1")):
                    out[f"{server}.{kind}"] = _drive(port, path, seconds)
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=20)
    return out


@pytest.fixture(scope="session")
def server_figures() -> dict[str, float]:
    return requests_per_second()


@pytest.mark.parametrize(
    "figure", ["uvicorn.cached", "uvicorn.uncached", "gunicorn.cached", "gunicorn.uncached"]
)
def bench_http_requests_per_second(benchmark: Any, figure: str, server_figures: dict[str, float]) -> None:
    """Requests per second over a real server (reported, not a target)."""
    record(benchmark, f"rps.{figure}", 1, per_second=server_figures[figure], clients=CLIENTS, seconds=SECONDS)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


if __name__ == "__main__":
    for name, value in requests_per_second().items():
        print(f"{name:20} {value:10,.0f} requests/s")
