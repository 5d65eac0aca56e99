"""The report as one self-contained HTML page: inline CSS, inline SVG charts, nothing fetched.

Why no script and no network: the page is opened from a file, a CI artifact or an e-mail,
often where no CDN is reachable, so the charts are drawn here in Python as SVG and the page
forbids itself any load (a ``Content-Security-Policy`` of ``default-src 'none'``). Why escape
everything: function names, namespaces, tiers and alert messages come from users' code and
data; every one of them goes through :func:`html.escape`, so a function named ``<script>``
is text on the page, not markup.

Charts (drawn by :mod:`cacheplug.observe.svg`; each an ``<svg class="cp-chart"
data-chart="...">``, found so by tests and styles): ``hit-rate`` (each function's interval
hit rate over time, a line per function and process), per function ``compute-latency`` and
``hit-latency`` (histograms of the latency buckets, the hit one with a bar per tier;
``data-function`` holds the name), and ``tier-entries`` / ``tier-bytes`` (each tier's size
over time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from .report import alert_text, format_bytes, format_seconds
from .svg import COMPUTE_COLOUR, FULL, HALF, Series, histogram, line_chart

__all__ = ["render_html"]


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _cells(values: Sequence[object], tag: str = "td") -> str:
    return "".join(f"<{tag}>{_e(v)}</{tag}>" for v in values)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _function_section(i: int, f: Mapping[str, Any], tier_colours: Mapping[str, int]) -> str:
    name = f["name"]
    attr = f' data-function="{_e(name)}"'
    parts = [f'<section class="cp-function"><h3>{_e(name)}</h3><div class="cp-pair">']
    compute = f["compute"]
    if compute["count"]:
        title = (
            f"{name}: {compute['count']} computations, p50 {format_seconds(compute['p50'])}, "
            f"p95 {format_seconds(compute['p95'])}, p99 {format_seconds(compute['p99'])}"
        )
        bars: Series = ("computations", COMPUTE_COLOUR, _bucket_points(compute))
        parts.append(
            _figure(title, histogram("compute-latency", f"chart-compute-latency-{i}", title, [bars], attr))
        )
    else:
        parts.append('<p class="cp-empty">No computation timed.</p>')
    timed = {tier: r for tier, r in f["hit_latency"].items() if r["count"]}
    if timed:
        title = f"{name}: hits, " + "; ".join(
            f"{tier} {r['count']} timed, p95 {format_seconds(r['p95'])}" for tier, r in timed.items()
        )
        hits = [(f"{tier} hits", tier_colours.get(tier, 0), _bucket_points(r)) for tier, r in timed.items()]
        parts.append(_figure(title, histogram("hit-latency", f"chart-hit-latency-{i}", title, hits, attr)))
    else:
        parts.append('<p class="cp-empty">No hit timed.</p>')
    parts.append("</div></section>")
    return "".join(parts)


def _bucket_points(summary: Mapping[str, Any]) -> list[tuple[float, float | None]]:
    return [(float(b["index"]), float(b["count"])) for b in summary["buckets"]]


def _figure(caption: str, chart: str) -> str:
    return f'<figure class="cp-figure">{chart}<figcaption>{_e(caption)}</figcaption></figure>'


def _hit_rate_series(report: Mapping[str, Any]) -> list[Series]:
    several = len(report["processes"]) > 1
    start = report["span"]["start"] or 0.0
    series: list[Series] = []
    for colour, f in enumerate(report["functions"].values()):
        for run in f["series"]:
            label = f["name"] + (f" (pid {run['pid']})" if several else "")
            series.append((label, colour, [(p["end"] - start, p["hit_rate"]) for p in run["points"]]))
    return series


def _tier_series(report: Mapping[str, Any], field: str) -> list[Series]:
    several = len(report["processes"]) > 1
    start = report["span"]["start"] or 0.0
    series: list[Series] = []
    for colour, t in enumerate(report["tiers"].values()):
        runs = t["series"]
        if t["shared"]:  # one store, whoever measured it: one line
            merged = sorted((p for run in runs for p in run["points"]), key=lambda p: p["time"])
            runs = [{"pid": None, "points": merged}]
        for run in runs:
            points = [(p["time"] - start, p[field]) for p in run["points"]]
            if any(y is not None for _, y in points):
                label = t["name"] + (f" (pid {run['pid']})" if several and run["pid"] is not None else "")
                series.append((label, colour, [(x, None if y is None else float(y)) for x, y in points]))
    return series


def _charts(report: Mapping[str, Any]) -> list[str]:
    span = report["span"]
    length = (span["end"] - span["start"]) if span["start"] is not None else 0.0
    rates = _hit_rate_series(report)
    parts = ["<h2>Hit rate over time</h2>"]
    if any(points for _, _, points in rates):
        title = "Hit rate per interval between snapshots, per function"
        parts.append(
            line_chart("hit-rate", title, rates, span=length, width=FULL, y_label="hit rate", unit="percent")
        )
    else:
        parts.append('<p class="cp-empty">One snapshot per process: no interval yet.</p>')
    parts.append('<h2>Tier sizes</h2><div class="cp-pair">')
    for field, unit in (("entries", "count"), ("bytes", "bytes")):
        series = _tier_series(report, field)
        if series:
            title = f"Tier {field} over time"
            chart = line_chart(
                f"tier-{field}", title, series, span=length, width=HALF, y_label=field, unit=unit
            )
            parts.append(f'<figure class="cp-figure">{chart}</figure>')
    parts.append("</div><h2>Latency per function</h2>")
    colours = {name: i for i, name in enumerate(report["tiers"])}
    parts += [_function_section(i, f, colours) for i, f in enumerate(report["functions"].values())]
    return parts


def _table(ident: str, head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    body = "".join(f"<tr>{_cells(row)}</tr>" for row in rows)
    head_row = f"<thead><tr>{_cells(head, 'th')}</tr></thead>"
    return f'<table class="cp-table" id="{ident}">{head_row}<tbody>{body}</tbody></table>'


def render_html(report: Mapping[str, Any]) -> str:
    """The report (:func:`~cacheplug.observe.report.build_report`'s dict) as one HTML page."""
    totals = report["totals"]
    head = ["function", "calls", "hits", "misses", "stale", "coalesced", "errors", "hit rate"]
    functions = [
        [
            *(f[k] for k in ("name", "calls", "hits", "misses", "stale", "coalesced", "errors")),
            _rate(f["hit_rate"]),
            *(format_seconds(f["compute"][f"p{q}"]) for q in (50, 95, 99)),
            f["trend"] or "-",
        ]
        for f in report["functions"].values()
    ]
    tiers = [
        [
            t["name"] + (" (shared)" if t["shared"] else ""),
            t["hits"],
            "-" if t["entries"] is None else t["entries"],
            format_bytes(t["bytes"]),
            "-" if t["evictions"] is None else t["evictions"],
            sum(t["faults"].values()),
            t["trend"] or "-",
        ]
        for t in report["tiers"].values()
    ]
    alerts = "".join(f"<li>{_e(alert_text(a))}</li>" for a in report["alerts"]) or "<li>None.</li>"
    outcomes = ", ".join(f"{k} {v}" for k, v in totals["outcomes"].items())
    pids = ", ".join(str(p) for p in report["pids"]) or "-"
    meta = f"Generated {report['generated_at']} · processes {pids} · {report['snapshots']} snapshots"
    return "\n".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_e(_POLICY)}">',
            f"<title>cacheplug performance report</title><style>{_STYLE}</style></head><body>",
            "<h1>cacheplug performance report</h1>",
            f'<p class="cp-meta">{_e(meta)}</p>',
            f'<p class="cp-totals"><strong>{_e(totals["calls"])}</strong> calls, hit rate '
            f"<strong>{_e(_rate(totals['hit_rate']))}</strong> ({_e(outcomes)})</p>",
            "<h2>Functions</h2>",
            _table("functions", [*head, "compute p50", "p95", "p99", "trend"], functions),
            "<h2>Tiers</h2>",
            _table("tiers", ["tier", "hits", "entries", "bytes", "evictions", "faults", "trend"], tiers),
            f'<h2>Alerts</h2><ul class="cp-alerts">{alerts}</ul>',
            *_charts(report),
            "</body></html>\n",
        ]
    )


# Nothing is loaded, ever: no script, font, image or stylesheet from anywhere.
_POLICY = "default-src 'none'; style-src 'unsafe-inline'"

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222;
  max-width: 1100px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 24px 0 8px; }
h3 { font-size: 14px; margin: 16px 0 4px; }
.cp-meta { color: #666; margin: 0 0 8px; }
.cp-table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
.cp-table th, .cp-table td { padding: 3px 10px; border-bottom: 1px solid #e3e3e3; text-align: right; }
.cp-table th:first-child, .cp-table td:first-child { text-align: left; }
.cp-table th { background: #f4f4f4; }
.cp-alerts li { margin: 2px 0; }
.cp-chart { display: block; background: #fff; border: 1px solid #e3e3e3; margin: 4px 0 12px;
  max-width: 100%; height: auto; }
.cp-chart text { font: 12px system-ui, sans-serif; fill: #333; }
.cp-chart .cp-axis-label { font-size: 13px; fill: #111; }
.cp-axes line { stroke: #444; } .cp-axes .cp-grid { stroke: #ececec; }
.cp-empty { color: #777; font-style: italic; }
.cp-figure { margin: 0; } .cp-figure figcaption { color: #555; font-size: 12px; margin: -8px 0 8px; }
.cp-pair { display: flex; flex-wrap: wrap; gap: 0 20px; }
.cp-pair .cp-figure { flex: 1 1 530px; max-width: 530px; } .cp-pair .cp-empty { flex: 1 1 530px; }
"""
