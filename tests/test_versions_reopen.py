"""A reopen of a host version store never nests, and a mirror is never swapped under a low floor.

The watcher is pinned (``_WATCH_INTERVAL``): each test drives its round by hand.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import cacheplug.versions
from cacheplug import Cache, DiskTier, MemoryTier, versions
from cacheplug.versions import HostVersions, VersionsUnavailable


@pytest.fixture(autouse=True)
def _no_watcher_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cacheplug.versions, "_WATCH_INTERVAL", 3600.0)


def _behind_its_epoch(directory: Path) -> HostVersions:
    """A store broken by a world-writable journal folder, then fixed: while broken its epoch
    moved (so that fast paths recheck) with no record, so the journal is behind the epoch."""
    store = HostVersions(str(directory))
    store.bump(["a"])
    (directory / "journal").chmod(0o777)
    with pytest.raises(VersionsUnavailable, match="group- or world-writable"):
        store.check()
    (directory / "journal").chmod(0o700)
    assert store.epoch[0] == 2 and store._journal.high() == 1
    return store


def _messages(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("by", ["check", "watcher round"])
def test_a_reopen_onto_a_journal_behind_its_epoch_reopens_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, by: str
) -> None:
    """Its replay finds records missing: that ends in "everything stale", not in another
    reopen (which found the same, and recursed to the recursion limit)."""
    directory = tmp_path / "versions"
    store = _behind_its_epoch(directory)
    try:
        generation = store.generation
        with caplog.at_level(logging.WARNING, logger="cacheplug"):
            if by == "check":
                assert store.check()
            else:
                store._tick()
        assert store.generation == generation + 1
        assert _messages(caplog, "was reopened") == 1
        assert _messages(caplog, "is incomplete") == 1
        assert store._broken is None and store.floor == store._seen == store.epoch[0] == 2
        assert sorted(p.name for p in (directory / "journal").iterdir() if "corrupt" in p.name) == []
        store._tick()  # converged: the next round finds nothing to reopen
        assert store.generation == generation + 1
        assert store.bump(["b"]) == 3 and store.sync() == 3 and store.mirror == {"b": 3}
    finally:
        store.close()


class _Observed(HostVersions):
    """Records, after every change of ``mirror`` or ``floor``, whether a reader would now
    judge fresh an entry checked at ``stale_seq`` that carries tag ``a`` (invalidated after)."""

    stale_seq = 0
    views: list[bool]

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in ("mirror", "floor") and "views" in self.__dict__:
            fresh = self.stale_seq >= self.floor and self.mirror.get("a", 0) <= self.stale_seq
            self.views.append(fresh)


def test_a_reload_raises_the_floor_before_it_swaps_the_mirror(tmp_path: Path) -> None:
    directory = tmp_path / "versions"
    store = _Observed(str(directory))
    try:
        store.bump(["a"])
        (directory / "journal").chmod(0o777)
        with pytest.raises(VersionsUnavailable):
            store.check()
        (directory / "journal").chmod(0o700)
        store.views = []
        assert store.check()  # the reload: the snapshot (none), the records, the gap
        assert store.views and not any(store.views)
    finally:
        store.close()


def test_a_journal_found_incomplete_raises_the_floor_before_it_empties_the_mirror(tmp_path: Path) -> None:
    directory = tmp_path / "versions"
    store = _Observed(str(directory))
    try:
        store.bump(["a"])
        with sqlite3.connect(directory / "journal" / "journal.db") as db:
            db.execute("DELETE FROM records")  # the journal lost its records...
        store.epoch[0] = 2  # ... and the epoch moved past them (no reopen: same files)
        store.views = []
        assert store.sync() == 2
        assert store.floor == 2 and store.mirror == {}
        assert store.views and not any(store.views)
    finally:
        store.close()


def test_the_watcher_stops_with_the_last_cache_on_its_directory(tmp_path: Path) -> None:
    """It used to outlive every cache and recreate the directory after the user deleted it."""
    directory = tmp_path / "cache"

    def watchers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("cacheplug-versions-watcher")]

    first, second = (
        Cache([MemoryTier(), DiskTier(str(directory))]),
        Cache([MemoryTier(), DiskTier(str(directory))]),
    )
    first.set("k", 1)
    first.close()
    assert watchers(), "the other cache still judges against the store"
    second.invalidate(tags=["t"])  # still recorded for the host
    assert second.get("k") == 1
    second.close()
    assert not watchers()
    shutil.rmtree(directory)
    versions.host_versions(str(tmp_path / "elsewhere")).close()  # the registry still works
    assert not directory.exists()
    with Cache([MemoryTier(), DiskTier(str(directory))]) as again:  # reopened on demand
        again.set("k", 2)
        assert again.get("k") == 2
