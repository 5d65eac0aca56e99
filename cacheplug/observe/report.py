"""A performance report built from stats snapshots: one JSON-ready dict, and the same as plain text.

Why from snapshots: a :class:`~cacheplug.CacheStats` is cumulative since its process started,
so one snapshot gives totals and two consecutive ones give what happened in between (an
interval). A report over a window of snapshots, from one process or several (each process
publishes its own), therefore shows both: totals (the latest snapshot of every process,
summed) and series over time (each process's consecutive snapshots, subtracted). The monitor
(``Monitor.report()``, ``cacheplug.performance_report()``) keeps such a window and calls
:func:`build_report`; :func:`render_text` and :func:`cacheplug.observe.html.render_html`
render the dict, from the dict alone, so a report saved as JSON renders the same later.

The dict (``version`` 1; times are the caches' clock, seconds; durations are seconds;
``None`` where nothing was measured):

- ``version``: 1. ``generated``: when the report was built (``time.time()``);
  ``generated_at``: the same as ISO 8601 UTC text. ``snapshots``: how many went in.
- ``pids``: the processes covered, sorted. ``processes``: one ``{"pid", "namespace",
  "snapshots", "start", "end"}`` per process (and namespace, when one process has several
  caches), ``start``/``end`` the times of its first and latest snapshot.
  ``span``: ``{"start", "end"}`` over every snapshot.
- ``totals``: ``calls``, ``hit_rate`` (hits and stale values served, over calls),
  ``outcomes`` (``{"hit", "miss", "stale", "coalesced", "error"}`` counts), ``tier_hits``
  (by tier) and ``invalidations``; each process's latest snapshot, summed.
- ``functions``: by qualified name, busiest first, each ``{"name", "calls", "hits",
  "misses", "stale", "coalesced", "errors", "hit_rate", "tier_hits", "compute",
  "hit_latency", "series", "trend"}``. Counts are totals as above. ``compute`` and each
  ``hit_latency[tier]`` are latency summaries (below): every computation; every shared-tier
  hit and 1 in 64 memory hits. ``series``: per process, ``{"pid", "namespace", "points"}``
  with one point per interval between consecutive snapshots, ``{"start", "end", "calls",
  "hits", "stale", "hit_rate"}``: the interval's own counts and hit rate (``None`` when the
  interval had no call), not totals since start. ``trend``: as given in ``trends`` (the
  monitor's ``"improving" | "degrading" | "stable"``), else ``None``.
- ``tiers``: by name, each ``{"name", "hits", "entries", "bytes", "evictions", "faults",
  "shared", "series", "trend"}``. A process's own tier (the memory tier: the one that
  counts evictions) is summed over processes; a shared tier (disk, Redis) is one store
  every process measures, so its ``entries``/``bytes`` are its latest reading. ``faults``:
  counts by operation. ``series``: per process, ``{"pid", "namespace", "points"}`` with
  one ``{"time", "hits", "entries", "bytes"}`` point per snapshot.
- ``alerts``: as given (the monitor's alert dicts), made JSON-safe.

A latency summary is ``{"count", "mean", "p50", "p95", "p99", "buckets"}``, ``buckets``
being the histogram's non-empty buckets, ``{"index", "le", "count"}`` with ``le`` the
bucket's upper bound in seconds (``None`` for the last, unbounded one). A percentile is its
bucket's upper bound (:meth:`cacheplug.Latency.percentile`): high by at most 19%, never low.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..histogram import Latency, bucket_bound
from ..statistics import OUTCOMES, CacheStats, FunctionStats, TierStats

__all__ = [
    "REPORT_VERSION",
    "alert_text",
    "build_report",
    "format_bytes",
    "format_seconds",
    "latency_summary",
    "render_text",
]

REPORT_VERSION = 1
"""The version of the report dict's layout (``report["version"]``)."""

_PERCENTILES = (50, 95, 99)
_Process = tuple[int, str]


def build_report(
    snapshots: Sequence[CacheStats],
    *,
    alerts: Sequence[Mapping[str, Any]] = (),
    trends: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The report over ``snapshots`` (any order, any processes): see the module's docstring."""
    trends = trends or {}
    runs = _by_process(snapshots)
    latest = [run[-1] for run in runs.values()]
    functions = _summed_functions(latest)
    total = FunctionStats("")
    for stats in functions.values():
        total = total.plus(stats)
    generated = time.time()
    times = [s.time for s in snapshots]
    return {
        "version": REPORT_VERSION,
        "generated": generated,
        "generated_at": datetime.fromtimestamp(generated, UTC).isoformat(timespec="seconds"),
        "snapshots": len(snapshots),
        "pids": sorted({s.pid for s in snapshots}),
        "processes": [
            {"pid": pid, "namespace": ns, "snapshots": len(run), "start": run[0].time, "end": run[-1].time}
            for (pid, ns), run in runs.items()
        ],
        "span": {"start": min(times, default=None), "end": max(times, default=None)},
        "totals": {
            "calls": total.calls,
            "hit_rate": total.hit_rate,
            "outcomes": total.outcomes(),
            "tier_hits": dict(total.tier_hits),
            "invalidations": sum(s.invalidations for s in latest),
        },
        "functions": {
            name: _function(stats, runs, trends.get(name))
            for name, stats in sorted(functions.items(), key=lambda item: (-item[1].calls, item[0]))
        },
        "tiers": _tiers(runs, trends),
        "alerts": [_jsonable(dict(alert)) for alert in alerts],
    }


def latency_summary(reading: Latency) -> dict[str, Any]:
    """A :class:`~cacheplug.Latency` as the report gives it: count, mean, p50/p95/p99, buckets."""
    summary: dict[str, Any] = {"count": reading.count, "mean": reading.mean}
    for q in _PERCENTILES:
        summary[f"p{q}"] = _finite(reading.percentile(q))
    summary["buckets"] = [
        {"index": i, "le": _finite(bucket_bound(i)), "count": n} for i, n in reading.buckets
    ]
    return summary


# -- gathering ----------------------------------------------------------------------------------


def _by_process(snapshots: Iterable[CacheStats]) -> dict[_Process, list[CacheStats]]:
    """Each process's snapshots in time order (ties keep the given order), processes by pid."""
    runs: dict[_Process, list[CacheStats]] = {}
    for snapshot in snapshots:
        runs.setdefault((snapshot.pid, snapshot.namespace), []).append(snapshot)
    return {key: sorted(runs[key], key=lambda s: s.time) for key in sorted(runs)}


def _summed_functions(latest: Iterable[CacheStats]) -> dict[str, FunctionStats]:
    functions: dict[str, FunctionStats] = {}
    for snapshot in latest:
        for name, stats in snapshot.functions.items():
            found = functions.get(name)
            functions[name] = stats if found is None else found.plus(stats)
    return functions


def _interval(later: FunctionStats, earlier: FunctionStats | None) -> FunctionStats:
    """What happened between two snapshots of one function in one process.

    A count that went down means the counters started again (a new cache in that process):
    the interval is then everything the later snapshot counted.
    """
    if earlier is None or later.calls < earlier.calls:
        return later
    return later.minus(earlier)


def _function(
    stats: FunctionStats, runs: Mapping[_Process, list[CacheStats]], trend: str | None
) -> dict[str, Any]:
    series = []
    for (pid, ns), run in runs.items():
        points = []
        for before, after in itertools.pairwise(run):
            now = after.functions.get(stats.name)
            if now is None:
                continue
            delta = _interval(now, before.functions.get(stats.name))
            points.append(
                {
                    "start": before.time,
                    "end": after.time,
                    "calls": delta.calls,
                    "hits": delta.hits,
                    "stale": delta.stale,
                    "hit_rate": delta.hit_rate if delta.calls else None,
                }
            )
        if points:
            series.append({"pid": pid, "namespace": ns, "points": points})
    return {
        "name": stats.name,
        "calls": stats.calls,
        "hits": stats.hits,
        "misses": stats.misses,
        "stale": stats.stale,
        "coalesced": stats.coalesced,
        "errors": stats.errors,
        "hit_rate": stats.hit_rate,
        "tier_hits": dict(stats.tier_hits),
        "compute": latency_summary(stats.compute),
        "hit_latency": {tier: latency_summary(r) for tier, r in stats.hit_latency.items()},
        "series": series,
        "trend": trend,
    }


def _tiers(runs: Mapping[_Process, list[CacheStats]], trends: Mapping[str, str]) -> dict[str, Any]:
    readings: dict[str, list[tuple[float, TierStats]]] = {}  # each process's latest
    series: dict[str, list[dict[str, Any]]] = {}
    for (pid, ns), run in runs.items():
        for name, tier in run[-1].tiers.items():
            readings.setdefault(name, []).append((run[-1].time, tier))
        for name in dict.fromkeys(n for s in run for n in s.tiers):
            points = [
                {"time": s.time, "hits": t.hits, "entries": t.entries, "bytes": t.bytes}
                for s in run
                if (t := s.tiers.get(name)) is not None
            ]
            series.setdefault(name, []).append({"pid": pid, "namespace": ns, "points": points})
    tiers: dict[str, Any] = {}
    for name, found in readings.items():
        shared = all(t.evictions is None for _, t in found)
        newest = max(found, key=lambda item: item[0])[1]
        faults: dict[str, int] = {}
        for _, t in found:
            for op, n in t.faults.items():
                faults[op] = faults.get(op, 0) + n
        tiers[name] = {
            "name": name,
            "hits": sum(t.hits for _, t in found),
            "entries": newest.entries if shared else _sum_known(t.entries for _, t in found),
            "bytes": newest.bytes if shared else _sum_known(t.bytes for _, t in found),
            "evictions": _sum_known(t.evictions for _, t in found),
            "faults": faults,
            "shared": shared,
            "series": series.get(name, []),
            "trend": trends.get(name),
        }
    return tiers


def _sum_known(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)


# -- plain text ---------------------------------------------------------------------------------


def format_seconds(value: float | None) -> str:
    """A duration for people: ``"60 ns"``, ``"1.5 ms"``, ``"2.0 s"``; ``"-"`` for ``None``."""
    if value is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def format_bytes(value: int | None) -> str:
    """A size for people: ``"512 B"``, ``"32.0 KiB"``; ``"-"`` for ``None``."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{value} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell: the first left-aligned, the others right-aligned."""
    widths = [max(len(headers[i]), *(len(r[i]) for r in rows)) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        )

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def _clean(text: object) -> str:
    """A user-controlled string on one line (no control characters to garble a terminal)."""
    return "".join(c if c.isprintable() else "?" for c in str(text))


def render_text(report: Mapping[str, Any]) -> str:
    """The report as plain text: totals, a table per function, hit latencies, tiers, alerts."""
    totals = report["totals"]
    outcomes = ", ".join(f"{k} {totals['outcomes'].get(k, 0)}" for k in OUTCOMES)
    span = report["span"]
    lines = [
        f"cacheplug performance report, generated {report['generated_at']}",
        f"processes: {', '.join(str(p) for p in report['pids']) or '-'}"
        f" ({report['snapshots']} snapshots"
        + (f" over {format_seconds(span['end'] - span['start'])})" if span["start"] is not None else ")"),
        f"totals: {totals['calls']} calls, hit rate {_percent(totals['hit_rate'])} ({outcomes})",
        "",
        "Functions",
    ]
    functions = list(report["functions"].values())
    rows = [
        [
            _clean(f["name"]),
            *(str(f[k]) for k in ("calls", "hits", "misses", "stale", "coalesced", "errors")),
            _percent(f["hit_rate"]),
            *(format_seconds(f["compute"][f"p{q}"]) for q in _PERCENTILES),
            _clean(f["trend"] or "-"),
        ]
        for f in functions
    ]
    headers = ["function", "calls", "hits", "misses", "stale", "coalesced", "errors", "hit rate"]
    lines += _table([*headers, "compute p50", "p95", "p99", "trend"], rows) if rows else ["(no calls)"]
    hit_rows = [
        [
            _clean(f["name"]),
            _clean(tier),
            str(r["count"]),
            *(format_seconds(r[f"p{q}"]) for q in _PERCENTILES),
        ]
        for f in functions
        for tier, r in f["hit_latency"].items()
        if r["count"]
    ]
    if hit_rows:
        lines += ["", "Hit latency", *_table(["function", "tier", "timed", "p50", "p95", "p99"], hit_rows)]
    tier_rows = [
        [
            _clean(t["name"]) + (" (shared)" if t["shared"] else ""),
            str(t["hits"]),
            "-" if t["entries"] is None else str(t["entries"]),
            format_bytes(t["bytes"]),
            "-" if t["evictions"] is None else str(t["evictions"]),
            str(sum(t["faults"].values())),
            _clean(t["trend"] or "-"),
        ]
        for t in report["tiers"].values()
    ]
    if tier_rows:
        headers = ["tier", "hits", "entries", "bytes", "evictions", "faults", "trend"]
        lines += ["", "Tiers", *_table(headers, tier_rows)]
    lines += ["", "Alerts"]
    lines += [f"- {_clean(alert_text(a))}" for a in report["alerts"]] or ["(none)"]
    return "\n".join(lines) + "\n"


_ALERT_KEYS = ("time", "state", "rule", "subject", "value", "threshold", "message")  # Alert.to_dict


def alert_text(alert: Mapping[str, Any]) -> str:
    """One alert on one line: its usual fields (``rule``, ``subject``, ``message``...) first."""
    parts = [f"{k}={_alert_value(k, alert[k])}" for k in _ALERT_KEYS if k in alert and k != "message"]
    parts += [f"{k}={v}" for k, v in alert.items() if k not in _ALERT_KEYS]
    message = alert.get("message")
    return (f"{message} " if message is not None else "") + (f"({', '.join(parts)})" if parts else "")


def _alert_value(key: str, value: Any) -> str:
    if key == "time" and isinstance(value, (int, float)) and value > 1e9:  # a wall-clock time
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
    return str(value)
