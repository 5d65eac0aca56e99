"""HTTP response caching in real servers under concurrent load: uvicorn and gunicorn (3 workers).

The application serves ``GET /items/{i}`` (cached, tagged ``item:{i}``) and ``POST
/items/{i}`` (a write: bumps the item's version in a file under a file lock, invalidates
``item:{i}``, and only then answers). Reader threads record, before each request, the
newest version whose write had answered; a read must never return an older one, whichever
worker serves it. Each response says which process computed it (the body) and which one
served it (``X-Served-By``, added outside the cache); the test also checks that responses
were served from the cache, by other workers than the one that computed them.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from .http_support import needs
from .server_support import drive

ITEMS = 8
READERS, READS = 4, 250
WRITERS, WRITES = 2, 60

COMMON = textwrap.dedent(
    """
    import fcntl, os, time
    import cacheplug

    DATA = os.environ["APP_DATA"]

    def path(item):
        return os.path.join(DATA, f"item-{item}")

    def version(item):
        try:
            with open(path(item)) as f:
                return int(f.read() or 0)
        except FileNotFoundError:
            return 0

    def write(item):
        with open(os.path.join(DATA, "lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            new = version(item) + 1
            with open(path(item) + ".tmp", "w") as f:
                f.write(str(new))
            os.replace(path(item) + ".tmp", path(item))
        cacheplug.invalidate(tags=[f"item:{item}"])
        return new

    def body(item):
        current = version(item)
        time.sleep(0.005)  # a query's worth of time for a write to land in (the no-stale-set race)
        return f"{current} {os.getpid()}"
    """
)

APPS = {
    "asgi": COMMON
    + textwrap.dedent(
        """
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route
        from cacheplug.integrations.asgi import CacheMiddleware

        async def read(request):
            return PlainTextResponse(body(request.path_params["item"]))

        async def update(request):
            item = request.path_params["item"]
            new = await asyncio.to_thread(write, item)
            return PlainTextResponse(f"{new} {os.getpid()}")

        import asyncio
        routes = [Route("/items/{item:int}", read, methods=["GET"]),
                  Route("/items/{item:int}", update, methods=["POST"])]
        cached = CacheMiddleware(
            Starlette(routes=routes), ttl=300,
            tags=lambda request: [f"item:{request.native['path_params']['item']}"],
        )

        async def app(scope, receive, send):
            async def served_by(message):
                if message["type"] == "http.response.start":
                    message["headers"] = [*message["headers"], (b"x-served-by", str(os.getpid()).encode())]
                await send(message)
            await cached(scope, receive, served_by)
        """
    ),
    "wsgi": COMMON
    + textwrap.dedent(
        """
        from cacheplug.integrations.wsgi import CacheMiddleware

        def inner(environ, start_response):
            item = int(environ["PATH_INFO"].rsplit("/", 1)[1])
            text = f"{write(item)} {os.getpid()}" if environ["REQUEST_METHOD"] == "POST" else body(item)
            data = text.encode()
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
            return [data]

        cached = CacheMiddleware(inner, ttl=300, tags=lambda r: [f"item:{r.path.rsplit('/', 1)[1]}"])

        def app(environ, start_response):
            def served_by(status, headers, exc_info=None):
                return start_response(status, [*headers, ("X-Served-By", str(os.getpid()))])
            return cached(environ, served_by)
        """
    ),
    "flask": COMMON
    + textwrap.dedent(
        """
        import flask
        from cacheplug.integrations.flask import CachePlug

        flask_app = flask.Flask(__name__)
        flask_app.config["CACHEPLUG_HTTP_TTL"] = 300
        plug = CachePlug(flask_app)

        @flask_app.get("/items/<int:item>")
        @plug.cached(tags=["item:{item}"])
        def read(item):
            return body(item)

        @flask_app.post("/items/<int:item>")
        def update(item):
            return f"{write(item)} {os.getpid()}"

        inner = flask_app.wsgi_app

        def served_by_app(environ, start_response):
            def served_by(status, headers, exc_info=None):
                return start_response(status, [*headers, ("X-Served-By", str(os.getpid()))])
            return inner(environ, served_by)

        flask_app.wsgi_app = served_by_app
        app = flask_app
        """
    ),
}


def _request(port: int, method: str, path: str) -> tuple[int, str, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read().decode(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def _server(kind: str, fd: int) -> list[str]:
    if kind == "asgi":
        return [sys.executable, "-m", "uvicorn", "app_module:app", "--fd", str(fd), "--workers", "2",
                "--log-level", "warning", "--no-access-log"]  # fmt: skip
    return [sys.executable, "-m", "gunicorn", "-w", "3", "--bind", f"fd://{fd}", "--graceful-timeout", "5",
            "--log-level", "warning", "app_module:app"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", ["asgi", "wsgi", "flask"], ids=["uvicorn-asgi", "gunicorn-wsgi", "gunicorn-flask"]
)
def test_no_worker_serves_an_old_body_after_a_write_answered(kind: str, tmp_path: Path) -> None:
    needs("uvicorn" if kind == "asgi" else "gunicorn")
    needs({"asgi": "starlette", "wsgi": "wsgiref", "flask": "flask"}[kind])
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "app_module.py").write_text(APPS[kind])
    listener = socket.socket()
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited: no Nagle delays
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    port = listener.getsockname()[1]
    env = dict(os.environ, APP_DATA=str(data), CACHEPLUG_DIR=str(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[1])])
    server = subprocess.Popen(
        _server(kind, listener.fileno()),
        cwd=tmp_path,
        env=env,
        pass_fds=[listener.fileno()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    listener.close()  # the server holds its own copy; connections queue until a worker accepts
    completed = [0] * ITEMS  # newest version whose write had answered, per item
    lock = threading.Lock()
    errors: list[str] = []
    stale: list[str] = []
    hits: list[tuple[str, str]] = []  # (computed by, served by) of responses with an Age
    servers: set[str] = set()

    def reader(seed: int) -> None:
        for i in range(READS):
            item = (seed + i) % ITEMS
            with lock:
                floor = completed[item]
            status, body, headers = _request(port, "GET", f"/items/{item}")
            if status != 200:
                errors.append(f"{status} {body}")
                continue
            version, computed_by = body.split()
            servers.add(headers["x-served-by"])
            if "age" in headers:
                hits.append((computed_by, headers["x-served-by"]))
            if int(version) < floor:
                stale.append(f"item {item}: read {version} after write {floor} had answered")

    def writer(seed: int) -> None:
        for i in range(WRITES):
            item = (seed * 3 + i) % ITEMS
            status, body, _ = _request(port, "POST", f"/items/{item}")
            if status != 200:
                errors.append(f"{status} {body}")
                continue
            with lock:
                completed[item] = max(completed[item], int(body.split()[0]))

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(READERS)]
    threads += [threading.Thread(target=writer, args=(s,)) for s in range(WRITERS)]
    output = drive(server, threads, 150)
    reads = READERS * READS
    assert errors == [], f"{len(errors)} failed requests, e.g. {errors[:3]}\n{output[-3000:]}"
    assert stale == [], f"{len(stale)} stale reads of {reads}, e.g. {stale[:3]}"
    assert len(servers) >= 2, f"only workers {servers} answered"
    assert len(hits) > reads // 4, f"only {len(hits)} of {reads} reads were served from the cache"
    assert any(a != b for a, b in hits), "no worker served a response another worker had stored"
    assert "Traceback" not in output, output[-3000:]
