"""Issue 8 ("Stats"): what recording adds to a memory hit.

* **recording**: the memory hit of ``f(1, "x")`` on the default generated fast path, which
  counts the hit and times 1 in 64 hits into the function's latency histogram;
* **bare**: the same hit path generated without the recording
  (``cacheplug.fastpath.RECORD_HITS = False`` while the function is decorated): it counts
  the hit (``cache_info()`` needs it) and times none.

Both caches are kept at the steady state of the other benchmarks: a
``MemoryTier(max_entries=1024)`` filled past its bound, and every round (untimed) stores
new keys, so each cache keeps evicting while the hot key stays (it is read all along).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _support import TTL, VALUE, call_loop, full_and_churning, interleaved

import cacheplug.fastpath
from cacheplug import Cache, MemoryTier, cached

CAPACITY = 1024
HIT_OPS = 10_000
CHURN = 64  # new keys stored per round, off the clock


def _function(record_hits: bool) -> tuple[Callable[..., Any], MemoryTier]:
    memory = MemoryTier(max_entries=CAPACITY)
    saved = cacheplug.fastpath.RECORD_HITS
    cacheplug.fastpath.RECORD_HITS = record_hits
    try:

        @cached(TTL, cache=Cache([memory]))
        def f(a: int, b: str) -> dict[str, Any]:
            return VALUE

        assert f(1, "x") is VALUE  # binds: the fast path is generated now, with or without
    finally:
        cacheplug.fastpath.RECORD_HITS = saved
    return f, memory


def bench_memory_hit_recording(benchmark: Any, bench_pass: int) -> None:
    funcs: dict[str, Callable[..., Any]] = {}
    tiers: dict[str, MemoryTier] = {}
    for side, record_hits in (("recording", True), ("bare", False)):
        funcs[side], tiers[side] = _function(record_hits)
    churn = full_and_churning(list(funcs.values()), CAPACITY, CHURN)
    evicted = {side: tier.evictions for side, tier in tiers.items()}
    assert all(evicted.values()), evicted

    sides = {side: call_loop(f, (1, "x"), HIT_OPS) for side, f in funcs.items()}
    series = interleaved(
        benchmark, "stats_hit", sides, HIT_OPS, 15, lead="recording", clock="cpu", setup=churn
    )
    rounds = len(series["stats_hit.recording"]) + 1  # the warm-up round too
    for side, f in funcs.items():
        info = f.cache_info()  # type: ignore[attr-defined]
        # The hot key was a hit in every timed call; it missed twice, first and after the fill
        # (which evicted it), and every other miss was a new key.
        assert info.hits == rounds * HIT_OPS, (side, info)
        assert info.misses == 2 + 3 * CAPACITY + rounds * CHURN, (side, info)
        assert tiers[side].evictions > evicted[side], side  # it evicted while measured
        sampled = info.stats.hit_latency["memory"].count
        if side == "recording":
            assert abs(sampled - info.hits // 64) <= 1, (sampled, info.hits)
        else:
            assert sampled == 0, sampled
