"""Issue 7 ("the house"): the evicting miss, and a hit with a miss-only middleware installed.

* **evicting miss**: a memory-only ``Cache([MemoryTier(max_entries=1024)])`` kept full, so
  that every timed call of ``f(i: int, s: str)`` is a miss that computes, stores and evicts;
  against cachetools' unlocked ``cached(LRUCache(1024))`` and cachebox's
  ``cached(TTLCache(1024, ttl))`` fed the same argument stream (ever-new ints);
* **miss-only middleware**: the memory hit of ``f(1, "x")`` in a cache whose one middleware
  declares that it does not observe lookups (``observes`` without ``"get"``), against the same
  hit in a cache without middleware.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import cachebox
import cachetools
from _support import TTL, VALUE, call_loop, interleaved

from cacheplug import Cache, MemoryTier, cached
from cacheplug.middleware import Op

CAPACITY = 1024
MISS_OPS = 1_000
HIT_OPS = 10_000


# -- miss + store in the evicting steady state ------------------------------------------------


def _counting(counter: Callable[[], object]) -> Callable[[int, str], dict[str, Any]]:
    def f(i: int, s: str) -> dict[str, Any]:
        counter()
        return VALUE

    return f


def bench_evicting_miss(benchmark: Any, bench_pass: int) -> None:
    """Every timed call is a miss into a full cache: compute, store, evict (1024 entries)."""
    computed = {side: itertools.count() for side in ("cacheplug", "cachetools_lru", "cachebox_ttl")}
    memory = MemoryTier(max_entries=CAPACITY)
    lru: Any = cachetools.LRUCache(CAPACITY)
    ttl: Any = cachebox.TTLCache(CAPACITY, TTL)
    funcs: dict[str, Callable[[int, str], Any]] = {
        "cacheplug": cached(TTL, cache=Cache([memory]))(_counting(computed["cacheplug"].__next__)),
        # Unlocked, as cachetools and cachebox are used by default; postprocess=None: return
        # the computed object itself, as cacheplug does.
        "cachetools_lru": cachetools.cached(lru)(_counting(computed["cachetools_lru"].__next__)),
        "cachebox_ttl": cachebox.cached(ttl, postprocess=None)(_counting(computed["cachebox_ttl"].__next__)),
    }
    fresh = itertools.count(20_000_000)
    for f in funcs.values():  # fill past the bound: the steady state, not the first fill
        for i in range(3 * CAPACITY):
            f(10_000_000 - i, "x")
    keys: list[int] = []
    text = "x"

    def setup() -> None:
        # One stream of new argument objects per round, made outside the timed region and
        # fed to every side: each call is a miss everywhere.
        keys[:] = [next(fresh) for _ in range(MISS_OPS)]

    def loop_of(side: str) -> Callable[[], None]:
        f = funcs[side]

        def run() -> None:
            for k in keys:
                f(k, text)

        return run

    before = {side: next(c) for side, c in computed.items()}
    evicted = memory.evictions
    series = interleaved(
        benchmark,
        "evict_miss",
        {side: loop_of(side) for side in funcs},
        MISS_OPS,
        20,
        clock="cpu",
        setup=setup,
    )
    rounds = len(next(iter(series.values()))) + 1  # the warm-up round was timed too
    for side, counter in computed.items():
        # Every call of every round computed (the +1: next() above and here).
        assert next(counter) == before[side] + rounds * MISS_OPS + 1, side
    assert len(lru) == CAPACITY and len(ttl) == CAPACITY
    # Full all along: cacheplug evicts in batches of 1/64 of the bound, so it holds between
    # 1008 and 1024 entries, and it evicted as many entries as it stored.
    info = funcs["cacheplug"].cache_info()  # type: ignore[attr-defined]
    assert CAPACITY - CAPACITY // 64 <= info.currsize <= CAPACITY, info
    assert abs(memory.evictions - evicted - rounds * MISS_OPS) <= CAPACITY // 64, memory.evictions
    assert info.misses >= rounds * MISS_OPS, info


# -- a hit with a miss-only middleware installed -----------------------------------------------


class MissOnly:
    """A middleware that acts on computations, stores and invalidations, never on lookups."""

    observes = frozenset({"compute", "set", "invalidate"})

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, op: Op, call_next: Callable[[Op], Any]) -> Any:
        self.seen.append(op.kind)
        return call_next(op)


def bench_hit_with_miss_only_middleware(benchmark: Any, bench_pass: int) -> None:
    middleware = MissOnly()
    funcs = {}
    for side, chain in (("cacheplug", [middleware]), ("none", [])):

        @cached(TTL, cache=Cache([MemoryTier()], middleware=chain))
        def f(a: int, b: str) -> dict[str, Any]:
            return VALUE

        assert f(1, "x") is VALUE and f(1, "x") is VALUE
        funcs[side] = f
    seen = len(middleware.seen)
    sides = {side: call_loop(f, (1, "x"), HIT_OPS) for side, f in funcs.items()}
    interleaved(benchmark, "mw_hit", sides, HIT_OPS, 15, clock="cpu")
    for f in funcs.values():
        info = f.cache_info()  # type: ignore[attr-defined]
        assert info.misses == 1 and info.hits > HIT_OPS, info
    # It is installed (it saw the first call's computation) and was never asked about a hit.
    assert "compute" in middleware.seen, middleware.seen
    assert "get" not in middleware.seen and len(middleware.seen) == seen, middleware.seen[:8]
