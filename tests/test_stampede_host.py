"""``lock="host"``: one computation per key in every process of the host (issue 9).

Real processes over one disk directory, each counting its computations in a shared file:
4 processes x 16 threads compute once; a holder killed with SIGKILL is taken over within its
lease; a holder that outlives its lease is fenced off (its late store is refused, counted and
logged). Processes report what they do on stdout ("computing", "waiting" when their caller
sleeps between two attempts at the lease); every process is stopped by its pid. In one
process, two caches over one directory stand for two processes where a test needs to look
at the event loop; faults of the lock directory degrade to per-process single-flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cacheplug import Cache, DiskTier, MemoryTier, cached
from tests.disk_support import drop_privileges, in_child

ROOT = Path(__file__).resolve().parent.parent
BOUND = 30.0  # seconds a process may take to answer (never reached when correct)

CHILD = textwrap.dedent(
    """
    import json, os, sys, threading, time
    import cacheplug.lease
    from cacheplug import Cache, DiskTier, MemoryTier, cached

    directory, counter, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    lock_timeout, threads = float(sys.argv[4]), int(sys.argv[5])
    disk = DiskTier(directory, timeout=5.0)
    cache = Cache([MemoryTier(), disk])

    def say(line):
        print(line, flush=True)

    @cached(cache=cache, version="1", lock="host", lock_timeout=lock_timeout)
    def report(x):
        with open(counter, "a") as out:
            out.write(f"{os.getpid()}\\n")
        say("computing")
        if mode == "hold":
            sys.stdin.readline()  # until the parent lets it go (or kills it)
        else:
            time.sleep(0.3)
        return {"x": x, "by": os.getpid()}

    def say_when_waiting():
        # "waiting": this thread sleeps between two attempts at the lease.
        acquire, said = cacheplug.lease.LeaseStore.acquire.__code__, []
        def hook(frame, event, arg):
            if event == "c_call" and arg is time.sleep and frame.f_code is acquire and not said:
                said.append(True)
                say("waiting")
        sys.setprofile(hook)

    say("ready")
    sys.stdin.readline()
    results = []

    def call():
        if mode == "wait":
            say_when_waiting()
        results.append(report(1))

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stats = cache.stats()
    say(json.dumps({
        "results": results, "pid": os.getpid(), "stale_sets": stats.stale_sets,
        "faults": dict(stats.faults), "misses": stats.misses, "coalesced": stats.coalesced,
        "hits": stats.hits, "errors": stats.errors,
    }))
    """
)


class Child:
    """One process running CHILD, spoken to line by line."""

    def __init__(self, directory: Path, counter: Path, mode: str, lock_timeout: float, threads: int) -> None:
        self.log = Path(tempfile.mkstemp(prefix="child-", suffix=".err", dir=directory.parent)[1])
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    str(directory),
                    str(counter),
                    mode,
                    str(lock_timeout),
                    str(threads),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=ROOT,
                env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        self.pid = self.proc.pid
        self.buffer = b""

    def expect(self, start: str, timeout: float = BOUND) -> str:
        """The next line starting with ``start`` (earlier lines are skipped)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                text = line.decode()
                if text.startswith(start):
                    return text
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(remaining, 0))
            if not ready:
                raise AssertionError(
                    f"process {self.pid} did not say {start!r} within {timeout} s: {self.errors()}"
                )
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"process {self.pid} ended before saying {start!r}: {self.errors()}")
            self.buffer += chunk

    def result(self, timeout: float = BOUND) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.expect("{", timeout))
        return out

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def errors(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(BOUND)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def place(tmp_path: Path) -> Iterator[tuple[Path, Path, list[Child]]]:
    children: list[Child] = []
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    counter = tmp_path / "computations"
    counter.touch()
    try:
        yield directory, counter, children
    finally:
        for child in children:
            child.stop()


def _spawn(place: tuple[Path, Path, list[Child]], mode: str, lock_timeout: float, threads: int) -> Child:
    directory, counter, children = place
    child = Child(directory, counter, mode, lock_timeout, threads)
    children.append(child)
    child.expect("ready")
    return child


def _computations(counter: Path) -> list[int]:
    return [int(line) for line in counter.read_text().split()]


def test_4_processes_of_16_threads_compute_a_cold_key_once(place: Any) -> None:
    _, counter, _ = place
    children = [_spawn(place, "normal", 30.0, 16) for _ in range(4)]
    for child in children:
        child.send("go")
    outs = [child.result() for child in children]
    (holder,) = _computations(counter)
    for out in outs:
        assert out["results"] == [{"x": 1, "by": holder}] * 16
        assert out["faults"] == {} and out["errors"] == 0
        assert out["misses"] + out["coalesced"] + out["hits"] == 16
    assert sum(out["misses"] for out in outs) == 1
    assert holder in {out["pid"] for out in outs}


def test_a_holder_killed_with_sigkill_is_taken_over_within_its_lease(place: Any) -> None:
    _, counter, _ = place
    lease = 3.0
    holder = _spawn(place, "hold", lease, 1)
    holder.send("go")
    holder.expect("computing")
    other = _spawn(place, "wait", lease, 1)
    other.send("go")
    other.expect("waiting")  # it waits for the holder's lease
    os.kill(holder.pid, signal.SIGKILL)
    killed = time.monotonic()
    other.expect("computing", timeout=lease + 1)
    took_over = time.monotonic() - killed
    out = other.result()
    assert took_over <= lease + 1
    assert out["results"] == [{"x": 1, "by": other.pid}]
    assert _computations(counter) == [holder.pid, other.pid]
    assert out["faults"] == {}


def test_a_holder_that_outlived_its_lease_is_fenced_off(place: Any) -> None:
    _, counter, _ = place
    lease = 1.0
    slow = _spawn(place, "hold", lease, 1)
    slow.send("go")
    slow.expect("computing")
    taker = _spawn(place, "wait", lease, 1)
    taker.send("go")
    taker.expect("waiting")
    taker.expect("computing")  # the slow holder is alive, but its lease ran out
    taken = taker.result()
    assert taken["results"] == [{"x": 1, "by": taker.pid}] and taken["stale_sets"] == 0
    slow.send("release")  # now the slow holder finishes and tries to store its value
    late = slow.result()
    assert late["results"] == [{"x": 1, "by": slow.pid}]  # its own caller still gets it
    assert late["stale_sets"] == 1  # ... but it was not stored
    assert "outlived its host lease" in slow.errors()
    reader = _spawn(place, "normal", lease, 1)
    reader.send("go")
    assert reader.result()["results"] == [{"x": 1, "by": taker.pid}]  # the taker's value stayed
    assert _computations(counter) == [slow.pid, taker.pid]


# -- in one process: two caches over one directory ----------------------------------------------


class Tracker:
    """What the twins below share: the computations made, the gate they wait at (an object
    with no stable key, so the closure's key is the same in both caches)."""

    def __init__(self) -> None:
        self.computed: list[str] = []
        self.gate = asyncio.Event()


def _twin(cache: Cache, tracker: Tracker) -> Any:
    """An async cached function whose key is the same in every cache (as in two processes)."""

    @cached(cache=cache, version="1", lock="host", lock_timeout=30)
    async def report(x: int) -> dict[str, Any]:
        tracker.computed.append("computed")
        await tracker.gate.wait()
        return {"x": x}

    return report


def test_a_task_waiting_for_the_host_lease_leaves_the_event_loop_free(tmp_path: Path) -> None:
    disk_a, disk_b = DiskTier(tmp_path / "d"), DiskTier(tmp_path / "d")
    try:
        with Cache([MemoryTier(), disk_a]) as one, Cache([MemoryTier(), disk_b]) as two:

            async def main() -> tuple[Any, Any, int, list[str]]:
                tracker = Tracker()
                first, second = _twin(one, tracker), _twin(two, tracker)
                holder = asyncio.create_task(first(1))
                await asyncio.sleep(0)  # the holder takes the lease and starts computing
                assert tracker.computed == ["computed"]
                waiter = asyncio.create_task(second(1))
                ticks = 0
                for _ in range(20):  # the loop runs while the waiter polls for the lease
                    await asyncio.sleep(0.005)
                    ticks += 1
                assert not waiter.done()
                tracker.gate.set()
                return await holder, await asyncio.wait_for(waiter, BOUND), ticks, tracker.computed

            held, waited, ticks, computed = asyncio.run(main())
            assert held == waited == {"x": 1}
            assert computed == ["computed"]  # the waiter found the holder's value: no second computation
            assert ticks == 20
            assert two.stats().coalesced == 1 and two.stats().faults == {}
    finally:
        disk_a.close()
        disk_b.close()


# -- faults of the lock directory ------------------------------------------------------------------


def _stampede(cache: Cache, threads: int = 8) -> tuple[list[Any], list[int]]:
    computed: list[int] = []
    barrier = threading.Barrier(threads)

    @cached(cache=cache, lock="host")
    def f(x: int) -> int:
        computed.append(x)
        time.sleep(0.2)
        return x * 2

    results: list[Any] = []

    def call() -> None:
        barrier.wait()
        try:
            results.append(f(21))
        except BaseException as exc:  # pragma: no cover - reported by the assertion
            results.append(exc)

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(BOUND)
    return results, computed


@pytest.fixture
def disk_cache(tmp_path: Path) -> Iterator[Cache]:
    disk = DiskTier(tmp_path / "d")
    try:
        with Cache([MemoryTier(), disk]) as cache:
            yield cache
    finally:
        disk.close()


def test_a_lock_directory_that_cannot_be_made_degrades_to_one_process(
    disk_cache: Cache, tmp_path: Path
) -> None:
    (tmp_path / "d" / "locks").write_text("not a folder")
    results, computed = _stampede(disk_cache)
    assert results == [42] * 8 and computed == [21]  # still one computation in this process
    assert disk_cache.stats().faults.get("lock.acquire", 0) >= 1


def test_a_deleted_lock_directory_is_made_again(disk_cache: Cache, tmp_path: Path) -> None:
    assert disk_cache.get_or_compute("a", lambda: 1, lock="host") == 1
    shutil.rmtree(tmp_path / "d" / "locks")
    assert disk_cache.get_or_compute("b", lambda: 2, lock="host") == 2
    assert (tmp_path / "d" / "locks").is_dir()
    assert disk_cache.stats().faults == {}


def test_a_corrupt_lock_file_is_a_fault_and_is_repaired(disk_cache: Cache) -> None:
    leases = disk_cache.leases
    assert leases is not None
    _, stripe = leases._paths(disk_cache.user_key("b"))
    assert disk_cache.get_or_compute("b", lambda: 1, lock="host") == 1
    Path(stripe).write_bytes(b"\x00" * 64)
    disk_cache.delete("b")
    assert disk_cache.get_or_compute("b", lambda: 2, lock="host") == 2  # computed without the lease
    assert disk_cache.stats().faults == {"lock.acquire": 1}
    disk_cache.delete("b")
    assert disk_cache.get_or_compute("b", lambda: 3, lock="host") == 3  # the stripe was repaired
    assert disk_cache.stats().faults == {"lock.acquire": 1}


def test_a_read_only_lock_directory_degrades_without_error(tmp_path: Path) -> None:
    """As ``nobody`` (root ignores permission bits), in a forked child."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user (as that user, permission bits apply anyway)")
    base = Path(tempfile.mkdtemp(prefix="cacheplug-ro-", dir="/tmp"))
    base.chmod(0o755)

    def body() -> tuple[list[Any], list[int], dict[str, int]]:
        drop_privileges(base)
        directory = base / "d"
        with contextlib.closing(DiskTier(directory)) as disk, Cache([MemoryTier(), disk]) as cache:
            (directory / "locks").mkdir(mode=0o700)
            (directory / "locks").chmod(0o500)
            results, computed = _stampede(cache)
            return results, computed, dict(cache.stats().faults)

    try:
        results, computed, faults = in_child(body)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert results == [42] * 8 and computed == [21]
    assert faults.get("lock.acquire", 0) >= 1
