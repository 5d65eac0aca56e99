"""One host-wide view out of every process's published snapshots.

Each process that monitors a cache publishes its snapshots beside the disk tier
(``cacheplug.observe.publish``). The CLI adds them up: outcome counters and latency
histograms are summed over processes, per function and per tier. Tiers are not all alike:
a memory tier is each process's own (its entries and bytes add up), a shared tier is one
for all (its size is the latest figure any process saw), and the disk tier's size is
measured here, from its own database, when the caller gives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..histogram import Latency
from ..observe.publish import Published
from ..statistics import SUMMED_COUNTS, CacheStats, FunctionStats, TierStats

__all__ = ["hit_latency", "merged", "per_interval"]

_LOCAL_TIERS = frozenset({"memory"})


def _summed(counts: Sequence[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for one in counts:
        for key, n in one.items():
            out[key] = out.get(key, 0) + n
    return out


def _optional_sum(values: Sequence[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _tiers(snapshots: Sequence[CacheStats], disk: tuple[int, int] | None) -> dict[str, TierStats]:
    latest_first = sorted(snapshots, key=lambda s: s.time, reverse=True)
    names = sorted({name for s in snapshots for name in s.tiers})
    out: dict[str, TierStats] = {}
    for name in names:
        each = [s.tiers[name] for s in latest_first if name in s.tiers]
        hits = sum(t.hits for t in each)
        faults = _summed([dict(t.faults) for t in each])
        if name in _LOCAL_TIERS:
            entries, size = _optional_sum([t.entries for t in each]), _optional_sum([t.bytes for t in each])
            evictions = _optional_sum([t.evictions for t in each])
        else:  # shared: one tier, its latest size
            entries, size, evictions = each[0].entries, each[0].bytes, each[0].evictions
        out[name] = TierStats(name, hits, entries, size, evictions, faults)
    if disk is not None:
        base = out.get("disk", TierStats("disk"))
        out["disk"] = replace(base, entries=disk[0], bytes=disk[1])
    return out


def merged(snapshots: Sequence[CacheStats], disk: tuple[int, int] | None = None) -> CacheStats:
    """The sum of ``snapshots`` (one per process); ``disk``: the disk tier's measured (rows, bytes)."""
    functions: dict[str, FunctionStats] = {}
    for snapshot in snapshots:
        for name, stats in snapshot.functions.items():
            functions[name] = functions[name].plus(stats) if name in functions else stats
    total = {name: sum(getattr(s, name) for s in snapshots) for name in SUMMED_COUNTS}
    calls = sum(total[k] for k in ("hits", "misses", "stale", "coalesced", "errors"))
    namespaces = {s.namespace for s in snapshots}
    degraded = sorted({s.degraded for s in snapshots if s.degraded is not None})
    return CacheStats(
        **total,
        hit_rate=(total["hits"] + total["stale"]) / calls if calls else 0.0,
        tier_hits=_summed([dict(s.tier_hits) for s in snapshots]),
        faults=_summed([dict(s.faults) for s in snapshots]),
        degraded="; ".join(degraded) or None,
        epoch=max((s.epoch for s in snapshots), default=0),
        functions=dict(sorted(functions.items())),
        tiers=_tiers(snapshots, disk),
        time=max((s.time for s in snapshots), default=0.0),
        pid=0,
        namespace=namespaces.pop() if len(namespaces) == 1 else "",
    )


def per_interval(published: Published) -> tuple[dict[str, FunctionStats], float | None]:
    """Per function, what happened in the process's last published interval, and its length.

    The difference of its two latest snapshots; with a single snapshot, everything since
    the process started and ``None`` for the length.
    """
    latest = published.snapshots[-1]
    if len(published.snapshots) < 2:
        return dict(latest.functions), None
    earlier = published.snapshots[-2]
    out = {
        name: stats.minus(earlier.functions[name]) if name in earlier.functions else stats
        for name, stats in latest.functions.items()
    }
    span = latest.time - earlier.time
    return out, span if span > 0 else None


def hit_latency(stats: FunctionStats) -> Latency:
    """The function's hit durations over every tier together."""
    total = Latency()
    for reading in stats.hit_latency.values():
        total = total.plus(reading)
    return total
