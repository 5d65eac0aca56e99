"""Issue 3: tag invalidation cost, and hits with host-wide coherence and tag checks.

* coherent hit: ``Cache([MemoryTier(), DiskTier(dir)])`` (host-wide versions), an entry with
  four tags and a ``depends_on``, nothing invalidated since it was stored; compared with the
  core hit (``Cache([MemoryTier()])``, no tags) on the same call pattern;
* the same while a background thread invalidates *other* tags about 1,000 times a second
  (paced with ``time.perf_counter``; the achieved rate is recorded and checked);
* ``invalidate(tags=[t])`` where ``t`` is carried by 1,000,000 entries vs by 1 entry;
* diskcache's own ``evict(tag)`` at 10k / 100k / 1M rows, for reference.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskcache
import pytest
from _support import TTL, VALUE, Stopwatch, call_loop, interleaved, keys_loop, record

from cacheplug import Cache, DiskTier, Entry, MemoryTier, cached

TAGS = ["user:{a}", "lang:{b}", "plan:pro", "region:eu"]
HOT = list(range(2000, 3000))  # the hot set of the "hot1000" pattern
ONE_OPS = 10_000
HOT_REPEAT = 10
RATE = 1000.0  # background invalidations per second


def core_fn() -> Callable[..., Any]:
    cache = Cache([MemoryTier()])

    @cached(TTL, cache=cache)
    def f(a: int, b: str) -> dict[str, Any]:
        return VALUE

    return f


def coherent_fn(directory: Path) -> tuple[Cache, Callable[..., Any]]:
    cache = Cache([MemoryTier(), DiskTier(directory)])

    @cached(TTL, cache=cache)
    def source(a: int) -> int:
        return a

    @cached(TTL, cache=cache, tags=TAGS, depends_on=[source])
    def f(a: int, b: str) -> dict[str, Any]:
        return VALUE

    return cache, f


class Invalidator:
    """A thread invalidating tags no benchmarked entry carries, ``RATE`` times a second,
    while ``active`` is set (the rounds of the side under load)."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.stop = threading.Event()
        self.active = threading.Event()
        self.count = 0
        self.active_s = 0.0
        self._since = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        period = 1.0 / RATE
        deadline = time.perf_counter()
        while not self.stop.is_set():
            if not self.active.is_set():
                self.active.wait(0.05)
                deadline = time.perf_counter()
                continue
            self.cache.invalidate(tags=[f"other:{self.count % 997}"])
            self.count += 1
            deadline += period
            delay = deadline - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    def resume(self) -> None:
        self._since = time.perf_counter()
        self.active.set()

    def pause(self) -> None:
        self.active.clear()
        self.active_s += time.perf_counter() - self._since

    def __enter__(self) -> Invalidator:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.active.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()

    @property
    def rate(self) -> float:
        return self.count / self.active_s if self.active_s else 0.0


def hit_run(
    f: Callable[..., Any], pattern: str, one_ops: int = ONE_OPS
) -> tuple[Callable[[], None], int, int]:
    """Warm ``f`` for the call pattern; return (loop, ops per round, expected misses)."""
    if pattern == "one":
        f(1, "x")
        return call_loop(f, (1, "x"), one_ops), one_ops, 1
    for k in HOT:
        f(k, "x")
    return keys_loop(f, HOT, "x", HOT_REPEAT), len(HOT) * HOT_REPEAT, len(HOT)


@pytest.mark.parametrize("pattern", ["one", "hot1000"])
def bench_coherent_hit(
    benchmark: Any, bench_pass: int, pattern: str, workdir: Path, closing: list[Any]
) -> None:
    """Single-threaded hits, timed in CPU time: core (memory-only, no tags) vs coherent."""
    funcs = {"core": core_fn()}
    cache, funcs["coherent"] = coherent_fn(workdir / "cp")
    closing.extend(cache.tiers)
    runs = {side: hit_run(f, pattern) for side, f in funcs.items()}
    sides = {side: run for side, (run, _, _) in runs.items()}
    ops = runs["core"][1]
    interleaved(benchmark, f"coherent.{pattern}", sides, ops, 12, lead="coherent", clock="cpu")
    for side, f in funcs.items():
        info = f.cache_info()  # type: ignore[attr-defined]
        assert info.misses == runs[side][2], (side, info)  # every timed call was a hit


@pytest.mark.parametrize("pattern", ["one", "hot1000"])
def bench_hit_under_invalidations(
    benchmark: Any, bench_pass: int, pattern: str, workdir: Path, closing: list[Any]
) -> None:
    """Hits while ~1,000 invalidations/s land on other tags, vs the core hit in the rounds
    in between (background thread paused). Two threads: timed on the wall clock."""
    funcs = {"core": core_fn()}
    cache, funcs["under_invalidation"] = coherent_fn(workdir / "cp")
    closing.extend(cache.tiers)
    # Rounds of ~50 ms or more, so that each one sees dozens of invalidations.
    runs = {side: hit_run(f, pattern, 5 * ONE_OPS) for side, f in funcs.items()}
    sides = {side: run for side, (run, _, _) in runs.items()}
    ops = runs["core"][1]
    # The background thread needs the GIL ~1,000 times a second: with the default 5 ms
    # switch interval it could get it only ~200 times, and every journal write hands the GIL
    # back and forth a few times. Same setting for both sides.
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.00005)
    try:
        with Invalidator(cache) as bg:
            interleaved(
                benchmark,
                f"under_invalidation.{pattern}",
                sides,
                ops,
                12,
                lead="under_invalidation",
                before=lambda side: bg.resume() if side == "under_invalidation" else None,
                after=lambda side: bg.pause() if side == "under_invalidation" else None,
            )
    finally:
        sys.setswitchinterval(old)
    benchmark.extra_info["invalidations_per_s"] = bg.rate
    benchmark.extra_info["invalidations"] = bg.count
    assert bg.count > 0
    for side, f in funcs.items():
        info = f.cache_info()  # type: ignore[attr-defined]
        assert info.misses == runs[side][2], (side, info)  # every timed call was a hit


# -- invalidating a tag on 1,000,000 entries vs on 1 entry ----------------------------------

MILLION = int(os.environ.get("CACHEPLUG_BENCH_MILLION", "1000000"))
DISK_ROWS = 1_000


def populate(cache: Cache, n_memory: int, n_disk: int, tag: str) -> None:
    """``n_disk`` entries through ``Cache.set`` (memory and disk), ``n_memory`` more in memory.

    The memory-only entries are the very ``Entry`` objects ``Cache.set`` would keep (same
    tags, seq and expiry), put straight into the memory tier: writing a million rows to
    the disk tier would take minutes here, and an invalidation never touches disk rows
    anyway (it is one journal record, whatever the number of entries).
    """
    for i in range(n_disk):
        cache.set(f"d{i}", VALUE, ttl=TTL, tags=[tag])
    if not n_memory:
        return
    assert cache.memory is not None
    direct = cache.direct
    tags = (*direct.base_tags, tag)
    now = time.time()
    expires = now + TTL
    seq = cache.epoch[0]
    put = cache.memory.put
    shelf = direct.shelf
    user_key = cache.user_key
    for i in range(n_memory):
        put(shelf, user_key(f"m{i}"), Entry(VALUE, created=now, expires=expires, seq=seq, tags=tags))  # type: ignore[arg-type]


def bench_invalidate_tag(benchmark: Any, workdir: Path, closing: list[Any]) -> None:
    """Rounds alternate: invalidate the tag of the 1M-entry cache, then that of the 1-entry one."""
    caches = {}
    setup_s = {}
    for side, n_memory, n_disk in (("million", MILLION, DISK_ROWS), ("one", 0, 1)):
        cache = caches[side] = Cache(
            [MemoryTier(max_entries=n_memory + n_disk + 10), DiskTier(workdir / side)]
        )
        closing.extend(cache.tiers)
        with Stopwatch() as build:
            populate(cache, n_memory, n_disk, "hot-tag")
        setup_s[side] = build.seconds
        assert len(cache.memory) == n_memory + n_disk  # type: ignore[arg-type]
    probes = {"million": ["d0", "m0", f"m{MILLION - 1}"], "one": ["d0"]}
    for side, cache in caches.items():
        assert all(cache.get(p) == VALUE for p in probes[side])
    sides = {side: functools.partial(cache.invalidate, tags=["hot-tag"]) for side, cache in caches.items()}
    interleaved(benchmark, "invalidate", sides, 1, 40, lead="million")
    benchmark.extra_info.update(entries=MILLION + DISK_ROWS, disk_rows=DISK_ROWS, setup_s=setup_s["million"])
    for side, cache in caches.items():
        assert all(cache.get(p) is None for p in probes[side])  # really invalidated


# -- diskcache's own evict(tag), for reference -----------------------------------------------

EVICT_SIZES = [10_000, 100_000, 1_000_000]
EVICT_BUDGET_S = float(os.environ.get("CACHEPLUG_BENCH_EVICT_BUDGET", "120"))


@pytest.mark.parametrize("rows", EVICT_SIZES, ids=["10k", "100k", "1M"])
def bench_diskcache_evict(benchmark: Any, rows: int, workdir: Path, session_notes: dict[str, Any]) -> None:
    forced = os.environ.get("CACHEPLUG_BENCH_EVICT_1M")
    if rows == 1_000_000:
        estimate = session_notes.get("evict_row_s", 0.0) * rows
        if forced == "0" or (forced != "1" and estimate > EVICT_BUDGET_S):
            pytest.skip(
                f"building 1M diskcache rows would take ~{estimate:.0f} s here (> {EVICT_BUDGET_S:.0f} s "
                f"budget); set CACHEPLUG_BENCH_EVICT_1M=1 to run it"
            )
    # tag_index=True is what diskcache recommends for evict(); cull_limit=0 only makes the
    # bulk build faster (no culling check per set) and does not change evict().
    dc = diskcache.Cache(str(workdir / "dc"), tag_index=True, cull_limit=0, size_limit=2**40)
    with Stopwatch() as build, dc.transact():
        for i in range(rows):
            dc.set(f"k{i}", VALUE, tag="hot-tag")
    session_notes["evict_row_s"] = build.seconds / rows
    record(
        benchmark,
        f"evict.{rows}",
        1,
        rows=rows,
        setup_s=build.seconds,
        estimated_1m_setup_s=build.seconds / rows * 1_000_000,
    )
    result: dict[str, int] = {}

    def evict() -> None:
        result["removed"] = dc.evict("hot-tag")

    benchmark.pedantic(evict, rounds=1, iterations=1)
    assert result["removed"] == rows
    dc.close()
