"""Async calls never block the event loop for another process's lock (issue: smaller ones, 11).

Another process holds an exclusive SQLite lock on the disk tier's database and the version
store's file lock. Three concurrent async cached calls still finish within 0.2 s (a store
that cannot get the lock within the bounded wait is skipped and counted), and ``ainvalidate``
waits for the lock in a worker thread: the loop never stalls for more than 60 ms meanwhile.
The time bounds are the issue's own figures, with the lock held by a real process.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from pathlib import Path

from cacheplug import Cache, DiskTier, MemoryTier, cached
from tests.versions_support import wait_child


def _hold_locks(db: Path, epoch: Path, ready: int, release: int) -> None:  # pragma: no cover
    con = sqlite3.connect(str(db), isolation_level=None, timeout=5)
    con.execute("BEGIN EXCLUSIVE")
    with open(epoch, "rb+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.write(ready, b"r")
        os.read(release, 1)
    con.execute("ROLLBACK")


def test_async_calls_and_ainvalidate_do_not_stall_the_loop_while_another_process_holds_the_locks(
    tmp_path: Path,
) -> None:
    disk = DiskTier(tmp_path / "cache")
    cache = Cache([MemoryTier(), disk])
    cache.invalidate(tags=["warm-up"])  # the journal and epoch files exist

    @cached(cache=cache, tags=["item:{i}"], version="1")
    async def fetch(i: int) -> int:
        return i * 10

    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    epoch = next((tmp_path / "cache").rglob("epoch"))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the lock holder
        try:
            _hold_locks(tmp_path / "cache" / "entries" / "cache.db", epoch, ready_w, release_r)
        finally:
            os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"r"

        async def scenario() -> tuple[float, float, list[int]]:
            stalls = [0.0]
            stop = asyncio.Event()

            async def ticker() -> None:
                last = time.perf_counter()
                while not stop.is_set():
                    await asyncio.sleep(0.002)
                    now = time.perf_counter()
                    stalls[0] = max(stalls[0], now - last)
                    last = now

            tick = asyncio.create_task(ticker())
            await asyncio.sleep(0.01)
            start = time.perf_counter()
            values = list(await asyncio.gather(fetch(1), fetch(2), fetch(3)))
            calls = time.perf_counter() - start
            invalidation = asyncio.create_task(cache.ainvalidate(tags=["item:1"]))
            await asyncio.sleep(0.3)  # the worker thread waits for the lock; the loop ticks on
            assert not invalidation.done(), "the invalidation did not wait for the other process's lock"
            os.write(release_w, b"x")
            await asyncio.wait_for(invalidation, 15)
            stop.set()
            await tick
            return calls, stalls[0], values

        calls, stall, values = asyncio.run(scenario())
    finally:
        os.write(release_w, b"x")
        assert wait_child(pid, 15) is not None, "the lock holder had to be killed"
    assert values == [10, 20, 30]
    assert calls <= 0.2, f"3 concurrent async calls took {calls:.3f} s"
    assert stall <= 0.06, f"the event loop stalled for {stall * 1000:.0f} ms"
    assert cache.stats()["faults"].get("disk.set", 0) >= 1  # the skipped stores were counted
    cache.close()
    disk.close()
