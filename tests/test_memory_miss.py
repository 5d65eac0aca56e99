"""The memory-only miss in the evicting steady state: what each miss stores and evicts (issue 7)."""

from __future__ import annotations

import itertools

from cacheplug import Cache, MemoryTier, cached
from cacheplug.envelope import Entry

from .conftest import FakeClock


def _entries(tier: MemoryTier) -> list[Entry]:
    return [entry for shelf in tier.shelves() for entry in shelf.values()]


def test_every_miss_into_a_full_tier_stores_and_evicts(clock: FakeClock) -> None:
    tier = MemoryTier(max_entries=1024)
    computed = itertools.count()
    with Cache([tier], clock=clock) as cache:

        @cached(300, cache=cache)
        def f(i: int, s: str) -> int:
            next(computed)
            return i

        for i in range(10_000):
            assert f(i, "x") == i
        assert next(computed) == 10_000
        info = f.cache_info()
        # Full all along: eviction runs in batches of 1/64 of the bound.
        assert 1024 - 1024 // 64 <= info.currsize <= 1024
        assert info.misses == 10_000
        assert tier.evictions == 10_000 - info.currsize
        # The newest entries are the ones kept, and are hits.
        assert f(9_999, "x") == 9_999 and f.cache_info().hits == 1


def test_a_recently_read_entry_survives_a_full_tier(clock: FakeClock) -> None:
    tier = MemoryTier(max_entries=64)
    with Cache([tier], clock=clock) as cache:
        computed: list[int] = []

        @cached(300, cache=cache)
        def f(i: int) -> int:
            computed.append(i)
            return i

        for i in range(1000):
            f(i)
            f(-1)  # read between every store: its second chance keeps it
        assert computed.count(-1) == 1


def test_compute_time_is_recorded_in_whole_milliseconds(clock: FakeClock) -> None:
    tier = MemoryTier()
    with Cache([tier], clock=clock) as cache:

        @cached(300, cache=cache)
        def f(seconds: float) -> float:
            clock.advance(seconds)
            return seconds

        for seconds in (0.0, 0.0004, 0.25, 1.5):
            f(seconds)
        costs = sorted(entry.cost for entry in _entries(tier))
        assert costs == [0, 0, 250, 1500]
        assert sorted(entry.cost_seconds for entry in _entries(tier)) == [0.0, 0.0, 0.25, 1.5]


def test_a_nested_call_on_the_memory_only_miss_is_captured(clock: FakeClock) -> None:
    """The outer miss read the inner entry: invalidating the inner call makes the outer stale."""
    with Cache([MemoryTier(max_entries=16)], clock=clock) as cache:
        calls: list[str] = []

        @cached(300, cache=cache)
        def inner(i: int) -> int:
            calls.append("inner")
            return i

        @cached(300, cache=cache)
        def outer(i: int) -> int:
            calls.append("outer")
            return inner(i) + 1

        assert outer(1) == 2 and outer(1) == 2
        assert calls == ["outer", "inner"]
        inner.invalidate(1)
        assert outer(1) == 2
        assert calls == ["outer", "inner", "outer", "inner"]
