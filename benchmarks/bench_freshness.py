"""Issue 9 ("Freshness options"): what ``early_refresh=`` and the stale options add to a hit.

Three memory-only caches, one function each, the hit of ``f(1, "x")`` on the generated fast
path, far from expiry (ttl 300 s, the hit comes right after the store):

* **off**: ``@cached(TTL)``;
* **early_refresh**: ``@cached(TTL, early_refresh=True)``: its entry's ``deadline`` is
  ``refresh_from = expiry - 10·δ·β``, so the hit makes the same one comparison (and draws no
  random number);
* **stale_options**: ``@cached(TTL, stale_ttl=60, stale_if_error=60)``: its entry is a
  ``PolicyEntry`` (its expiry and windows as three more slots), read by the same hit path.

The targets: ``early_refresh`` adds at most 5% (issue 9), the stale options nothing
measurable (the same 5%).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _support import TTL, VALUE, call_loop, interleaved

from cacheplug import Cache, MemoryTier, cached
from cacheplug.envelope import PolicyEntry

HIT_OPS = 10_000

OPTIONS: dict[str, dict[str, Any]] = {
    "off": {},
    "early_refresh": {"early_refresh": True},
    "stale_options": {"stale_ttl": 60, "stale_if_error": 60},
}


def _function(options: dict[str, Any]) -> Callable[..., Any]:
    @cached(TTL, cache=Cache([MemoryTier()]), **options)
    def f(a: int, b: str) -> dict[str, Any]:
        return VALUE

    assert f(1, "x") is VALUE  # stored, and the fast path bound
    return f


def _entry(f: Any) -> Any:
    """The memory entry of ``f(1, "x")``."""
    return f._self_core.bound[1].shelf[(1, "x")]


def bench_freshness_hit(benchmark: Any, bench_pass: int) -> None:
    funcs = {side: _function(options) for side, options in OPTIONS.items()}
    entries = {side: _entry(f) for side, f in funcs.items()}
    # What each side measures: the early-refreshed entry's deadline is its refresh_from,
    # before its expiry; the stale options' entry carries its windows.
    assert entries["off"].deadline == entries["off"].expires
    assert entries["early_refresh"].deadline < entries["early_refresh"].expires
    assert type(entries["stale_options"]) is PolicyEntry
    assert entries["stale_options"].stale_until == entries["stale_options"].expires + 60

    sides = {side: call_loop(f, (1, "x"), HIT_OPS) for side, f in funcs.items()}
    series = interleaved(benchmark, "fresh_hit", sides, HIT_OPS, 15, lead="early_refresh", clock="cpu")
    rounds = len(series["fresh_hit.early_refresh"]) + 1  # the warm-up round too
    for side, f in funcs.items():
        info = f.cache_info()  # type: ignore[attr-defined]
        assert info.hits == rounds * HIT_OPS and info.misses == 1, (side, info)
        # Every timed call was a plain hit: nothing was refreshed, nothing served stale.
        stats = info.stats
        assert stats.stale == stats.refreshes == 0, (side, stats)
        assert f._self_core.bound[0].background.pending == 0  # type: ignore[attr-defined]
        assert _entry(f) is entries[side]  # the entry stored at the start served every hit
