"""@cached on async functions: the awaited result is cached, never the coroutine."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import pytest

from cacheplug import Cache, DiskTier, MemoryTier, cached
from tests.conftest import FakeClock


def test_awaited_result_is_cached_not_the_coroutine(memory_cache: Cache) -> None:
    calls: list[int] = []

    @cached(cache=memory_cache)
    async def fetch(user_id: int) -> dict[str, int]:
        calls.append(user_id)
        await asyncio.sleep(0)
        return {"id": user_id}

    async def main() -> list[Any]:
        first = fetch(1)
        assert inspect.isawaitable(first)
        results = [await first]
        for _ in range(3):
            results.append(await fetch(1))  # a cached coroutine could not be awaited again
        return results

    results = asyncio.run(main())
    assert results == [{"id": 1}] * 4
    assert calls == [1]
    assert fetch.cache_info().hits == 3


def test_async_result_is_persisted_to_disk(clock: FakeClock, disk_dir: Path) -> None:
    calls: list[int] = []

    def make(cache: Cache) -> Any:
        # version=: these functions close over test counters (unkeyable), which would keep them memory-only
        @cached(cache=cache, version="1")
        async def fetch(user_id: int, *, detail: bool = False) -> list[int]:
            calls.append(user_id)
            return [user_id, int(detail)]

        return fetch

    for _ in range(2):  # the second round has an empty memory tier: served from disk
        disk = DiskTier(disk_dir)
        with Cache([MemoryTier(), disk], clock=clock) as cache:
            assert asyncio.run(make(cache)(7, detail=True)) == [7, 1]
        disk.close()
    assert calls == [7]


def test_async_exceptions_propagate_and_are_not_cached(memory_cache: Cache) -> None:
    calls: list[int] = []

    @cached(cache=memory_cache)
    async def fail(x: int) -> int:
        calls.append(x)
        raise LookupError(x)

    for _ in range(2):
        with pytest.raises(LookupError):
            asyncio.run(fail(1))
    assert calls == [1, 1]


def test_async_ttl_expires_by_the_injected_clock(memory_cache: Cache, clock: FakeClock) -> None:
    calls: list[int] = []

    @cached(5, cache=memory_cache)
    async def f(x: int) -> int:
        calls.append(x)
        return len(calls)

    assert asyncio.run(f(1)) == 1
    clock.advance(4)
    assert asyncio.run(f(1)) == 1
    clock.advance(1)
    assert asyncio.run(f(1)) == 2


def test_async_non_fast_arguments_are_cached(memory_cache: Cache) -> None:
    calls: list[Any] = []

    @cached(cache=memory_cache)
    async def f(items: tuple[int, ...], scale: float = 1.0) -> float:
        calls.append(items)
        return sum(items) * scale

    async def main() -> None:
        assert await f((1, 2), scale=2.0) == 6.0
        assert await f((1, 2), 2.0) == 6.0

    asyncio.run(main())
    assert len(calls) == 1


def test_ainvalidate_and_arefresh(memory_cache: Cache) -> None:
    calls: list[int] = []

    @cached(cache=memory_cache)
    async def f(x: int) -> int:
        calls.append(x)
        return len(calls)

    async def main() -> None:
        assert await f.ainvalidate(1) is False
        assert await f(1) == 1
        assert await f.ainvalidate(1) is True
        assert await f(1) == 2
        assert await f.arefresh(1) == 3
        assert await f(1) == 3

    asyncio.run(main())
    assert len(calls) == 3


def test_concurrent_tasks_all_get_the_value(memory_cache: Cache) -> None:
    @cached(cache=memory_cache)
    async def f(x: int) -> int:
        await asyncio.sleep(0)
        return x * 10

    async def main() -> list[int]:
        return list(await asyncio.gather(*(f(i % 5) for i in range(50))))

    assert asyncio.run(main()) == [(i % 5) * 10 for i in range(50)]
    assert f.cache_info().currsize == 5


def test_async_function_keeps_its_metadata(memory_cache: Cache) -> None:
    async def original(x: int) -> int:
        """Doc."""
        return x

    wrapped = cached(cache=memory_cache)(original)
    assert inspect.iscoroutinefunction(wrapped)
    assert inspect.signature(wrapped) == inspect.signature(original)
    assert wrapped.__doc__ == "Doc."
