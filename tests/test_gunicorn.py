"""A real app under gunicorn ``--preload`` with 3 forked workers: 0 errors, 0 stale reads.

The app module makes a cached call at import, so the master opens the version store and the
disk tier before it forks the workers (the case that once shared one file lock between all
of them). Clients read and write items concurrently through HTTP. The source of truth is a
file per item holding its version; a write bumps it under a file lock and then invalidates
the item's tag, and only then answers. A read must never return a version older than the
newest write that had answered before the read was sent.
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

from .server_support import drive

pytest.importorskip("gunicorn")

ITEMS = 8
WRITERS = 6
WRITES = 400
APP = textwrap.dedent(
    """
    import fcntl, os
    from cacheplug import cached, invalidate

    DATA = os.environ["APP_DATA"]

    def _path(item):
        return os.path.join(DATA, f"item-{item}")

    @cached(tags=["item:{item}"])
    def read(item: int) -> int:
        try:
            with open(_path(item)) as f:
                return int(f.read() or 0)
        except FileNotFoundError:
            return 0

    def write(item: int) -> int:
        with open(os.path.join(DATA, "lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            version = read.__wrapped__(item) + 1
            with open(_path(item) + ".tmp", "w") as f:
                f.write(str(version))
            os.replace(_path(item) + ".tmp", _path(item))
        invalidate(tags=[f"item:{item}"])
        return version

    read(0)  # at import: the master opens the stores before it forks

    def app(environ, start_response):
        kind, _, item = environ["PATH_INFO"].strip("/").partition("/")
        try:
            value = write(int(item)) if kind == "write" else read(int(item))
            status, body = "200 OK", f"{value} {os.getpid()}"
        except Exception as exc:  # reported to the client, counted by the test
            status, body = "500 Internal Server Error", repr(exc)
        data = body.encode()
        start_response(status, [("Content-Length", str(len(data)))])
        return [data]
    """
)


def _request(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


@pytest.mark.slow
def test_gunicorn_preload_workers_serve_no_stale_reads_and_no_errors(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "app_module.py").write_text(APP)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    port = listener.getsockname()[1]
    env = dict(os.environ, APP_DATA=str(data), CACHEPLUG_DIR=str(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[1])])
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--preload", "-w", "3", "--bind", f"fd://{listener.fileno()}",
         "--graceful-timeout", "5", "--log-level", "warning", "app_module:app"],
        cwd=tmp_path,
        env=env,
        pass_fds=[listener.fileno()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    listener.close()  # the server holds its own copy; connections queue until a worker accepts
    completed = [0] * ITEMS  # newest version whose write had answered, per item
    lock = threading.Lock()
    errors: list[str] = []
    stale: list[str] = []
    pids: set[str] = set()
    reads = [0]

    def reader(seed: int) -> None:
        for i in range(300):
            item = (seed + i) % ITEMS
            with lock:
                floor = completed[item]
            status, body = _request(port, f"/read/{item}")
            if status != 200:
                errors.append(body)
                continue
            version, pid = body.split()
            pids.add(pid)
            reads[0] += 1
            if int(version) < floor:
                stale.append(f"item {item}: read {version} after write {floor} had answered")

    def writer(seed: int) -> None:
        for i in range(WRITES):
            item = (seed * 3 + i) % ITEMS
            status, body = _request(port, f"/write/{item}")
            if status != 200:
                errors.append(body)
                continue
            version = int(body.split()[0])
            with lock:
                completed[item] = max(completed[item], version)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
    threads += [threading.Thread(target=writer, args=(s,)) for s in range(WRITERS)]
    output = drive(server, threads, 120)
    assert errors == [], f"{len(errors)} failed requests, e.g. {errors[:3]}\n{output[-3000:]}"
    assert stale == [], f"{len(stale)} stale reads of {reads[0]}, e.g. {stale[:3]}"
    assert reads[0] == 1200
    assert len(pids) >= 2, f"only workers {pids} answered"
    assert "Traceback" not in output, output[-3000:]
