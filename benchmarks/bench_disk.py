"""Issues 2, 3 and 6, disk figures: hits from the disk tier (plain, tagged, signed) and misses
stored to memory and disk, against raw ``diskcache.Cache.get``/``set`` of the same value in the
same run.

Each side gets its own directory under one temporary folder on the same file system.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import diskcache
import pytest
from _support import TTL, VALUE, call_loop, interleaved

from cacheplug import Cache, DiskTier, MemoryTier, cached

DISK_HIT_OPS = 200
DISK_MISS_OPS = 50
TAGS = ["user:{a}", "lang:{b}", "plan:pro", "region:eu"]
SECRET = "benchmark-secret-0123456789abcdef"  # signed entries: HMAC-SHA256, verified on read


@pytest.fixture
def raw_dc(workdir: Path) -> Iterator[diskcache.Cache]:
    dc = diskcache.Cache(str(workdir / "raw"))
    try:
        yield dc
    finally:
        dc.close()


def disk_fn(cache: Cache, tagged: bool) -> Callable[..., Any]:
    if not tagged:

        @cached(TTL, cache=cache)
        def f(a: int, b: str) -> dict[str, Any]:
            return VALUE

        return f

    @cached(TTL, cache=cache)
    def source(a: int) -> int:
        return a

    @cached(TTL, cache=cache, tags=TAGS, depends_on=[source])
    def g(a: int, b: str) -> dict[str, Any]:
        return VALUE

    return g


# -- disk hit -------------------------------------------------------------------------------


def bench_disk_hit(
    benchmark: Any, bench_pass: int, workdir: Path, raw_dc: diskcache.Cache, closing: list[Any]
) -> None:
    key = "|fn:benchmarks.bench_disk.f@0123456789ab(i1,s1:x)"
    raw_dc.set(key, VALUE, expire=TTL)
    assert raw_dc.get(key) == VALUE
    sides = {"diskcache_get": call_loop(raw_dc.get, (key,), DISK_HIT_OPS)}
    caches = {}
    for side in ("cacheplug", "cacheplug_tagged", "cacheplug_signed"):
        secret = SECRET if side == "cacheplug_signed" else None
        cache = caches[side] = Cache([DiskTier(workdir / side, secret=secret)])
        closing.extend(cache.tiers)
        f = disk_fn(cache, tagged=side == "cacheplug_tagged")
        assert f(1, "x") == VALUE
        assert f(1, "x") == VALUE
        sides[side] = call_loop(f, (1, "x"), DISK_HIT_OPS)
    interleaved(benchmark, "disk_hit", sides, DISK_HIT_OPS, 12)
    for cache in caches.values():
        stats = cache.stats()
        assert stats["misses"] == 1 and stats["tier_hits"]["disk"] == stats["hits"], stats


# -- miss, stored to memory and disk --------------------------------------------------------


def bench_disk_miss_store(
    benchmark: Any, bench_pass: int, workdir: Path, raw_dc: diskcache.Cache, closing: list[Any]
) -> None:
    fresh = itertools.count(1_000_000)
    keys: dict[str, list[Any]] = {}
    caches: dict[str, Cache] = {}
    funcs: dict[str, Any] = {}
    for side in ("cacheplug", "cacheplug_tagged"):
        cache = caches[side] = Cache([MemoryTier(), DiskTier(workdir / side)])
        closing.extend(cache.tiers)
        funcs[side] = disk_fn(cache, tagged=side == "cacheplug_tagged")
        funcs[side](0, "x")

    def setup() -> None:
        keys["diskcache_set"] = [
            f"|fn:bench.f@0123456789ab(i{next(fresh)},s1:x)" for _ in range(DISK_MISS_OPS)
        ]
        for side in funcs:
            keys[side] = [next(fresh) for _ in range(DISK_MISS_OPS)]

    def raw_set() -> None:
        for k in keys["diskcache_set"]:
            raw_dc.set(k, VALUE, expire=TTL)

    def loop_of(side: str) -> Any:
        f = funcs[side]

        def run() -> None:
            for k in keys[side]:
                f(k, "x")

        return run

    sides = {"diskcache_set": raw_set, **{side: loop_of(side) for side in funcs}}
    interleaved(benchmark, "disk_miss", sides, DISK_MISS_OPS, 12, setup=setup)
    assert raw_dc.get(keys["diskcache_set"][-1]) == VALUE
    for side, cache in caches.items():
        stats = cache.stats()
        assert stats["stale_sets"] == 0 and not stats["faults"], stats
        assert len(cache.tiers[1]) >= DISK_MISS_OPS, side  # type: ignore[arg-type]
