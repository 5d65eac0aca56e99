"""A forked child never uses (nor closes) its parent's SQLite connections (issue 6, item 7, disk part)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import traceback
from pathlib import Path

from cacheplug import DiskTier
from cacheplug.envelope import Entry
from cacheplug.tiers import diskstore

CHILDREN = 50


def _entry(value: object) -> Entry:
    return Entry(value, 100.0, None, 0)


def _child(tier: DiskTier, n: int) -> int:
    """Exit status of a child: 0 when it could write and read its keys on fresh connections."""
    inherited = [c for c in diskstore._inherited if isinstance(c, sqlite3.Connection)]
    if len(inherited) < 2:
        return 3  # the parent's two threads' connections must have been kept
    for con in inherited:
        try:
            con.total_changes  # noqa: B018 - raises if the connection was closed in the child
        except sqlite3.ProgrammingError:
            return 4
    for i in range(5):
        tier.set(f"child{n}:{i}", _entry((n, i)))
    ok = all(tier.get(f"child{n}:{i}").value == (n, i) for i in range(5))
    if not ok or tier.get("parent").value != "p":
        return 5
    if tier._dc._local.con in inherited:  # type: ignore[union-attr]
        return 6
    return 0


def test_forked_children_get_their_own_connections_and_the_parent_keeps_working(tmp_path: Path) -> None:
    # 50 children writing at once on a small machine wait longer than the call path's 50 ms
    # for the write lock; this test is about connections, not lock waits.
    tier = DiskTier(tmp_path / "tier", timeout=20.0)
    tier.set("parent", _entry("p"))
    stop = threading.Event()
    started = threading.Event()
    reads: list[bool] = []

    def reader() -> None:  # a second parent thread with its own connection, busy during forks
        while not stop.is_set():
            reads.append(tier.get("parent").value == "p")
            started.set()

    thread = threading.Thread(target=reader)
    thread.start()
    pids: list[int] = []
    try:
        assert started.wait(30)
        for n in range(CHILDREN):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                code = 1
                try:
                    code = _child(tier, n)
                except BaseException:
                    traceback.print_exc()  # shown in the test's captured output
                finally:
                    os._exit(code)
            pids.append(pid)
        hung: list[int] = []

        def kill_hung() -> None:
            for pid in list(pids):
                hung.append(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

        watchdog = threading.Timer(60, kill_hung)
        watchdog.start()
        statuses = {}
        for pid in list(pids):
            _, status = os.waitpid(pid, 0)
            pids.remove(pid)
            statuses[pid] = os.waitstatus_to_exitcode(status)
        watchdog.cancel()
        assert not hung, f"{len(hung)} children hung"
        assert sorted(statuses.values()) == [0] * CHILDREN, statuses
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        stop.set()
        thread.join(timeout=30)
    assert all(reads)
    tier.set("after", _entry("a"))
    assert tier.get("after").value == "a"
    assert tier.get("child7:3").value == (7, 3)
    tier.close()
