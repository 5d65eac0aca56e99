"""The coordinator: read-through, promotion, write-through, namespaces, faults and bounds."""

from __future__ import annotations

import logging
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cacheplug import MISS, Cache, ConfigurationError, DiskTier, Entry, MemoryTier, cached
from cacheplug.cache import open_caches
from tests.conftest import FakeClock
from tests.tier_doubles import BrokenTier, FailingStore


@pytest.fixture
def open_disk(disk_dir: Path) -> Iterator[Any]:
    """Open more DiskTier instances over ``disk_dir`` (closed at the end)."""
    tiers: list[DiskTier] = []

    def make() -> DiskTier:
        tier = DiskTier(disk_dir)
        tiers.append(tier)
        return tier

    yield make
    for tier in tiers:
        tier.close()


# -- read-through and write-through ------------------------------------------------------


def test_computed_value_is_written_through_to_every_tier(tiered_cache: Cache) -> None:
    @cached(cache=tiered_cache)
    def f(x: int) -> list[int]:
        return [x, x]

    f(3)
    memory, disk = tiered_cache.tiers
    assert len(memory) == 1
    stored = disk.get(f.cache_key(3))
    assert isinstance(stored, Entry)
    assert stored.value == [3, 3]


def test_disk_hit_is_promoted_to_memory_with_its_remaining_ttl(
    tiered_cache: Cache, clock: FakeClock, open_disk: Any
) -> None:
    tiered_cache.set("k", "v", ttl=100)
    with Cache([MemoryTier(), open_disk()], clock=clock) as fresh:
        clock.advance(60)
        assert fresh.get("k") == "v"
        assert fresh.stats()["tier_hits"]["disk"] == 1
        assert len(fresh.tiers[0]) == 1  # promoted
        assert fresh.get("k") == "v"
        assert fresh.stats()["tier_hits"] == {"memory": 1, "disk": 1}
        clock.advance(39)
        assert fresh.get("k") == "v"
        clock.advance(1)
        # A promotion with a full ttl would still serve it from memory here.
        assert fresh.get("k") is None


def test_promoted_function_result_keeps_its_remaining_ttl(
    tiered_cache: Cache, clock: FakeClock, open_disk: Any
) -> None:
    calls: list[int] = []

    def make(cache: Cache) -> Any:
        # version=: these functions close over test counters (unkeyable), which would keep them memory-only
        @cached(100, cache=cache, version="1")
        def f(x: int) -> int:
            calls.append(x)
            return len(calls)

        return f

    make(tiered_cache)(1)
    with Cache([MemoryTier(), open_disk()], clock=clock) as fresh:
        g = make(fresh)
        clock.advance(90)
        assert g(1) == 1
        clock.advance(10)
        assert g(1) == 2


# -- namespaces -------------------------------------------------------------------------


def test_namespaces_on_one_directory_never_see_each_other(clock: FakeClock, open_disk: Any) -> None:
    calls: list[str] = []

    def make(cache: Cache) -> Any:
        @cached(cache=cache, version="1")
        def f(x: int) -> str:
            calls.append(cache.namespace)
            return f"{cache.namespace}:{x}"

        return f

    with (
        Cache([MemoryTier(), open_disk()], clock=clock, namespace="a") as a,
        Cache([MemoryTier(), open_disk()], clock=clock, namespace="b") as b,
    ):
        a.set("k", "from a")
        assert b.get("k") is None
        b.set("k", "from b")
        fa, fb = make(a), make(b)
        assert fa(1) == "a:1"
        assert fb(1) == "b:1"
        assert calls == ["a", "b"]

        a.clear()
        assert a.get("k") is None
        assert fa(1) == "a:1"
        assert calls == ["a", "b", "a"]
        # b's entries survive a's clear(), in memory and on disk.
        assert b.get("k") == "from b"
        assert fb(1) == "b:1"
        with Cache([MemoryTier(), open_disk()], clock=clock, namespace="b") as b2:
            assert b2.get("k") == "from b"
            assert make(b2)(1) == "b:1"
        assert calls == ["a", "b", "a"]


def test_clear_empties_this_cache_in_every_tier(
    tiered_cache: Cache, clock: FakeClock, open_disk: Any
) -> None:
    tiered_cache.set("k", 1)
    tiered_cache.clear()
    assert tiered_cache.get("k") is None
    with Cache([MemoryTier(), open_disk()], clock=clock) as again:
        assert again.get("k") is None


# -- values that cannot be stored or read back --------------------------------------------


def test_unserializable_value_stays_in_memory_and_warns_once_per_function(
    tiered_cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    @cached(cache=tiered_cache)
    def lock_for(x: int) -> Any:
        calls.append(x)
        return threading.Lock()

    @cached(cache=tiered_cache)
    def callback(x: int) -> Any:
        return lambda: x

    with caplog.at_level(logging.WARNING, logger="cacheplug"):
        first = lock_for(1)
        assert lock_for(1) is first
        lock_for(2)
        lock_for(3)
        callback(1)
        callback(2)
    assert calls == [1, 2, 3]
    stats = tiered_cache.stats()
    assert stats["unserializable"] == 5
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert any("lock_for" in r.getMessage() for r in warnings)
    assert any("callback" in r.getMessage() for r in warnings)
    disk = tiered_cache.tiers[1]
    assert disk.get(lock_for.cache_key(1)) is MISS


def test_unserializable_value_set_directly_stays_in_memory(tiered_cache: Cache) -> None:
    lock = threading.Lock()
    tiered_cache.set("lock", lock)
    assert tiered_cache.get("lock") is lock
    assert tiered_cache.stats()["unserializable"] == 1


def test_corrupt_disk_row_is_a_miss_deleted_and_counted(
    tiered_cache: Cache, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def make(cache: Cache) -> Any:
        @cached(cache=cache, version="1")
        def f(x: int) -> int:
            calls.append(x)
            return x * 2

        return f

    f = make(tiered_cache)
    f(1)
    disk = tiered_cache.tiers[1]
    assert isinstance(disk, DiskTier)
    key = f.cache_key(1)
    disk._dc.set(key, b"\x80\x05garbage that is not a pickle")
    with caplog.at_level(logging.WARNING, logger="cacheplug"):
        assert disk.get(key) is MISS
    assert key not in disk._dc  # deleted
    assert disk.corrupt == 1
    assert any("unreadable" in r.getMessage() for r in caplog.records)

    disk._dc.set(key, b"garbage again")
    with Cache([MemoryTier(), disk], clock=clock) as fresh:
        assert make(fresh)(1) == 2
        assert fresh.stats()["corrupt"] == 2
    assert calls == [1, 1]


def test_entry_of_a_class_that_no_longer_exists_is_a_miss(tiered_cache: Cache, clock: FakeClock) -> None:
    module = types.ModuleType("cacheplug_vanishing_module")
    exec("class Gone:\n    def __init__(self, v):\n        self.v = v\n", module.__dict__)
    sys.modules[module.__name__] = module
    try:
        tiered_cache.set("obj", module.Gone(5))
    finally:
        del sys.modules[module.__name__]
    disk = tiered_cache.tiers[1]
    with Cache([MemoryTier(), disk], clock=clock) as fresh:
        assert fresh.get("obj", "default") == "default"
        assert fresh.stats()["corrupt"] == 1
        assert fresh.get("obj", "default") == "default"
        assert fresh.stats()["corrupt"] == 1  # deleted: not met twice


# -- faults -----------------------------------------------------------------------------


def test_faulty_lower_tier_never_fails_the_caller(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    broken = BrokenTier(name="broken")
    calls: list[int] = []
    with (
        caplog.at_level(logging.WARNING, logger="cacheplug"),
        Cache([MemoryTier(), broken], clock=clock) as cache,
    ):

        @cached(cache=cache)
        def f(x: int) -> int:
            calls.append(x)
            return x + 1

        assert f(1) == 2
        assert f(1) == 2  # from memory
        assert calls == [1]
        cache.set("k", "v")
        assert cache.get("k") == "v"
        assert cache.get("missing", 0) == 0
        faults = cache.stats()["faults"]
    assert faults.get("broken.set", 0) >= 2
    assert faults.get("broken.get", 0) >= 2
    assert broken.attempts >= 4
    assert any("broken" in r.getMessage() for r in caplog.records)


def test_cache_with_only_a_faulty_tier_computes_every_call(clock: FakeClock) -> None:
    calls: list[int] = []
    with Cache([BrokenTier(name="broken")], clock=clock) as cache:

        @cached(cache=cache)
        def f(x: int) -> int:
            calls.append(x)
            return x

        assert [f(1), f(1)] == [1, 1]
        assert calls == [1, 1]
        assert cache.stats()["faults"]["broken.get"] == 2


def test_disk_tier_with_a_failing_database_is_counted_as_faults(tiered_cache: Cache) -> None:
    disk = tiered_cache.tiers[1]
    assert isinstance(disk, DiskTier)
    real = disk._dc
    disk._dc = FailingStore()
    try:

        @cached(cache=tiered_cache)
        def f(x: int) -> int:
            return x * 3

        assert f(2) == 6
        tiered_cache.tiers[0].clear()
        assert f(2) == 6
        faults = tiered_cache.stats()["faults"]
        assert faults["disk.set"] >= 1
        assert faults["disk.get"] >= 1
    finally:
        disk._dc = real


# -- the memory tier's bounds -------------------------------------------------------------


def test_memory_tier_evicts_least_recently_used_at_max_entries(clock: FakeClock) -> None:
    tier = MemoryTier(max_entries=3)
    with Cache([tier], clock=clock) as cache:
        for key in ("a", "b", "c"):
            cache.set(key, key)
        assert cache.get("a") == "a"  # recently used: survives
        cache.set("d", "d")
        assert len(tier) == 3
        assert cache.get("b") is None
        assert [cache.get(k) for k in ("a", "c", "d")] == ["a", "c", "d"]
        assert cache.stats()["evictions"] == 1


def test_memory_tier_bounds_function_entries(clock: FakeClock) -> None:
    tier = MemoryTier(max_entries=10)
    with Cache([tier], clock=clock) as cache:

        @cached(cache=cache)
        def f(x: int) -> int:
            return x

        for i in range(100):
            f(i)
        assert len(tier) == 10
        assert f.cache_info().currsize == 10
        assert f.cache_info().maxsize == 10
        assert cache.stats()["evictions"] == 90


def test_memory_tier_evicts_at_max_bytes(clock: FakeClock) -> None:
    tier = MemoryTier(max_entries=1000, max_bytes=20_000)
    with Cache([tier], clock=clock) as cache:
        for i in range(40):
            cache.set(f"k{i}", b"x" * 2000)
        assert tier.bytes <= 20_000
        assert 3 <= len(tier) < 10
        assert cache.get("k39") is not None
        assert cache.get("k0") is None


def test_memory_tier_rejects_bad_bounds() -> None:
    for bad in ({"max_entries": 0}, {"max_entries": True}, {"max_bytes": 0}):
        with pytest.raises(ConfigurationError):
            MemoryTier(**bad)


# -- the direct API ---------------------------------------------------------------------


def test_get_set_delete(tiered_cache: Cache, clock: FakeClock, open_disk: Any) -> None:
    assert tiered_cache.get("k") is None
    assert tiered_cache.get("k", "dflt") == "dflt"
    tiered_cache.set("k", {"a": 1}, ttl=10)
    assert tiered_cache.get("k") == {"a": 1}
    clock.advance(10)
    assert tiered_cache.get("k") is None
    tiered_cache.set("k", 2)
    assert tiered_cache.delete("k") is True
    assert tiered_cache.delete("k") is False
    assert tiered_cache.get("k") is None
    with Cache([MemoryTier(), open_disk()], clock=clock) as again:
        assert again.get("k") is None  # deleted from disk too


def test_stored_none_is_a_hit(memory_cache: Cache) -> None:
    memory_cache.set("none", None)
    assert memory_cache.get("none", "dflt") is None


def test_get_or_compute(memory_cache: Cache) -> None:
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return 42

    assert memory_cache.get_or_compute("answer", compute) == 42
    assert memory_cache.get_or_compute("answer", compute) == 42
    assert calls == [1]
    assert memory_cache.get("answer") == 42


def test_set_rejects_bad_arguments(memory_cache: Cache) -> None:
    with pytest.raises(ConfigurationError):
        memory_cache.set("k", 1, ttl=-5)
    with pytest.raises(ConfigurationError):
        memory_cache.set("k", 1, tags="user:1")
    with pytest.raises(TypeError):
        memory_cache.get(42)  # type: ignore[arg-type]


def test_stats_count_hits_misses_and_entries(memory_cache: Cache) -> None:
    @cached(cache=memory_cache)
    def f(x: int) -> int:
        return x

    f(1)
    f(1)
    f(2)
    memory_cache.get("nope")
    stats = memory_cache.stats()
    assert stats["hits"] == 1
    assert stats["misses"] == 3
    assert stats["hit_rate"] == pytest.approx(0.25)
    assert stats["entries"] == 2
    assert stats.hits == 1
    assert {"faults", "unserializable", "corrupt", "evictions", "tier_hits"} <= set(stats)


def test_cache_is_a_context_manager(clock: FakeClock) -> None:
    with Cache([MemoryTier()], clock=clock) as cache:
        assert cache in open_caches()
    assert cache.closed
    assert cache not in open_caches()


@pytest.mark.parametrize(
    "make",
    [
        lambda: Cache([]),
        lambda: Cache([MemoryTier()], namespace="a|b"),
        lambda: Cache([MemoryTier()], default_ttl=-1),
        lambda: Cache([MemoryTier()], clock=5),
        lambda: Cache([object()]),
        lambda: Cache([MemoryTier()], middleware=[42]),
    ],
)
def test_bad_cache_arguments_raise_configuration_error(make: Any) -> None:
    with pytest.raises(ConfigurationError):
        make()
