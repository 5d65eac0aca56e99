"""An invalidation that could not be recorded is owed: no shared tier is read until it is.

The fault is real: another connection holds the journal's write lock past the store's lock
timeout. Another process on the same directory, which never heard of the invalidation,
stores values in the disk tier meanwhile; this process must not serve them. Once the lock
is released, the owed invalidation is recorded (by the watcher's retry or by the next
invalidation) and the other process sees it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import cacheplug
from cacheplug import Cache, DiskTier, InvalidationError, get_cache
from cacheplug.cache import health

from .owed_support import computed, f, g
from .peer_support import Peer


@contextlib.contextmanager
def locked_journal(cache: Cache) -> Iterator[None]:
    """Hold the journal's write lock from another connection (the store gives up after 0.2 s)."""
    store: Any = cache.versions
    store._journal._timeout = 0.2  # the test hook of tests/test_invalidation_api.py
    locker = sqlite3.connect(os.path.join(store.directory, "journal", "journal.db"), isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        locker.execute("ROLLBACK")
        locker.close()


@dataclass
class Setup:
    cache: Cache
    source: Path
    peer: Peer


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    directory = tmp_path / "cache"
    source = tmp_path / "source"
    source.write_text("1")
    monkeypatch.setenv("CACHEPLUG_DIR", str(directory))
    monkeypatch.setenv("CACHEPLUG_TEST_SOURCE", str(source))
    cache = get_cache()  # the default cache, on the directory, as in the other process
    assert isinstance(cache.tiers[1], DiskTier)
    computed.clear()
    peer = Peer(
        "from tests.owed_support import serve; serve()",
        {"CACHEPLUG_DIR": str(directory), "CACHEPLUG_TEST_SOURCE": str(source)},
    )
    try:
        yield Setup(cache, source, peer)
    finally:
        peer.stop()


@contextlib.contextmanager
def failed_invalidation(setup: Setup) -> Iterator[None]:
    """An invalidation of ``item:1`` that cannot be recorded; the journal stays locked inside
    the block, so that nothing (not the store's watcher either) can record it meanwhile."""
    cache, peer, source = setup.cache, setup.peer, setup.source
    assert f(1) == "f1=1"
    assert peer.ask("f 1") == ["f1=1", "cached"]  # from the disk tier, into its memory
    source.write_text("2")  # the write the invalidation is for
    with locked_journal(cache):
        with pytest.raises(InvalidationError):
            cache.invalidate(tags=["item:1"])
        assert cache.judge.owed  # owed to the host
        assert peer.ask("f 1") == ["f1=1", "cached"]  # the other process never heard of it
        yield


def test_while_an_invalidation_is_owed_no_shared_tier_is_read(setup: Setup) -> None:
    peer = setup.peer
    with failed_invalidation(setup):
        assert f(1) == "f1=2" and computed == ["f1", "f1"]  # this process does not serve the old value
        # The other process stores a value in the disk tier after the failure (computed from
        # whatever it had; here fresh, but this process cannot know): it is not read here.
        assert peer.ask("g 5") == ["g5=2", "computed"]
        assert g(5) == "g5=2" and computed[-1] == "g5"
        assert setup.cache.get("anything") is None


def test_the_watcher_records_the_owed_invalidation_once_it_can(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, peer = setup.cache, setup.peer
    monkeypatch.setattr(health, "RETRY_INTERVAL", 0.0)
    with failed_invalidation(setup):
        cache.health.on_tick(False)  # what the store's watcher calls about once a second
        assert cache.judge.owed  # still locked: still owed
    cache.health.on_tick(False)  # (the watcher's own thread may have been first: either records it)
    assert not cache.judge.owed
    assert peer.ask("f 1") == ["f1=2", "computed"]  # the other process sees it now
    assert peer.ask("g 6") == ["g6=2", "computed"]
    assert g(6) == "g6=2" and "g6" not in computed  # and the disk tier is read again


def test_the_next_invalidation_records_the_owed_one_too(setup: Setup) -> None:
    cache, peer = setup.cache, setup.peer
    cache.health._settle_at = float("inf")  # the watcher does not retry: the next invalidation must
    with failed_invalidation(setup):
        pass
    assert cache.judge.owed
    cache.invalidate(tags=["unrelated"])
    assert not cache.judge.owed
    assert peer.ask("f 1") == ["f1=2", "computed"]


def test_a_failed_invalidation_inside_a_batch_is_owed_too(setup: Setup) -> None:
    cache = setup.cache
    cache.health._settle_at = float("inf")
    assert f(1) == "f1=1"
    with locked_journal(cache), pytest.raises(InvalidationError), cacheplug.batch():
        cacheplug.invalidate(tags=["item:1"])
    assert cache.judge.owed
    cache.invalidate(tags=["unrelated"])
    assert not cache.judge.owed
