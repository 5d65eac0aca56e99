"""Faults are counted exactly and logged sparingly; a blind cache sees again once it can.

A broken disk must not flood the log: each kind of fault (cache, tier, operation, exception
type) is logged at most once per ``FAULT_LOG_INTERVAL`` (10 s), and counted every time.
A cache that could not read the host's invalidations serves nothing cached and retries
every ``RETRY_INTERVAL`` (10 s); once the store is readable again it serves as usual.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

import cacheplug.cache.health
import cacheplug.faults
import cacheplug.versions
from cacheplug import Cache, DiskTier, MemoryTier, cached
from tests.tier_doubles import BrokenTier


class FailingTier(BrokenTier):
    """A tier whose every operation raises ``error`` (set per test)."""

    def __init__(self) -> None:
        super().__init__(name="flaky", error=OSError("unreachable"))


def _fault_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "flaky." in r.getMessage()]


def test_a_fault_is_counted_every_time_and_logged_once_per_interval_per_kind(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    tier = FailingTier()
    with caplog.at_level(logging.WARNING, logger="cacheplug"), Cache([tier]) as cache:

        @cached(cache=cache, version="1")
        def f(x: int) -> int:
            return x

        for i in range(50):
            assert f(i) == i
        assert cache.stats()["faults"] == {"flaky.get": 50, "flaky.set": 50}
        assert len(_fault_lines(caplog)) == 2  # one per operation, not one per call
        tier.error = TimeoutError("slow")
        assert f(100) == 100
        assert len(_fault_lines(caplog)) == 4  # another exception type is another kind
        monkeypatch.setattr(cacheplug.faults, "FAULT_LOG_INTERVAL", 0.0)
        assert f(101) == 101
        assert len(_fault_lines(caplog)) == 6  # once the interval has passed, logged again
        assert cache.stats()["faults"] == {"flaky.get": 52, "flaky.set": 52}


def test_a_blind_cache_serves_again_once_the_version_store_is_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "cache"
    with Cache([MemoryTier(), DiskTier(directory)]) as first:
        first.invalidate(tags=["warm-up"])
    journal = next(directory.rglob("journal.db"))
    with sqlite3.connect(journal) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'format'")  # a newer release's journal
    monkeypatch.setattr(cacheplug.cache.health, "RETRY_INTERVAL", 0.0)
    cacheplug.versions._HOST.clear()  # a new process would open the store afresh
    computed: list[int] = []
    cache = Cache([MemoryTier(), DiskTier(directory)])

    @cached(cache=cache, version="1")
    def f(x: int) -> int:
        computed.append(x)
        return x

    assert f(1) == f(1) == 1
    assert computed == [1, 1]  # blind: nothing cached is served
    assert cache.stats()["degraded"]
    with sqlite3.connect(journal) as conn:
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'format'")
    assert f(1) == f(1) == 1
    assert computed == [1, 1, 1]  # readable again: computed once, then served
    assert cache.stats()["degraded"] is None
    cache.close()
