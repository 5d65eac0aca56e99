"""A cache's counters, gathered into one typed snapshot (:class:`~cacheplug.CacheStats`).

Counters are exact and cheap: ``itertools.count`` tallies and latency histograms per
binding (one function object in this cache), summed per function name when asked; those of
garbage-collected functions are folded into their name's record. Memory hits are the hits
no shared tier answered.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..statistics import CacheStats, FunctionStats, TierStats
from ..tiers.capabilities import CountsDamage, Measured

if TYPE_CHECKING:
    from .facade import Cache

__all__ = ["snapshot"]


def snapshot(cache: Cache) -> CacheStats:
    """Every counter of ``cache``, per function and per tier, and their totals."""
    names = tier_names(cache)
    functions = dict(cache.bindings.fold_retired(names))
    for binding in cache.bindings.all():
        reading = binding.meter.read(binding.ident, names)
        found = functions.get(reading.name)
        functions[reading.name] = reading if found is None else found.plus(reading)
    functions = {name: stats for name, stats in functions.items() if stats.calls or name != "<direct>"}
    total = FunctionStats("")
    for stats in functions.values():
        total = total.plus(stats)
    memory = cache.memory
    damaged = [t for t in cache.tiers if isinstance(t, CountsDamage)]
    tiers = _tiers(cache, total)  # first: a tier that cannot be measured counts a fault
    return CacheStats(
        hits=total.hits,
        misses=total.misses,
        stale=total.stale,
        coalesced=total.coalesced,
        errors=total.errors,
        hit_rate=total.hit_rate,
        refreshes=total.refreshes,
        refresh_errors=total.refresh_errors,
        tier_hits={name: total.tier_hits.get(name, 0) for name in names if name},
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
        epoch=max(cache.epoch[0], 0),
        functions=functions,
        tiers=tiers,
        time=cache.clock(),
        pid=os.getpid(),
        namespace=cache.namespace,
    )


def tier_names(cache: Cache) -> list[str]:
    """The memory tier's name (``""`` without one), then the shared tiers' names."""
    return [cache.memory.name if cache.memory is not None else "", *(t.name for t in cache.tiering.lower)]


def _tiers(cache: Cache, total: FunctionStats) -> dict[str, TierStats]:
    memory = cache.memory
    sizes: dict[str, tuple[int | None, int | None]] = {}
    if memory is not None:
        sizes[memory.name] = memory.measure()
    for tier in cache.tiering.lower:
        sizes[tier.name] = tier.measure() if isinstance(tier, Measured) else (None, None)
    # The faults after measuring: a measure that failed is in this snapshot already.
    faults: dict[str, dict[str, int]] = {}
    for where, count in cache.faults.counts().items():
        tier_name, _, op = where.rpartition(".")
        faults.setdefault(tier_name, {})[op] = count
    return {
        name: TierStats(
            name,
            total.tier_hits.get(name, 0),
            entries,
            size,
            memory.evictions if memory is not None and name == memory.name else None,
            faults.get(name, {}),
        )
        for name, (entries, size) in sizes.items()
    }
