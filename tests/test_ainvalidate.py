"""Cache.ainvalidate runs the invalidation's steps through the async driver, off the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cacheplug import Cache, DiskTier, MemoryTier, Op, ProxyTier, batch, cached


class ThreadNoting(ProxyTier):
    """A real disk tier that notes the thread each removal runs in."""

    def __init__(self, tier: Any) -> None:
        super().__init__(tier)
        self.deletes: list[int] = []

    def delete(self, key: str) -> bool:
        self.deletes.append(threading.get_ident())
        return bool(self.tier.delete(key))


def test_the_record_and_the_removals_run_in_worker_threads(tmp_path: Path) -> None:
    disk = ThreadNoting(DiskTier(tmp_path / "d"))
    with Cache([MemoryTier(), disk]) as cache:
        bumps: list[int] = []
        store = cache.versions
        bump = store.bump

        def noting(tags: Any) -> int:
            bumps.append(threading.get_ident())
            return bump(tags)

        store.bump = noting  # type: ignore[method-assign]
        cache.set("k", 1)
        cache.set("t", 2, tags=["x"])

        async def scenario() -> int:
            await cache.ainvalidate(tags=["x"], keys=["k"])
            return threading.get_ident()

        loop_thread = asyncio.run(scenario())
        assert bumps and loop_thread not in bumps
        assert disk.deletes and loop_thread not in disk.deletes
        assert cache.get("k") is None and cache.get("t") is None
        disk.tier.close()


def test_middleware_sees_an_async_invalidation_in_the_user_s_words() -> None:
    seen: list[Op] = []

    def observe(op: Op, call_next: Callable[[Op], Any]) -> Any:
        result = call_next(op)
        if op.kind == "invalidate":
            seen.append(op)
        return result

    with Cache([MemoryTier()], middleware=[observe]) as cache:

        @cached(cache=cache, tags=["item:{i}"])
        async def item(i: int) -> int:
            return i

        async def scenario() -> None:
            await item(1)
            await cache.ainvalidate(tags=["item:1"], keys=["k"])

        asyncio.run(scenario())
    assert len(seen) == 1
    assert seen[0].tags == frozenset({"item:1"}) and seen[0].keys == frozenset({"k"})
    assert seen[0].duration is not None


def test_an_async_invalidation_inside_batch_is_collected() -> None:
    with Cache([MemoryTier()]) as cache:
        cache.set("k", 1, tags=["x"])
        epoch = cache.epoch[0]

        async def scenario() -> None:
            with batch():
                await cache.ainvalidate(tags=["x"])
                assert cache.get("k") == 1 and cache.epoch[0] == epoch  # nothing applied yet

        asyncio.run(scenario())
        assert cache.get("k") is None and cache.epoch[0] == epoch + 1
