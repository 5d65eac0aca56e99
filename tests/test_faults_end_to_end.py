"""A new process meeting a broken cache directory is served, never failed (guarantee 5).

Each case runs a real process on a real directory that is read-only, full, corrupt,
uncreatable, of a newer format or deleted while in use, and checks what the issue asks:
the call is answered; what may be served follows coherence (a process that cannot read the
host's invalidations serves nothing cached; one that can read but not record them serves,
and its ``invalidate()`` drops locally and then raises); the fault is counted.

Tests run as root here, and root ignores permission bits, so the read-only case runs its
processes as ``nobody``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cacheplug import Cache, DiskTier, MemoryTier, cached
from tests.disk_support import drop_privileges, in_child

NOBODY = 65534

SCRIPT = textwrap.dedent(
    """
    from cacheplug import InvalidationError, cached, get_cache, invalidate

    computed = []

    @cached(tags=["item:{x}"], version="1")
    def double(x):
        computed.append(x)
        return x * 2

    out = {"values": [double(2), double(2), double(3)], "computed_before": len(computed)}
    try:
        invalidate(tags=["item:2"])
        out["invalidate"] = "ok"
    except InvalidationError as exc:
        out["invalidate"] = "raised"
        out["invalidate_error"] = str(exc)
    out["after"] = double(2)
    out["computed"] = len(computed)
    stats = get_cache().stats()
    out["faults"] = stats["faults"]
    out["degraded"] = stats.get("degraded")
    """
)


def _fresh_process_run(directory: Path, user: int | None) -> dict[str, Any]:
    """In a forked child: forget the parent's cacheplug state, then run SCRIPT as a new process."""
    import cacheplug.state

    if user is not None:
        drop_privileges(directory.parent, user)
    cacheplug.state.reset()
    os.environ["CACHEPLUG_DIR"] = str(directory)
    namespace: dict[str, Any] = {}
    exec(compile(SCRIPT, "<script>", "exec"), namespace)
    out: dict[str, Any] = namespace["out"]
    return out


def _run(directory: Path, *, user: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = in_child(lambda: _fresh_process_run(directory, user))
    return out


@pytest.fixture
def place() -> Iterator[Path]:
    """A folder that ``nobody`` can reach (pytest's own temp root is root-only)."""
    base = Path(tempfile.mkdtemp(prefix="cacheplug-ro-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        for top, dirs, _files in os.walk(base):
            for name in [top, *(os.path.join(top, d) for d in dirs)]:
                os.chmod(name, 0o700)
        shutil.rmtree(base)


def test_read_only_directory_is_served_and_invalidate_fails_closed(place: Path) -> None:
    directory = place / "cache"
    first = _run(directory, user=NOBODY)
    assert first["values"] == [4, 4, 6] and first["invalidate"] == "ok"
    for top, _dirs, files in os.walk(directory):
        for name in [top, *(os.path.join(top, f) for f in files)]:
            os.chmod(name, os.stat(name).st_mode & ~0o222)
    os.chmod(directory, 0o500)
    out = _run(directory, user=NOBODY)
    assert out["values"] == [4, 4, 6]
    assert out["degraded"] is None  # it can read the host's invalidations: it serves
    assert out["invalidate"] == "raised"
    # Dropped locally before raising: this process recomputes rather than serve the old value.
    assert out["after"] == 4 and out["computed"] == out["computed_before"] + 1


def test_corrupt_entries_database_is_quarantined_and_rebuilt(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    _run(directory)
    db = directory / "entries" / "cache.db"
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    out = _run(directory)
    assert out["values"] == [4, 4, 6] and out["invalidate"] == "ok"
    assert any(p.name.startswith("entries.corrupt") for p in directory.iterdir()), list(directory.iterdir())
    again = _run(directory)  # the rebuilt tier serves the next process from disk
    assert again["values"] == [4, 4, 6] and again["computed_before"] == 0  # all from disk


def test_corrupt_journal_is_quarantined_and_nothing_older_is_fresh(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    _run(directory)
    journal = next(directory.rglob("journal.db"))
    for extra in ("-wal", "-shm"):
        Path(f"{journal}{extra}").unlink(missing_ok=True)
    journal.write_bytes(b"\x00garbage" * 500)
    out = _run(directory)
    assert out["values"] == [4, 4, 6] and out["invalidate"] == "ok"
    # Entries stored before the rebuild are judged against another incarnation: recomputed.
    assert out["computed_before"] == 2
    assert any("corrupt" in p.name for p in journal.parent.parent.rglob("*")), "journal not moved aside"


def test_uncreatable_directory_is_served_by_computing(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = _run(blocker / "cache")
    assert out["values"] == [4, 4, 6]
    # No version store can exist there, so no invalidation could be seen: nothing is served
    # from any tier, every call computes, and the cache says why.
    assert out["computed_before"] == 3
    assert out["degraded"] and "invalidations" in out["degraded"]
    assert out["invalidate"] == "raised"


def test_journal_of_a_newer_release_serves_nothing_cached(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    _run(directory)
    journal = next(directory.rglob("journal.db"))
    with sqlite3.connect(journal) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'format'")
    out = _run(directory)
    assert out["values"] == [4, 4, 6]
    assert out["degraded"] and "invalidations" in out["degraded"]
    assert out["computed_before"] == 3  # nothing served from any tier: every call computed
    assert out["invalidate"] == "raised"  # and it cannot record invalidations either


@pytest.mark.slow
def test_full_disk_is_served(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        directory = mount / "cache"
        _run(directory)
        filler = mount / "filler"
        with open(filler, "wb") as out_file:
            try:
                while True:
                    out_file.write(b"x" * 65536)
                    out_file.flush()
            except OSError:
                pass
        out = _run(directory)
        assert out["values"] == [4, 4, 6]
        assert out["invalidate"] in ("ok", "raised")
        if out["invalidate"] == "raised":
            assert out["after"] == 4
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_deleted_directory_is_noticed_and_other_processes_invalidations_seen(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    cache = Cache([MemoryTier(), DiskTier(directory)])
    computed: list[int] = []

    @cached(cache=cache, tags=["item:{x}"], version="1")
    def double(x: int) -> int:
        computed.append(x)
        return x * 2

    assert double(2) == 4 and double(2) == 4 and computed == [2]
    reopened = threading.Event()

    def on_tick(was_reopened: bool) -> None:
        if was_reopened:
            reopened.set()

    cache.versions.add_listener(on_tick)  # held weakly: ``on_tick`` lives to the end of the test
    shutil.rmtree(directory)
    assert reopened.wait(10), "the deleted directory was not noticed"
    assert double(2) == 4 and computed == [2, 2], "an entry judged against the old store was served"
    out = _run(directory)  # another process: invalidates item:2 in the recreated directory
    assert out["invalidate"] == "ok"
    assert double(2) == 4 and computed == [2, 2, 2], "the other process's invalidation was not seen"
    cache.close()
