"""A tier is plain storage (issue 7, finding 1).

Caches over one ``MemoryTier`` with the same namespace see the same entries, whichever other
tiers they have; caches that share a tier share its version store, and building one that
would judge a tier's entries against another store is a ``ConfigurationError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cacheplug
from cacheplug import Cache, ConfigurationError, DiskTier, MemoryTier, cached
from cacheplug.versions import LocalVersions
from tests.conftest import FakeClock


@pytest.fixture
def disks(tmp_path: Path) -> Iterator[Callable[[str], DiskTier]]:
    """``disks(name)``: a DiskTier in its own directory, closed after the test."""
    made: list[DiskTier] = []

    def make(name: str) -> DiskTier:
        disk = DiskTier(tmp_path / name)
        made.append(disk)
        return disk

    yield make
    for disk in made:
        disk.close()


def _never(*_: Any) -> Any:
    raise AssertionError("computed, although the memory tier holds a fresh entry")


def test_stored_through_memory_and_disk_is_a_hit_through_memory_alone(
    clock: FakeClock, disks: Callable[[str], DiskTier]
) -> None:
    memory = MemoryTier()
    with Cache([memory, disks("d")], clock=clock) as full:
        full.set("k", "v", tags=["user:1"])
        assert full.get_or_compute("computed", lambda: 42) == 42
        with Cache([memory], clock=clock) as memory_only:
            assert memory_only.get("k") == "v"
            assert memory_only.get_or_compute("computed", _never) == 42
            assert memory_only.stats().hits == 2 and memory_only.stats().misses == 0
            assert memory_only.versions is full.versions  # one store judges the tier's entries
            memory_only.invalidate(tags=["user:1"])  # seen through the shared store
            assert full.get("k") is None


def test_a_disk_hit_promoted_by_one_cache_is_then_visible_through_memory_alone(
    clock: FakeClock, disks: Callable[[str], DiskTier]
) -> None:
    disk = disks("d")
    with Cache([MemoryTier(), disk], clock=clock) as writer:  # another process, say
        writer.set("k", "v")
    memory = MemoryTier()
    with Cache([memory, disk], clock=clock) as full, Cache([memory], clock=clock) as memory_only:
        assert memory_only.get("k") is None  # not in this memory tier yet
        assert full.get("k") == "v"  # a disk hit, promoted into the shared memory tier
        assert full.stats().tier_hits["disk"] == 1
        assert memory_only.get("k") == "v"
        assert memory_only.get_or_compute("k", _never) == "v"


def test_a_function_bound_in_two_caches_shares_its_memory_entries(
    clock: FakeClock, disks: Callable[[str], DiskTier]
) -> None:
    memory = MemoryTier()
    calls: list[int] = []

    @cached
    def f(a: int, b: str) -> str:
        calls.append(a)
        return b * a

    with Cache([memory, disks("d")], clock=clock) as full, Cache([memory], clock=clock) as memory_only:
        cacheplug.configure(full)
        assert f(2, "x") == "xx"
        cacheplug.configure(memory_only)
        assert f(2, "x") == "xx"  # the entry stored through the other cache
        assert calls == [2]
        assert f(3, "y") == "yyy"
        cacheplug.configure(full)
        assert f(3, "y") == "yyy"
        assert calls == [2, 3]
        assert f.cache_info().hits == 1  # counted per cache: this one served f(3, "y")


def test_a_functions_disk_hit_promoted_by_one_cache_is_then_a_hit_through_memory_alone(
    clock: FakeClock, disks: Callable[[str], DiskTier]
) -> None:
    disk = disks("d")
    calls: list[int] = []

    @cached
    def f(a: int, b: str) -> str:
        calls.append(a)
        return b * a

    memory = MemoryTier()
    with (
        Cache([MemoryTier(), disk], clock=clock) as writer,
        Cache([memory, disk], clock=clock) as full,
        Cache([memory], clock=clock) as memory_only,
    ):
        cacheplug.configure(writer)
        assert f(7, "q") == "q" * 7  # computed and stored to disk (another process, say)
        cacheplug.configure(full)
        assert f(7, "q") == "q" * 7  # a disk hit, promoted into the shared memory tier
        assert full.stats().tier_hits["disk"] == 1
        cacheplug.configure(memory_only)
        assert f(7, "q") == "q" * 7
        assert calls == [7]
        assert memory_only.stats().hits == 1


def test_different_namespaces_stay_apart_in_one_memory_tier(clock: FakeClock) -> None:
    memory = MemoryTier()
    with Cache([memory], clock=clock, namespace="a") as a, Cache([memory], clock=clock, namespace="b") as b:
        a.set("k", "from a")
        assert b.get("k") is None
        b.set("k", "from b")
        assert a.get("k") == "from a" and b.get("k") == "from b"

        calls: list[str] = []

        @cached
        def f(a_: int, b_: str) -> str:
            calls.append(b_)
            return b_ * a_

        cacheplug.configure(a)
        f(1, "x")
        cacheplug.configure(b)
        f(1, "x")
        assert calls == ["x", "x"]
        b.clear()  # clears namespace b only
        assert a.get("k") == "from a" and b.get("k") is None


def test_a_memory_tier_judged_by_a_local_store_refuses_a_disk_tier(
    clock: FakeClock, disks: Callable[[str], DiskTier]
) -> None:
    memory = MemoryTier()
    with Cache([memory], clock=clock), pytest.raises(ConfigurationError):
        Cache([memory, disks("other")], clock=clock)


def test_a_memory_tier_shared_with_one_disk_refuses_another_disk(
    clock: FakeClock, disks: Callable[[str], DiskTier]
) -> None:
    memory = MemoryTier()
    with Cache([memory, disks("d")], clock=clock):
        with Cache([memory, DiskTier(disks("d").directory)], clock=clock):
            pass  # the same directory: the same host store
        with pytest.raises(ConfigurationError):
            Cache([memory, disks("other")], clock=clock)


def test_versions_that_differ_from_the_tiers_store_are_refused(
    clock: FakeClock, disks: Callable[[str], DiskTier]
) -> None:
    disk = disks("d")
    with pytest.raises(ConfigurationError):
        Cache([MemoryTier(), disk], clock=clock, versions=LocalVersions())
    with pytest.raises(ConfigurationError):
        Cache([MemoryTier(), disk], clock=clock, versions=disks("other").versions())
    with Cache([MemoryTier(), disk], clock=clock, versions=disk.versions()) as cache:
        assert cache.versions is disk.versions()


def test_an_entry_with_captured_dependencies_stored_through_one_cache_goes_stale_in_the_other(
    clock: FakeClock, disks: Callable[[str], DiskTier]
) -> None:
    log: list[str] = []

    @cached(tags=["inner:{a}"])
    def inner(a: int) -> int:
        log.append("inner")
        return a * 10 + len(log)

    @cached(tags=["item:{a}"])
    def outer(a: int, b: str) -> int:
        log.append("outer")
        return inner(a) + 1000  # inner's tags are captured into outer's entry

    memory = MemoryTier()
    with Cache([memory, disks("d")], clock=clock) as full, Cache([memory], clock=clock) as memory_only:
        cacheplug.configure(full)
        first = outer(1, "x")
        cacheplug.configure(memory_only)
        assert outer(1, "x") == first  # the entry stored through the other cache
        memory_only.invalidate(tags=["unrelated"])
        assert outer(1, "x") == first
        assert log == ["outer", "inner"]
        memory_only.invalidate(tags=["inner:1"])  # what outer(1) was computed from changed
        assert outer(1, "x") != first, "served a value computed before an invalidation of its dependency"
        assert log == ["outer", "inner", "outer", "inner"]


@pytest.mark.parametrize("garbage", ["journal", 42, object()])
def test_a_version_store_that_is_not_one_is_refused(garbage: object) -> None:
    memory = MemoryTier()
    with pytest.raises(ConfigurationError, match="takes a version store"):
        Cache([memory], versions=garbage)  # type: ignore[arg-type]
    with Cache([memory]) as cache:  # the refused cache bound nothing to the tier
        cache.set("k", 1)
        assert cache.get("k") == 1
