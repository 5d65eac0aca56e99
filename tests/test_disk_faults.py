"""Disk tier faults never fail the caller (issue 6, items 4, 5 and 11, the disk tier's part).

Read-only, full, corrupt and uncreatable directories leave a tier *down* (its operations
raise ``TierUnavailable``, counted by the coordinator as faults) instead of raising at
construction; a corrupt database is quarantined and rebuilt; a deleted directory is
reopened by ``check()``; a locked database is waited on for at most ``timeout``.

Where the version store beside the tier cannot open either (read-only, uncreatable), the
cache is built over :class:`~tests.tier_doubles.TierOnly`, which hides ``versions()``: the version store's own
faults are versions.py's part of item 4.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cacheplug import MISS, Cache, DiskTier, MemoryTier, cached
from cacheplug.envelope import Entry
from cacheplug.errors import TierUnavailable
from tests.disk_support import drop_privileges, in_child
from tests.tier_doubles import TierOnly

KEY = "|fn:app.f@0123456789ab(i1)"


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _entry(value: Any) -> Entry:
    return Entry(value, 100.0, None, 0)


def _served(tier: Any) -> dict[str, int]:
    """A cached call over ``tier`` returns the right values; the cache's fault counters."""
    calls: list[int] = []
    with Cache([MemoryTier(), tier]) as cache:

        @cached(cache=cache)
        def triple(x: int) -> int:
            calls.append(x)
            return 3 * x

        assert [triple(2), triple(2), triple(5)] == [6, 6, 15]
        assert calls == [2, 5]
        faults: dict[str, int] = cache.stats()["faults"]
        return faults


# -- down, retried every 10 s ------------------------------------------------------------


def test_uncreatable_directory_is_down_and_retried_every_10_seconds(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the folder should be")
    clock = ManualClock()
    tier = DiskTier(blocker / "tier", monotonic=clock)
    assert tier.down_reason is not None and "NotADirectory" in tier.down_reason
    faults = _served(TierOnly(tier))
    assert faults["disk.get"] >= 1 and faults["disk.set"] >= 1
    blocker.unlink()
    blocker.mkdir(mode=0o700)
    clock.now += 9.9
    with pytest.raises(TierUnavailable, match="retries every 10 s"):
        tier.get(KEY)  # not retried yet
    clock.now += 0.2
    tier.set(KEY, _entry("back"))
    assert tier.get(KEY).value == "back" and tier.down_reason is None
    tier.close()


def test_read_only_directory_does_not_raise_and_calls_are_served(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    seeded = DiskTier(directory)
    seeded.set(KEY, _entry("seeded"))
    seeded.close()

    def body() -> tuple[dict[str, int], str | None]:
        drop_privileges(tmp_path)
        for root, _dirs, files in os.walk(directory):
            for name in files:
                os.chmod(os.path.join(root, name), 0o400)
            os.chmod(root, 0o500)
        tier = DiskTier(directory)
        return _served(TierOnly(tier)), tier.down_reason

    faults, reason = in_child(body)
    assert reason is not None and "Permission denied" in reason
    assert faults == {"disk.get": 2, "disk.set": 2}


def test_corrupt_database_at_open_is_quarantined_and_rebuilt(tmp_path: Path) -> None:
    directory = tmp_path / "tier"
    DiskTier(directory).close()
    (directory / "entries" / "cache.db").write_bytes(b"this is not a database" * 200)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            (directory / "entries" / f"cache.db{suffix}").unlink()
    tier = DiskTier(directory)
    assert tier.quarantined == 1 and tier.down_reason is None
    assert [p.name.startswith("entries.corrupt-") for p in directory.iterdir()].count(True) == 1
    assert not _served(tier)
    tier.close()


def _malformed_on_read(directory: Path) -> list[str]:
    """Fill a tier, then damage its table pages (not the header or the settings)."""
    tier = DiskTier(directory)
    keys = [f"k{i}" for i in range(400)]
    for key in keys:
        tier.set(key, _entry("v" * 400))
    tier.close()
    db = directory / "entries" / "cache.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(db.read_bytes())
    page = 4096
    for start in range(len(data) // 2 // page * page, len(data), page):
        data[start : start + page] = b"\xff" * page
    db.write_bytes(bytes(data))
    return keys


def test_malformed_database_on_read_is_quarantined_and_the_call_served(tmp_path: Path) -> None:
    directory = tmp_path / "tier"
    keys = _malformed_on_read(directory)
    tier = DiskTier(directory)
    failed = None
    for key in reversed(keys):
        try:
            tier.get(key)
        except sqlite3.DatabaseError as exc:
            failed = exc
            break
    assert tier.quarantined == 1
    assert failed is not None and "malformed" in str(failed)
    assert tier.get(keys[0]) is MISS  # the rebuilt, empty database
    tier.set(KEY, _entry("fresh"))
    assert tier.get(KEY).value == "fresh"
    assert not _served(tier)
    tier.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir(mode=0o700)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root and mount): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_fails_sets_keeps_reads_and_a_new_tier_still_serves(small_disk: Path) -> None:
    directory = small_disk / "tier"
    tier = DiskTier(directory)
    tier.set(KEY, _entry("kept"))
    tier.versions()  # the version store beside it, made while there is room
    with open(small_disk / "ballast", "wb") as ballast, contextlib.suppress(OSError):
        while True:
            ballast.write(b"\0" * 65536)
            ballast.flush()
    with pytest.raises(Exception, match=r"full|No space"):
        for i in range(200):
            tier.set(f"more{i}", _entry(os.urandom(20_000)))
    assert tier.get(KEY).value == "kept"  # reads keep working
    fresh = DiskTier(directory)  # a new process on the full disk: opened for reading
    assert fresh.down_reason is None
    assert fresh.get(KEY).value == "kept"
    faults = _served(fresh)
    assert faults == {"disk.set": 2}
    tier.close()
    fresh.close()


# -- deleted directory (item 5) ----------------------------------------------------------


def test_deleted_directory_is_noticed_by_check_and_reopened(tmp_path: Path) -> None:
    directory = tmp_path / "tier"
    tier = DiskTier(directory)
    tier.set(KEY, _entry("before"))
    assert tier.check() is False  # nothing changed
    shutil.rmtree(directory)
    assert tier.check() is True
    assert (directory / "entries" / "cache.db").exists()
    assert (directory.stat().st_mode & 0o777) == 0o700
    assert tier.get(KEY) is MISS
    tier.set(KEY, _entry("after"))
    assert tier.get(KEY).value == "after"
    assert DiskTier(directory).get(KEY).value == "after"  # really in the new files
    assert tier.check() is False
    tier.close()


def test_directory_replaced_by_a_world_writable_one_is_refused_not_raised(tmp_path: Path) -> None:
    directory = tmp_path / "tier"
    clock = ManualClock()
    tier = DiskTier(directory, monotonic=clock)
    shutil.rmtree(directory)
    directory.mkdir()
    directory.chmod(0o777)  # someone else's trap
    assert tier.check() is False
    assert tier.down_reason is not None and "refused" in tier.down_reason
    with pytest.raises(TierUnavailable):
        tier.get(KEY)
    directory.chmod(0o700)
    clock.now += 10
    assert tier.get(KEY) is MISS  # reopened at the next retry
    tier.close()


def test_replaced_database_is_noticed_by_check(tmp_path: Path) -> None:
    directory = tmp_path / "tier"
    tier = DiskTier(directory)
    tier.set(KEY, _entry("old"))
    os.rename(directory / "entries", directory / "elsewhere")
    other = DiskTier(directory)
    other.set(KEY, _entry("new"))
    assert tier.check() is True
    assert tier.get(KEY).value == "new"
    tier.close()
    other.close()


# -- bounded waits (item 11) -------------------------------------------------------------

_HOLDER = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=20)
if sys.argv[2] == "exclusive-mode":
    con.execute("PRAGMA locking_mode=EXCLUSIVE")
con.execute("BEGIN EXCLUSIVE")
con.execute("UPDATE Settings SET value = value WHERE key = 'count'")
print("ready", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def _locked(db: Path, mode: str) -> Iterator[None]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.parametrize("mode", ["begin-exclusive", "exclusive-mode"])
def test_locked_database_is_waited_on_for_at_most_the_timeout(tmp_path: Path, mode: str) -> None:
    directory = tmp_path / "tier"
    tier = DiskTier(directory)
    tier.set(KEY, _entry("v"))
    tier.close()  # an exclusive-mode lock on a WAL database needs no other connection open
    with _locked(directory / "entries" / "cache.db", mode):
        for op in (lambda: tier.get(KEY), lambda: tier.set("other", _entry("w"))):
            started = time.monotonic()
            with contextlib.suppress(Exception):
                op()
            assert time.monotonic() - started < 0.5
        started = time.monotonic()
        faults = _served(tier)
        assert time.monotonic() - started < 2.0, "each call waits at most 50 ms per operation"
        assert faults.get("disk.set", 0) >= 1
    tier.set(KEY, _entry("after"))
    assert tier.get(KEY).value == "after"
    tier.close()
