"""A cache's counters, gathered into one snapshot.

Counters are exact and cheap: ``itertools.count`` tallies per binding and per shared tier,
summed when asked. Memory hits are not counted one by one (the fast path stays lean): they
are the hits no shared tier answered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..tiers.capabilities import CountsDamage
from .calls import CacheStats

if TYPE_CHECKING:
    from .facade import Cache

__all__ = ["snapshot"]


def snapshot(cache: Cache) -> CacheStats:
    """Counters: hits, misses, per-tier hits, faults, refused stale stores and more."""
    counts = cache.bindings.fold_retired()
    bindings = cache.bindings.all()
    hits = counts[0] + sum(b.hits.value for b in bindings)
    misses = counts[1] + sum(b.misses.value for b in bindings)
    memory = cache.memory
    damaged = [t for t in cache.tiers if isinstance(t, CountsDamage)]
    return CacheStats(
        hits=hits,
        misses=misses,
        hit_rate=hits / (hits + misses) if hits + misses else 0.0,
        tier_hits=_tier_hits(cache, hits),
        entries=len(memory) if memory is not None else 0,
        evictions=memory.evictions if memory is not None else 0,
        faults=cache.faults.counts(),
        stale_sets=cache.tiering.stale_sets.value,
        degraded=cache.degraded,
        unserializable=cache.tiering.unserializable.value,
        corrupt=sum(t.corrupt for t in damaged),
        tampered=sum(t.tampered for t in damaged),
        foreign=sum(t.foreign for t in damaged),
        invalidations=cache.invalidator.count.value,
        epoch=cache.epoch[0],
    )


def _tier_hits(cache: Cache, hits: int) -> dict[str, int]:
    tallies = cache.tiering.tier_hits
    counts = {t.name: c.value for t, c in zip(cache.tiers, tallies, strict=True)}
    if cache.memory is not None:
        counts[cache.memory.name] = hits - sum(counts.values())
    return counts
