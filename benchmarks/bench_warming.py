"""Issue 9 ("Warming"): what learning usage adds to a memory hit.

* **learning**: the memory hit of ``f(1, "x")`` in a ``Cache(learn=True)``: the generated fast
  path of a learning cache, which also bumps the entry's hit counter (saturating at
  ``HITS_MAX`` between two ticks, so the hot key's counter is saturated most of the time, as
  a hot key's is in a service);
* **plain**: the same function in the same kind of cache without learning (the default fast
  path, generated without the bump).

Both caches are kept at the steady state of the other benchmarks: a
``MemoryTier(max_entries=1024)`` filled past its bound, and every round (untimed) stores new
keys, so each cache keeps evicting while the hot key stays (it is read all along). The
learner's own ticks (one a second, in its cache's background pool) run meanwhile, as they
would in a service; both sides are timed by the process's CPU clock, so a tick's few
milliseconds land on whichever side runs then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _support import TTL, VALUE, call_loop, full_and_churning, interleaved

from cacheplug import Cache, MemoryTier, cached
from cacheplug.fastpath import HITS_MAX

CAPACITY = 1024
HIT_OPS = 10_000
CHURN = 64  # new keys stored per round, off the clock


def _function(learn: bool, closing: list[Any]) -> tuple[Callable[..., Any], Cache]:
    cache = Cache([MemoryTier(max_entries=CAPACITY)], learn=learn)
    closing.append(cache)

    @cached(TTL, cache=cache)
    def f(a: int, b: str) -> dict[str, Any]:
        return VALUE

    assert f(1, "x") is VALUE  # binds: the fast path of this kind of cache is in place
    return f, cache


def bench_memory_hit_learning(benchmark: Any, bench_pass: int, closing: list[Any]) -> None:
    funcs: dict[str, Callable[..., Any]] = {}
    caches: dict[str, Cache] = {}
    for side, learn in (("learning", True), ("plain", False)):
        funcs[side], caches[side] = _function(learn, closing)
    churn = full_and_churning(list(funcs.values()), CAPACITY, CHURN)

    sides = {side: call_loop(f, (1, "x"), HIT_OPS) for side, f in funcs.items()}
    series = interleaved(
        benchmark, "learn_hit", sides, HIT_OPS, 15, lead="learning", clock="cpu", setup=churn
    )
    rounds = len(series["learn_hit.learning"]) + 1  # the warm-up round too
    for side, f in funcs.items():
        info = f.cache_info()  # type: ignore[attr-defined]
        assert info.hits == rounds * HIT_OPS, (side, info)  # every timed call was a memory hit
    learner = caches["learning"].learner
    assert learner is not None and caches["plain"].learner is None
    # The learning side counted its hits on the entry (what a tick reads and zeroes; at most
    # HITS_MAX per tick), the plain side none.
    (binding,) = [b for b in caches["learning"].bindings.all() if b.owner is not None]
    learner.tick()
    assert learner.keys.score((binding, (1, "x"))) >= HITS_MAX / 2
    (plain,) = [b for b in caches["plain"].bindings.all() if b.owner is not None]
    assert plain.shelf[(1, "x")].hits == 0
