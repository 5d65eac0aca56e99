"""Hit-rate trends and latency percentiles over a window of snapshots.

The method, exactly: take the last :data:`INTERVALS` intervals of the window (an interval
is two consecutive snapshots). For each, the function's hit rate in that interval is its
hits (stale values included) over its calls, or, for one tier, the hits that tier served
over the calls; intervals in which the function had no call are skipped (their position
is kept, so a gap does not compress time). Fit a least-squares line through the points
(x = the interval's position, 0, 1, 2...; y = the rate). The slope is the change of the
hit rate per interval: above :data:`DEAD_BAND` (0.02) the trend is ``"improving"``, below
``-DEAD_BAND`` ``"degrading"``, else ``"stable"``. Fewer than 3 points: ``"stable"``.
A tier's own trend (in reports) is the same over the share of every function's calls it
answered.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Literal

from ..histogram import Latency
from ..statistics import CacheStats, FunctionStats

__all__ = [
    "DEAD_BAND",
    "INTERVALS",
    "Trend",
    "classify",
    "every_trend",
    "hit_rates",
    "percentiles",
    "slope",
    "tier_hit_rates",
    "trend",
]

Trend = Literal["improving", "degrading", "stable"]
INTERVALS = 30
"""How many of the latest intervals a trend reads."""
DEAD_BAND = 0.02
"""A slope (hit rate per interval) within ±0.02 is ``"stable"``."""
_MIN_POINTS = 3


def hit_rates(window: Sequence[CacheStats], name: str, tier: str | None = None) -> list[tuple[int, float]]:
    """``(position, rate)`` for each of the last :data:`INTERVALS` intervals in which ``name``
    was called: its hit rate, or the share of its calls ``tier`` answered."""

    def rate(before: CacheStats, after: CacheStats) -> float | None:
        now = after.functions.get(name)
        if now is None:
            return None
        delta = now.minus(before.functions.get(name, FunctionStats(name)))
        return _rate(delta.hits + delta.stale if tier is None else delta.tier_hits.get(tier, 0), delta.calls)

    return _points(window, rate)


def tier_hit_rates(window: Sequence[CacheStats], tier: str) -> list[tuple[int, float]]:
    """``(position, rate)`` for each of the last :data:`INTERVALS` intervals with calls: the
    share of every function's calls that ``tier`` answered."""

    def rate(before: CacheStats, after: CacheStats) -> float | None:
        hits = after.tier_hits.get(tier, 0) - before.tier_hits.get(tier, 0)
        return _rate(hits, after.calls - before.calls)

    return _points(window, rate)


def _rate(hits: int, calls: int) -> float | None:
    return hits / calls if calls > 0 else None


def _points(
    window: Sequence[CacheStats], rate: Callable[[CacheStats, CacheStats], float | None]
) -> list[tuple[int, float]]:
    recent = list(window)[-(INTERVALS + 1) :]
    points = []
    for position, (before, after) in enumerate(itertools.pairwise(recent)):
        value = rate(before, after)
        if value is not None:
            points.append((position, value))
    return points


def slope(points: Sequence[tuple[float, float]]) -> float:
    """The least-squares slope through ``points`` (0.0 for fewer than two distinct x)."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if not spread:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def classify(points: Sequence[tuple[float, float]]) -> Trend:
    """``"improving"``, ``"degrading"`` or ``"stable"`` for a series of ``(x, rate)`` points."""
    if len(points) < _MIN_POINTS:
        return "stable"
    fitted = slope(points)
    if fitted > DEAD_BAND:
        return "improving"
    if fitted < -DEAD_BAND:
        return "degrading"
    return "stable"


def trend(window: Sequence[CacheStats], name: str, tier: str | None = None) -> Trend:
    """The hit-rate trend of function ``name`` (of its ``tier`` hits, when given) over ``window``."""
    return classify([(float(x), y) for x, y in hit_rates(window, name, tier)])


def every_trend(window: Sequence[CacheStats]) -> dict[str, Trend]:
    """The trend of every function of the window's newest snapshot (by qualified name) and
    of every tier (by name: the share of all calls it answered), in one mapping."""
    if not window:
        return {}
    latest = window[-1]
    found: dict[str, Trend] = {name: trend(window, name) for name in latest.functions}
    for tier in latest.tiers:
        found.setdefault(tier, classify([(float(x), y) for x, y in tier_hit_rates(window, tier)]))
    return found


def _summary(reading: Latency) -> dict[str, float | None]:
    return {"p50": reading.percentile(50), "p95": reading.percentile(95), "p99": reading.percentile(99)}


def percentiles(
    window: Sequence[CacheStats], name: str, tier: str | None = None
) -> dict[str, dict[str, float | None]]:
    """``{"hit": {"p50", "p95", "p99"}, "compute": {...}}`` in seconds for function ``name``
    over ``window`` (what its newest snapshot recorded since its oldest), every tier's hits
    together or ``tier``'s only; ``None`` where nothing was recorded."""
    empty = FunctionStats(name)
    delta = empty
    if len(window) >= 2:
        delta = window[-1].functions.get(name, empty).minus(window[0].functions.get(name, empty))
    hits = Latency()
    for where, reading in delta.hit_latency.items():
        if tier is None or where == tier:
            hits = hits.plus(reading)
    return {"hit": _summary(hits), "compute": _summary(delta.compute)}
