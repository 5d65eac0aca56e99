"""The per-function shortcut: invalidations that cannot reach a function's entries cost its
hits nothing, and those that can are never missed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cacheplug import Cache, DiskTier, MemoryTier, cached


def counted(cache: Cache, calls: list[Any], tags: Any = ()) -> Any:
    @cached(cache=cache, tags=tags)
    def f(a: int, b: str) -> tuple[int, str, int]:
        calls.append((a, b))
        return (a, b, len(calls))

    return f


def test_unrelated_invalidations_keep_entries_and_related_ones_reach_them(disk_dir: Path) -> None:
    for cache in (Cache([MemoryTier()]), Cache([MemoryTier(), DiskTier(disk_dir)])):
        calls: list[Any] = []
        f = counted(cache, calls, tags=["item:{a}", "all-items"])
        first, second = f(1, "x"), f(2, "x")
        for n in range(40):  # more than the recent window, then a few within it
            cache.invalidate(tags=[f"other:{n}"])
            assert f(1, "x") == first and f(2, "x") == second
        assert len(calls) == 2
        cache.invalidate(tags=["item:1"])
        assert f(1, "x") != first, "a tag the entry carries was invalidated"
        assert f(2, "x") == second
        cache.invalidate(tags=["other:x"])
        cache.invalidate(tags=["all-items"])
        assert f(2, "x") != second
        cache.close()


def test_key_invalidation_after_unrelated_ones_is_seen(memory_cache: Cache) -> None:
    calls: list[Any] = []
    f = counted(memory_cache, calls, tags=["item:{a}"])

    @cached(cache=memory_cache, tags=["item:{a}"])
    def g(a: int, b: str) -> int:
        return a

    first = f(1, "x")
    g(1, "x")
    memory_cache.invalidate(tags=["other"])
    assert f(1, "x") == first
    g.invalidate(1, "x")  # another function's key: not this entry
    assert f(1, "x") == first
    f.invalidate(1, "x")
    assert f(1, "x") != first


def _pair(cache: Cache, log: list[str]) -> tuple[Any, Any]:
    @cached(cache=cache)
    def inner(x: int) -> int:
        log.append("inner")
        return x * 10

    @cached(cache=cache, tags=["outer:{x}"])
    def outer(x: int) -> int:
        log.append("outer")
        return inner(x) + 1

    return inner, outer


def test_entry_promoted_from_disk_with_captured_dependencies_is_never_judged_by_the_shortcut(
    disk_dir: Path,
) -> None:
    """Another process computed ``outer`` (which read ``inner``); this one only reads it back."""
    writer = Cache([MemoryTier(), DiskTier(disk_dir)])
    reader = Cache([MemoryTier(), DiskTier(disk_dir)])
    w_inner, w_outer = _pair(writer, [])
    log: list[str] = []
    _, r_outer = _pair(reader, log)
    assert w_outer(3) == 31
    assert r_outer(3) == 31 and log == []  # promoted from disk, not computed here
    reader.invalidate(tags=["unrelated"])
    assert r_outer(3) == 31 and log == []
    w_inner.invalidate(3)  # makes the reader's outer(3) stale through its captured dependency
    assert r_outer(3) == 31
    assert log == ["outer", "inner"], "the stale outer entry must have been recomputed"
    writer.close()
    reader.close()


def test_function_with_captured_dependencies_uses_exact_checks(memory_cache: Cache) -> None:
    log: list[str] = []
    inner, outer = _pair(memory_cache, log)
    assert outer(1) == 11
    memory_cache.invalidate(tags=["unrelated"])
    assert outer(1) == 11 and log == ["outer", "inner"]
    inner.invalidate(1)
    assert outer(1) == 11 and log == ["outer", "inner", "outer", "inner"]
