"""Issue 9 ("Stampede and freshness"): what single-flight costs, and how long a stampede waits.

Costs, each side the same function on the same kind of cache, one with single-flight and one
decorated and bound with it off (``cacheplug.flight.ENABLED = False``, the switch that exists
for this comparison only):

* ``stampede_hit``: a memory hit of ``f(1, "x")`` (the fast path; single-flight is on the
  miss path only);
* ``stampede_miss``: an uncontended memory-only miss + store (the generated lean miss), at the
  steady state of ``bench_memory_miss``: every miss stores and evicts;
* ``stampede_general_miss``, ``stampede_async_miss``: the same through the general flow (a
  keyword-only parameter) and through the async driver;
* ``stampede_disk_miss``: a miss stored in memory and on disk (for reference).

Waits: 64 threads, and 500 asyncio tasks, on one cold key whose computation takes 200 ms:
``stampede_wait.threads64`` and ``stampede_wait.tasks500`` are the 99th percentile of the
callers' waits over 5 stampedes each; ``stampede_wait.compute`` is the computation's 200 ms,
the figure they are compared with (check_ratios.py: p99 <= 250 ms is a ratio <= 1.25).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import TTL, VALUE, call_loop, interleaved, record

import cacheplug.flight
from cacheplug import Cache, DiskTier, MemoryTier, cached

HIT_OPS = 10_000
MISS_OPS = 1_000
CAPACITY = 10_000
SIDES = ("on", "off")


def _decorated(single_flight: bool, make: Callable[[], Callable[..., Any]]) -> Callable[..., Any]:
    """``make()``'s function, decorated and bound with single-flight on or off."""
    saved = cacheplug.flight.ENABLED
    cacheplug.flight.ENABLED = single_flight
    try:
        f = make()
    finally:
        cacheplug.flight.ENABLED = saved
    return f


def _lean(cache: Cache) -> Callable[[], Callable[..., Any]]:
    def make() -> Callable[..., Any]:
        @cached(TTL, cache=cache)
        def f(a: int, b: str) -> dict[str, Any]:
            return VALUE

        assert f(0, "bind") is VALUE
        return f

    return make


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def bench_stampede_hit(benchmark: Any, bench_pass: int) -> None:
    funcs = {
        side: _decorated(side == "on", _lean(Cache([MemoryTier(max_entries=CAPACITY)]))) for side in SIDES
    }
    for f in funcs.values():
        assert f(1, "x") is VALUE
    flights = {side: f._self_core.bound[1].flights for side, f in funcs.items()}  # type: ignore[attr-defined]
    assert flights["on"] is not None and flights["off"] is None
    sides = {side: call_loop(f, (1, "x"), HIT_OPS) for side, f in funcs.items()}
    interleaved(benchmark, "stampede_hit", sides, HIT_OPS, 15, lead="on", clock="cpu")


Misses = Callable[[Any, list[int]], None]


def _misses(f: Any, keys: list[int]) -> None:
    for k in keys:
        f(k, "x")


def _miss_bench(
    benchmark: Any,
    group: str,
    funcs: dict[str, Any],
    misses: Misses = _misses,
    *,
    fill: int = CAPACITY,
    ops: int = MISS_OPS,
    rounds: int = 15,
) -> None:
    """Time ``ops`` misses of fresh keys on each side (``misses(f, keys)``), after a fill
    past the memory tier's capacity (so every miss stores and evicts)."""
    fresh = itertools.count(10_000_000)
    for f in funcs.values():
        misses(f, [next(fresh) for _ in range(fill)])
    keys: dict[str, list[int]] = {side: [] for side in funcs}

    def setup() -> None:
        for side in funcs:
            keys[side] = [next(fresh) for _ in range(ops)]

    def side_of(side: str) -> Callable[[], None]:
        f = funcs[side]
        return lambda: misses(f, keys[side])

    sides = {side: side_of(side) for side in funcs}
    interleaved(benchmark, group, sides, ops, rounds, lead="on", clock="cpu", setup=setup)
    for side, f in funcs.items():
        stats = f.cache_info().stats
        assert stats.misses >= fill + ops and stats.coalesced == 0, (side, stats)


def bench_stampede_miss(benchmark: Any, bench_pass: int) -> None:
    funcs = {
        side: _decorated(side == "on", _lean(Cache([MemoryTier(max_entries=CAPACITY)]))) for side in SIDES
    }
    _miss_bench(benchmark, "stampede_miss", funcs)


def bench_stampede_general_miss(benchmark: Any, bench_pass: int) -> None:
    def make() -> Callable[..., Any]:
        @cached(TTL, cache=Cache([MemoryTier(max_entries=CAPACITY)]))
        def f(a: int, *, b: str) -> dict[str, Any]:  # keyword-only: the general flow
            return VALUE

        return f

    def misses(f: Any, keys: list[int]) -> None:
        for k in keys:
            f(k, b="x")

    funcs = {side: _decorated(side == "on", make) for side in SIDES}
    _miss_bench(benchmark, "stampede_general_miss", funcs, misses)


def bench_stampede_async_miss(benchmark: Any, bench_pass: int, loop: asyncio.AbstractEventLoop) -> None:
    def make() -> Callable[..., Any]:
        @cached(TTL, cache=Cache([MemoryTier(max_entries=CAPACITY)]))
        async def f(a: int, b: str) -> dict[str, Any]:
            return VALUE

        return f

    def misses(f: Any, keys: list[int]) -> None:
        async def calls() -> None:
            for k in keys:
                await f(k, "x")

        loop.run_until_complete(calls())

    funcs = {side: _decorated(side == "on", make) for side in SIDES}
    _miss_bench(benchmark, "stampede_async_miss", funcs, misses)


def bench_stampede_disk_miss(benchmark: Any, bench_pass: int, workdir: Path, closing: list[Any]) -> None:
    funcs = {}
    for side in SIDES:
        disk = DiskTier(workdir / side)
        cache = Cache([MemoryTier(max_entries=CAPACITY), disk])
        closing.extend([disk, cache])
        funcs[side] = _decorated(side == "on", _lean(cache))
    _miss_bench(benchmark, "stampede_disk_miss", funcs, fill=200, ops=100, rounds=9)


# -- how long a stampede waits ---------------------------------------------------------------------

COMPUTE = 0.2
STAMPEDES = 5
THREADS = 64
TASKS = 500


def _p99(waits: list[float]) -> float:
    return statistics.quantiles(waits, n=100, method="inclusive")[98]


def _thread_stampede(cache: Cache, key: int) -> list[float]:
    computed = []

    @cached(cache=cache)
    def slow(k: int) -> int:
        computed.append(k)
        time.sleep(COMPUTE)
        return k

    waits: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def caller() -> None:
        barrier.wait()
        started = time.perf_counter()
        assert slow(key) == key
        with lock:
            waits.append(time.perf_counter() - started)

    threads = [threading.Thread(target=caller) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert computed == [key] and len(waits) == THREADS, (computed, len(waits))
    return waits


def _task_stampede(cache: Cache, key: int) -> list[float]:
    computed = []

    @cached(cache=cache)
    async def slow(k: int) -> int:
        computed.append(k)
        await asyncio.sleep(COMPUTE)
        return k

    async def caller() -> float:
        started = time.perf_counter()
        assert await slow(key) == key
        return time.perf_counter() - started

    async def stampede() -> list[float]:
        return list(await asyncio.gather(*(caller() for _ in range(TASKS))))

    waits = asyncio.run(stampede())
    assert computed == [key]
    return waits


@pytest.mark.parametrize("kind", ["threads64", "tasks500"])
def bench_stampede_wait(benchmark: Any, kind: str) -> None:
    waits: list[float] = []

    def stampedes() -> None:
        for i in range(STAMPEDES):
            with Cache([MemoryTier()]) as cache:
                waits.extend((_thread_stampede if kind == "threads64" else _task_stampede)(cache, i))

    benchmark.pedantic(stampedes, rounds=1, iterations=1)
    record(benchmark, f"stampede_wait.{kind}", 1, value_ns=_p99(waits) * 1e9, callers=len(waits))
    benchmark.extra_info["max_ms"] = max(waits) * 1e3


def bench_stampede_compute(benchmark: Any) -> None:
    """The figure the waits are compared with: the computation's own duration."""
    benchmark.pedantic(lambda: time.sleep(COMPUTE), rounds=1, iterations=1)
    record(benchmark, "stampede_wait.compute", 1, value_ns=COMPUTE * 1e9)
