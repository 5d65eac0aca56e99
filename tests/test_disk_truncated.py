"""A ``cache.db`` truncated to 0 bytes while another process has it open (WAL mode) must not
block a new process for diskcache's 60 s: every lock wait at opening is bounded (OPEN_WAIT),
and the tier is then usable or down with counted faults. Also: opening never adds mode bits."""

from __future__ import annotations

import os
import select
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cacheplug import Cache, DiskTier, MemoryTier, cached
from tests.disk_support import in_child

BOUND = 5.0  # seconds: generous; diskcache's own retry loop took 60 s here


@pytest.fixture
def held_open(tmp_path: Path) -> Iterator[Path]:
    """A forked child keeps a DiskTier open on ``tmp_path`` until released; cache.db is then truncated."""
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(ready_r)
            os.close(release_w)
            cache = Cache([MemoryTier(), DiskTier(tmp_path)])
            cache.set("held", 1)
            os.write(ready_w, b"r")
            select.select([release_r], [], [], 60)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(ready_w)
    os.close(release_r)
    try:
        ready, _, _ = select.select([ready_r], [], [], 30)
        assert ready and os.read(ready_r, 1) == b"r", "the holding child did not get ready"
        db = tmp_path / "entries" / "cache.db"
        assert (tmp_path / "entries" / "cache.db-wal").exists()
        db.write_bytes(b"")  # truncated to 0 bytes under the holder
        yield tmp_path
    finally:
        os.write(release_w, b"x")
        os.close(release_w)
        os.close(ready_r)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0


def test_new_process_call_is_bounded_when_cache_db_was_truncated_under_an_open_tier(
    held_open: Path,
) -> None:
    def new_process() -> tuple[float, int, int, dict[str, int]]:
        started = time.monotonic()
        tier = DiskTier(held_open)
        cache = Cache([MemoryTier(), tier])

        @cached(cache=cache)
        def double(x: int) -> int:
            return x * 2

        first = double(21)
        second = double(22)
        faults = dict(cache.stats()["faults"])
        usable = tier._dc is not None
        return time.monotonic() - started, first, second, {"usable": int(usable), **faults}

    elapsed, first, second, report = in_child(new_process, timeout=30)
    assert (first, second) == (42, 44)
    assert elapsed < BOUND, f"took {elapsed:.2f} s"
    # Usable, or down with every disk operation counted as a fault.
    assert report["usable"] or report.get("disk.get", 0) >= 1, report


def test_same_process_truncated_then_a_second_process_opens_within_the_bound(tmp_path: Path) -> None:
    # As /tmp/trial/f3_trunc_cachedb2.py: this process opens a truncated cache.db and keeps it.
    first = Cache([MemoryTier(), DiskTier(tmp_path)])
    first.set("a", 1)
    first.close()
    (tmp_path / "entries" / "cache.db").write_bytes(b"")
    started = time.monotonic()
    holder = Cache([MemoryTier(), DiskTier(tmp_path)])
    assert time.monotonic() - started < BOUND

    @cached(cache=holder)
    def same(x: int) -> int:
        return x

    assert same(1) == 1

    def second_process() -> float:
        begun = time.monotonic()
        cache = Cache([MemoryTier(), DiskTier(tmp_path)])
        cache.invalidate(tags=["x"])
        return time.monotonic() - begun

    assert in_child(second_process, timeout=30) < BOUND
    assert same(2) == 2
    holder.close()


@pytest.mark.parametrize(("before", "after"), [(0o500, 0o500), (0o755, 0o700), (0o700, 0o700)])
def test_opening_only_ever_removes_mode_bits(tmp_path: Path, before: int, after: int) -> None:
    directory = tmp_path / "d"
    directory.mkdir()
    if before & 0o200 == 0:
        (directory / "entries").mkdir(mode=0o700)  # so that the owner need not write to it
    os.chmod(directory, before)
    try:
        tier = DiskTier(directory)
        assert stat.S_IMODE(os.stat(directory).st_mode) == after
        tier.close()
    finally:
        os.chmod(directory, 0o700)
