"""Issue 2, memory figures: hit, async hit, miss + store, two threads, bytes per entry.

Every function has the shape ``f(a: int, b: str)`` and returns the same small record, so
each side does the same work; only the caching layer differs.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import aiocache
import cachebox
import cachetools
import pytest
from _support import TTL, VALUE, await_loop, call_loop, interleaved, record

from cacheplug import Cache, MemoryTier, cached

HIT_OPS = 10_000


def cacheplug_memory_fn(max_entries: int = 10_000) -> Callable[..., Any]:
    cache = Cache([MemoryTier(max_entries=max_entries)])

    @cached(TTL, cache=cache)
    def f(a: int, b: str) -> dict[str, Any]:
        return VALUE

    return f


def cachebox_fn(maxsize: int = 10_000) -> Callable[..., Any]:
    # postprocess=None: return the cached object itself, as cacheplug does (cachebox copies
    # dict/list results by default, which would make its hit slower than it needs to be).
    @cachebox.cached(cachebox.TTLCache(maxsize, TTL), postprocess=None)
    def f(a: int, b: str) -> dict[str, Any]:
        return VALUE

    return f


def cachetools_fn(kind: str, maxsize: int = 10_000) -> Callable[..., Any]:
    store: Any = cachetools.TTLCache(maxsize, TTL) if kind == "ttl" else cachetools.LRUCache(maxsize)

    @cachetools.cached(store, lock=threading.Lock())
    def f(a: int, b: str) -> dict[str, Any]:
        return VALUE

    f.store = store  # type: ignore[attr-defined]
    return f


def lru_fn(maxsize: int = 10_000) -> Callable[..., Any]:
    @functools.lru_cache(maxsize)
    def f(a: int, b: str) -> dict[str, Any]:
        return VALUE

    return f


HIT_SIDES: dict[str, Callable[[], Callable[..., Any]]] = {
    "cacheplug": cacheplug_memory_fn,
    "cachebox_ttl": cachebox_fn,
    "cachetools_ttl_lock": lambda: cachetools_fn("ttl"),
    "cachetools_lru_lock": lambda: cachetools_fn("lru"),
    "lru_cache": lru_fn,
}


# -- memory hit ---------------------------------------------------------------------------


def bench_memory_hit(benchmark: Any, bench_pass: int) -> None:
    funcs = {side: make() for side, make in HIT_SIDES.items()}
    for f in funcs.values():
        assert f(1, "x") is VALUE
        assert f(1, "x") is VALUE
    sides = {side: call_loop(f, (1, "x"), HIT_OPS) for side, f in funcs.items()}
    interleaved(benchmark, "hit", sides, HIT_OPS, 15, clock="cpu")
    info = funcs["cacheplug"].cache_info()  # type: ignore[attr-defined]
    assert info.misses == 1 and info.hits > HIT_OPS, info


# -- async memory hit, timed inside one running loop ----------------------------------------

ASYNC_OPS = 5_000


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def async_fn(side: str) -> Callable[..., Any]:
    if side == "cacheplug":
        cache = Cache([MemoryTier()])

        @cached(TTL, cache=cache)
        async def f(a: int, b: str) -> dict[str, Any]:
            return VALUE

        return f

    @aiocache.cached(ttl=int(TTL), cache=aiocache.SimpleMemoryCache, timeout=0)
    async def g(a: int, b: str) -> dict[str, Any]:
        return VALUE

    return g


def bench_async_memory_hit(benchmark: Any, bench_pass: int, loop: asyncio.AbstractEventLoop) -> None:
    sides = {}
    for side in ("cacheplug", "aiocache"):
        f = async_fn(side)
        assert loop.run_until_complete(f(1, "x")) == VALUE
        run = await_loop(f, (1, "x"), ASYNC_OPS)
        sides[side] = _runner(loop, run)
    interleaved(benchmark, "async_hit", sides, ASYNC_OPS, 10, clock="cpu")


def _runner(loop: asyncio.AbstractEventLoop, run: Callable[[], Any]) -> Callable[[], Any]:
    return lambda: loop.run_until_complete(run())


# -- memory miss + store --------------------------------------------------------------------

MISS_OPS = 1_000
MISS_CAPACITY = 10_000


def bench_memory_miss(benchmark: Any, bench_pass: int) -> None:
    """Steady state: both caches hold MISS_CAPACITY entries, so every miss stores and evicts."""
    calls = {"cacheplug": itertools.count(), "cachetools_ttl_lock": itertools.count()}

    def compute(counter: Any) -> Callable[[int, str], dict[str, Any]]:
        def f(a: int, b: str) -> dict[str, Any]:
            next(counter)
            return VALUE

        return f

    funcs: dict[str, Any] = {
        "cacheplug": cached(TTL, cache=Cache([MemoryTier(max_entries=MISS_CAPACITY)]))(
            compute(calls["cacheplug"])
        ),
        "cachetools_ttl_lock": cachetools.cached(
            cachetools.TTLCache(MISS_CAPACITY, TTL), lock=threading.Lock()
        )(compute(calls["cachetools_ttl_lock"])),
    }
    fresh = itertools.count(10_000_000)
    for f in funcs.values():
        for _ in range(MISS_CAPACITY):
            f(next(fresh), "x")
    keys: dict[str, list[int]] = {side: [] for side in funcs}

    def setup() -> None:
        # New key objects for every round and side, made outside the timed region.
        for side in funcs:
            keys[side] = [next(fresh) for _ in range(MISS_OPS)]

    def loop_of(side: str) -> Callable[[], None]:
        f = funcs[side]

        def run() -> None:
            for k in keys[side]:
                f(k, "x")

        return run

    interleaved(
        benchmark, "miss", {side: loop_of(side) for side in funcs}, MISS_OPS, 15, clock="cpu", setup=setup
    )
    for side, f in funcs.items():
        before = next(calls[side])
        f(keys[side][-1], "x")  # the last key of the last round is now a hit
        assert next(calls[side]) == before + 1, side


# -- two threads on a hot set ---------------------------------------------------------------

THREAD_OPS = 30_000
HOT_KEYS = list(range(1000, 1100))


def threaded_run(f: Callable[..., Any], n_threads: int) -> Callable[[], None]:
    repeat = THREAD_OPS // len(HOT_KEYS)

    def worker() -> None:
        for _ in range(repeat):
            for k in HOT_KEYS:
                f(k, "x")

    def run() -> None:
        threads = [threading.Thread(target=worker) for _ in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    return run


@pytest.mark.parametrize("side", ["cacheplug", "cachetools_lru_lock"])
def bench_threads_hot_set(benchmark: Any, bench_pass: int, side: str) -> None:
    """One thread making THREAD_OPS hits, then two threads making THREAD_OPS each, alternating."""
    f = cacheplug_memory_fn() if side == "cacheplug" else cachetools_fn("lru")
    for k in HOT_KEYS:
        f(k, "x")
    sides = {"threads2": threaded_run(f, 2), "threads1": threaded_run(f, 1)}
    # ops: the one-thread side makes THREAD_OPS calls, the two-thread side twice as many.
    series = interleaved(benchmark, f"threads.{side}", sides, THREAD_OPS, 8, lead="threads2")
    series[f"threads.{side}.threads2"] = [v / 2 for v in series[f"threads.{side}.threads2"]]
    benchmark.extra_info["series"] = series
    if side == "cacheplug":
        assert f.cache_info().misses == len(HOT_KEYS)  # type: ignore[attr-defined]


# -- memory per entry -------------------------------------------------------------------------

ENTRIES = 100_000


def bytes_per_entry(fill: Callable[[], None]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        fill()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / ENTRIES


@pytest.mark.parametrize("side", ["cacheplug", "cachetools_ttl_lock", "lru_cache"])
def bench_memory_per_entry(benchmark: Any, side: str) -> None:
    """Bytes the cache allocates per entry; argument objects are created before measuring."""
    if side == "cacheplug":
        f = cacheplug_memory_fn(max_entries=2 * ENTRIES)
    elif side == "cachetools_ttl_lock":
        f = cachetools_fn("ttl", maxsize=2 * ENTRIES)
    else:
        f = lru_fn(maxsize=2 * ENTRIES)
    f(-1, "warm")  # first call: bindings and other one-off structures, not per entry
    keys = list(range(5_000_000, 5_000_000 + ENTRIES))
    text = "x"
    result: dict[str, float] = {}

    def fill() -> None:
        for k in keys:
            f(k, text)

    def measure() -> None:
        result["bytes"] = bytes_per_entry(fill)

    record(benchmark, f"bytes.{side}", ENTRIES)
    benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info["bytes_per_entry"] = result["bytes"]
    size = (
        f.cache_info().currsize  # type: ignore[attr-defined]
        if side != "cachetools_ttl_lock"
        else len(f.store)  # type: ignore[attr-defined]
    )
    assert size == ENTRIES + 1, size
    gc.collect()
