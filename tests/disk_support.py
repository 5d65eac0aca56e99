"""Helpers of the disk tier's fault and security tests: forked children, raw rows, evil pickles."""

from __future__ import annotations

import builtins
import contextlib
import os
import pickle
import select
import signal
import sqlite3
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CHILD_TIMEOUT = 30.0


class Touch:
    """Unpickling this creates ``path``: the marker of code run by ``pickle.loads``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.open, (self.path, "w"))


def in_child(body: Callable[[], Any], timeout: float = CHILD_TIMEOUT) -> Any:
    """Run ``body`` in a forked child; return what it returns (pickled back), raise what it raises.

    The child is killed (by its pid) if it does not answer within ``timeout``.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_fd)
        code = 0
        try:
            result: Any = ("ok", body())
        except BaseException as exc:  # report everything to the parent
            result = ("error", f"{exc!r}\n{traceback.format_exc()}")
            code = 1
        try:
            with os.fdopen(write_fd, "wb") as out:
                out.write(pickle.dumps(result))
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks: list[bytes] = []
    try:
        with os.fdopen(read_fd, "rb") as inp:
            while True:
                ready, _, _ = select.select([inp], [], [], timeout)
                if not ready:
                    os.kill(pid, signal.SIGKILL)
                    raise TimeoutError(f"child {pid} did not finish within {timeout} s")
                chunk = os.read(inp.fileno(), 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.waitpid(pid, 0)
    status, value = pickle.loads(b"".join(chunks))
    if status != "ok":
        raise AssertionError(f"child failed: {value}")
    return value


@contextlib.contextmanager
def raw_db(tier_dir: Path) -> Iterator[sqlite3.Connection]:
    """A direct SQLite connection to a tier's ``cache.db``: what another writer could do."""
    con = sqlite3.connect(str(tier_dir / "entries" / "cache.db"), isolation_level=None)
    try:
        yield con
    finally:
        con.close()


def drop_privileges(path: Path, uid: int = 65534) -> None:
    """In a forked child: own ``path`` (recursively) by ``uid`` and become that user."""
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)
    os.chown(path, uid, uid)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def modes_under(path: Path) -> dict[str, int]:
    """Permission bits of every file and folder under ``path`` (and of ``path``)."""
    found = {str(path): os.lstat(path).st_mode & 0o777}
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            full = os.path.join(root, name)
            found[full] = os.lstat(full).st_mode & 0o777
    return found
