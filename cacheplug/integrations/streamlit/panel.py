"""``cache_panel()``: the monitor's figures of a cache, drawn with Streamlit elements.

The figures are those of ``cacheplug.performance_report`` (every process of the host that
publishes beside the cache's disk tier, plus a fresh snapshot of this one): the hit rate and
the outcomes, per function its counts and latency percentiles, per tier its hits, entries
and bytes. Alerts come from a :class:`~cacheplug.Monitor`, when one is given: those firing
now, then the recent ones. The panel draws from the report dict alone, which it returns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ...cache import Cache
from ...errors import ConfigurationError
from ...observe.monitor import Monitor, performance_report
from ...observe.report import format_bytes, format_seconds
from .._require import require

st = require("streamlit", "streamlit")

__all__ = ["cache_panel"]

# The report's outcome fields (by function) and their labels.
_FIELDS = (
    ("hits", "Hits"),
    ("misses", "Misses"),
    ("stale", "Stale"),
    ("coalesced", "Coalesced"),
    ("errors", "Errors"),
)
_OUTCOMES = (
    ("hit", "Hits"),
    ("miss", "Misses"),
    ("stale", "Stale"),
    ("coalesced", "Coalesced"),
    ("error", "Errors"),
)


def _when(time: float) -> str:
    """A monitor's time: ISO 8601 UTC when it is a wall-clock time, else the number."""
    return datetime.fromtimestamp(time, UTC).isoformat(timespec="seconds") if time > 1e9 else f"{time:g}"


def _count(value: int | None) -> str:
    # Every cell is text: a column mixing numbers and "-" is not one Arrow type.
    return "-" if value is None else f"{value:,}"


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def cache_panel(
    monitor: Monitor | None = None, *, cache: Cache | None = None, title: str | None = "Cache"
) -> dict[str, Any]:
    """Draw the cache's figures in the app (where it is called: a page, ``st.sidebar``, a column).

    ``monitor``: a :class:`~cacheplug.Monitor` whose alerts to show (its cache is the one
    shown); build it once per process, e.g. in an ``st.cache_resource`` function, since the
    script runs again on every interaction. ``cache``: the cache to show without a monitor
    (default: the default cache). ``title``: a subheader above the panel (``None``: none).

    Draws: the hit rate, calls and the count of each outcome (``st.metric``); a table per
    function (calls, hit rate, outcomes, trend); a table of latency percentiles (p50, p95,
    p99 of computations and of hits by tier); a table per tier (hits, entries, bytes,
    evictions, faults); the alerts firing (``st.error``) and the recent ones. Returns the
    report dict the panel was drawn from (see ``cacheplug.observe.report``).
    """
    if monitor is not None and not isinstance(monitor, Monitor):
        raise ConfigurationError(f"cache_panel(monitor=...) takes a cacheplug.Monitor, got {monitor!r}")
    if monitor is not None and cache is not None and cache is not monitor.cache:
        raise ConfigurationError("cache_panel() shows the monitor's cache: pass monitor= or cache=, not both")
    chosen = monitor.cache if monitor is not None else cache
    report = performance_report(chosen)
    if title:
        st.subheader(title)
    _totals(report)
    _functions(report)
    _latencies(report)
    _tiers(report)
    _alerts(monitor)
    processes = len(report["pids"])
    st.caption(
        f"{processes} process{'es' if processes != 1 else ''} of this host, "
        f"report generated at {report['generated_at']}"
    )
    return report


def _totals(report: dict[str, Any]) -> None:
    totals = report["totals"]
    columns = st.columns(2 + len(_OUTCOMES))
    columns[0].metric("Hit rate", _percent(totals["hit_rate"]) if totals["calls"] else "-")
    columns[1].metric("Calls", _count(totals["calls"]))
    for column, (outcome, label) in zip(columns[2:], _OUTCOMES, strict=True):
        column.metric(label, _count(totals["outcomes"][outcome]))


def _functions(report: dict[str, Any]) -> None:
    functions = report["functions"]
    st.markdown("**Functions**")
    if not functions:
        st.info("No cached call yet.")
        return
    st.table(
        [
            {
                "function": name,
                "calls": _count(f["calls"]),
                "hit rate": _percent(f["hit_rate"]),
                **{label.lower(): _count(f[field]) for field, label in _FIELDS},
                "trend": f["trend"] or "-",
            }
            for name, f in functions.items()
        ]
    )


def _latencies(report: dict[str, Any]) -> None:
    rows = []
    for name, f in report["functions"].items():
        measured = [("compute", f["compute"])] + [(f"hit: {tier}", s) for tier, s in f["hit_latency"].items()]
        for what, summary in measured:
            if summary["count"]:
                rows.append(
                    {
                        "function": name,
                        "latency of": what,
                        "count": _count(summary["count"]),
                        **{q: format_seconds(summary[q]) for q in ("p50", "p95", "p99")},
                    }
                )
    if rows:
        st.markdown("**Latency percentiles**")
        st.table(rows)


def _tiers(report: dict[str, Any]) -> None:
    tiers = report["tiers"]
    if not tiers:
        return
    st.markdown("**Tiers**")
    st.table(
        [
            {
                "tier": name,
                "hits": _count(t["hits"]),
                "entries": _count(t["entries"]),
                "size": format_bytes(t["bytes"]),
                "evictions": _count(t["evictions"]),
                "faults": _count(sum(t["faults"].values())),
            }
            for name, t in tiers.items()
        ]
    )


def _alerts(monitor: Monitor | None) -> None:
    st.markdown("**Alerts**")
    if monitor is None:
        st.caption("Alerts come from a monitor: cache_panel(monitor=cacheplug.start_monitoring()).")
        return
    firing = monitor.firing
    for alert in firing:
        st.error(alert.message)
    if not firing:
        st.success("No alert firing.")
    recent = monitor.alerts
    if recent:
        st.table(
            [
                {
                    "time": _when(a.time),
                    "state": a.state,
                    "rule": a.rule,
                    "subject": a.subject,
                    "message": a.message,
                }
                for a in reversed(recent[-20:])
            ]
        )
