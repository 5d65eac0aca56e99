"""What a trial of the house as a demanding user found (each failed before its fix)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cacheplug import MISS, Cache, ConfigurationError, DiskTier, MemoryTier, Op, cached, state


def _dropping(kind: str) -> Callable[[Op, Callable[[Op], Any]], Any]:
    """A middleware that follows the docs' ``None`` literally and drops call_next's result."""

    def middleware(op: Op, call_next: Callable[[Op], Any]) -> Any:
        result = call_next(op)
        return None if op.kind == kind else result

    return middleware


@pytest.mark.parametrize("with_disk", [False, True])
def test_an_async_invalidation_happens_even_if_a_middleware_drops_its_awaitable(
    tmp_path: Path, with_disk: bool
) -> None:
    tiers: list[Any] = [MemoryTier(), *([DiskTier(tmp_path / "d")] if with_disk else [])]
    with Cache(tiers, middleware=[_dropping("invalidate")]) as cache:
        cache.set("k", "v", tags=["t"])
        asyncio.run(cache.ainvalidate(tags=["t"]))
        assert cache.get("k") is None
    for tier in tiers[1:]:
        tier.close()


def test_an_async_function_s_store_happens_even_if_a_middleware_drops_its_awaitable(tmp_path: Path) -> None:
    disk = DiskTier(tmp_path / "d")
    calls: list[int] = []
    with Cache([MemoryTier(), disk], middleware=[_dropping("set")]) as cache:

        @cached(cache=cache)
        async def a(i: int) -> int:
            calls.append(i)
            return i

        async def twice() -> None:
            await a(1)
            await a(1)

        asyncio.run(twice())
        assert calls == [1] and a.cache_info().hits == 1
    disk.close()


def test_a_fill_that_finds_a_fresh_entry_writes_nowhere(tmp_path: Path) -> None:
    """A read answered MISS by a middleware recomputes, and memory and disk keep one value."""
    bypass = [False]

    def honour(op: Op, call_next: Callable[[Op], Any]) -> Any:
        return MISS if op.kind == "get" and bypass[0] else call_next(op)

    disk = DiskTier(tmp_path / "d")
    balance = [100]
    with Cache([MemoryTier(), disk], middleware=[honour]) as cache:

        @cached(cache=cache)
        def account(n: int) -> int:
            return balance[0]

        assert account(1) == 100
        balance[0], bypass[0] = 80, True
        assert account(1) == 80
        bypass[0] = False
        assert account(1) == 100
        assert disk.get(account.cache_key(1)).value == 100  # the disk kept the first writer's value
    disk.close()


def test_two_disk_tiers_over_different_directories_are_refused(tmp_path: Path) -> None:
    a, b = DiskTier(tmp_path / "a"), DiskTier(tmp_path / "b")
    with pytest.raises(ConfigurationError, match="different version stores"):
        Cache([a, b])
    a.close()
    b.close()


def test_after_reset_a_cache_over_the_same_tiers_is_accepted(tmp_path: Path) -> None:
    memory = MemoryTier()
    with Cache([memory, DiskTier(tmp_path / "d")]) as first:
        first.set("k", 1)
        state.reset()
        with Cache([memory, DiskTier(tmp_path / "d")]) as second:
            assert second.get("k") == 1
            second.tiers[1].close()
        first.tiers[1].close()


def test_middleware_arguments_that_cannot_work_are_refused() -> None:
    async def asynchronous(op: Op, call_next: Callable[[Op], Any]) -> Any:
        return call_next(op)

    def plain(op: Op, call_next: Callable[[Op], Any]) -> Any:
        return call_next(op)

    with pytest.raises(ConfigurationError, match="async function"):
        Cache([MemoryTier()], middleware=[asynchronous])
    for wrong in (plain, None, "plain"):
        with pytest.raises(ConfigurationError, match="takes a list of middleware"):
            Cache([MemoryTier()], middleware=wrong)  # type: ignore[arg-type]


def test_a_get_middleware_answering_garbage_gets_a_clear_error() -> None:
    def forgetful(op: Op, call_next: Callable[[Op], Any]) -> Any:
        call_next(op)  # forgot to return it

    with Cache([MemoryTier()], middleware=[forgetful]) as cache:

        @cached(cache=cache)
        def f(i: int) -> int:
            return i

        with pytest.raises(TypeError, match="must return call_next"):
            f(1)
        with pytest.raises(TypeError, match="must return call_next"):
            cache.get("k")


def test_depends_on_and_add_dependency_name_what_is_wrong() -> None:
    with Cache([MemoryTier()]) as cache:
        with pytest.raises(ConfigurationError, match="depends_on"):
            cache.set("k", 1, depends_on=None)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="depends_on=\\['src'\\]"):
            cache.set("k", 1, depends_on="src")
        with pytest.raises(ConfigurationError, match="a key must be a str"):
            cache.add_dependency(5, ["a"])  # type: ignore[arg-type]


def test_a_tier_listed_twice_and_a_fault_tolerant_tier_without_a_ledger_are_refused() -> None:
    from cacheplug import FaultTolerant

    memory = MemoryTier()
    with pytest.raises(ConfigurationError, match="appears twice"):
        Cache([memory, memory])
    with pytest.raises(ConfigurationError, match="FaultLedger"):
        FaultTolerant(memory, None)  # type: ignore[arg-type]
