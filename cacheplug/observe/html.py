"""The report as one self-contained HTML page: inline CSS, inline SVG charts, nothing fetched.

Why no script and no network: the page is opened from a file, a CI artifact or an e-mail,
often where no CDN is reachable, so the charts are drawn here in Python as SVG and the page
forbids itself any load (a ``Content-Security-Policy`` of ``default-src 'none'``). Why escape
everything: function names, namespaces, tiers and alert messages come from users' code and
data; every one of them goes through :func:`html.escape`, so a function named ``<script>``
is text on the page, not markup.

Charts (each an ``<svg class="cp-chart" data-chart="...">``, found so by tests and styles):
``hit-rate`` (each function's interval hit rate over time, a line per function and
process), per function ``compute-latency`` and ``hit-latency`` (histograms of the latency
buckets, the hit one with a bar per tier; ``data-function`` holds the name), and
``tier-entries`` / ``tier-bytes`` (each tier's size over time). Lines are ``<path
class="cp-line">``, bars ``<rect class="cp-bar">``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from ..histogram import bucket_bound
from .report import alert_text, format_bytes, format_seconds

__all__ = ["render_html"]

_FULL, _HALF, _PLOT_HEIGHT = 1080, 530, 200
_LEFT, _RIGHT, _TOP = 78, 24, 16
_LEGEND_ROW, _LEGEND_COLUMN = 18, 330
# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
_COMPUTE_COLOUR = 3
_KIB = 1024

# (label, colour index, points): one line or one set of bars.
Series = tuple[str, int, list[tuple[float, float | None]]]


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _colour(i: int) -> str:
    return _COLOURS[i % len(_COLOURS)]


def _nice_step(span: float, ticks: int = 5, *, whole: bool = False) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about ``ticks`` ticks over ``span``."""
    raw = span / ticks if span > 0 else 1.0
    power = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if whole and power < 10 else (1, 2, 2.5, 5, 10)
    return float(max(next(m * power for m in steps if m * power >= raw), 1.0 if whole else 0.0))


def _number(value: float) -> str:
    return f"{value:.6g}"


def _value_axis(top: float, unit: str) -> tuple[float, float, str]:
    """(axis top, tick step, unit label) for values up to ``top``: bytes get binary steps."""
    if unit == "percent":
        return 1.0, 0.2, ""
    scale, label = 1.0, ""
    if unit == "bytes":
        label, scale = next(
            (name, size)
            for name, size in (("GiB", _KIB**3), ("MiB", _KIB**2), ("KiB", _KIB), ("B", 1))
            if top >= 2 * size or size == 1
        )
    step = _nice_step(top / scale, whole=unit == "count") * scale if top > 0 else scale
    return (math.ceil(top / step) * step if top > 0 else step), step, label


def _value_label(value: float, unit: str, scale_label: str) -> str:
    if unit == "percent":
        return f"{value * 100:.0f}%"
    if unit == "bytes":
        scale = {"GiB": _KIB**3, "MiB": _KIB**2, "KiB": _KIB, "B": 1}[scale_label]
        return f"{_number(value / scale)} {scale_label}"
    return _number(value)


class _Frame:
    """One chart's geometry: the plot area inside an SVG of ``width``, axes and legend."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.left, self.right = _LEFT, width - _RIGHT
        self.top, self.bottom = _TOP, _TOP + _PLOT_HEIGHT

    def open(self, chart: str, ident: str, title: str, legend_rows: int, extra: str = "") -> str:
        height = self.bottom + 52 + legend_rows * _LEGEND_ROW
        return (
            f'<svg class="cp-chart" data-chart="{_e(chart)}" id="{_e(ident)}" role="img" '
            f'aria-label="{_e(title)}" viewBox="0 0 {self.width} {height}" width="{self.width}" '
            f'height="{height}"{extra}><title>{_e(title)}</title>'
        )

    def per_row(self) -> int:
        return max((self.width - self.left) // _LEGEND_COLUMN, 1)

    def legend(self, items: Sequence[tuple[str, int]]) -> str:
        parts = ['<g class="cp-legend">']
        width = min(_LEGEND_COLUMN, self.width - self.left) - 30
        longest = max(int(width / 7), 8)
        for i, (label, colour) in enumerate(items):
            x = self.left + (i % self.per_row()) * _LEGEND_COLUMN
            y = self.bottom + 62 + (i // self.per_row()) * _LEGEND_ROW
            shown = label if len(label) <= longest else label[: longest - 1] + "…"
            parts.append(
                f'<g class="cp-legend-item"><title>{_e(label)}</title>'
                f'<rect x="{x}" y="{y - 10}" width="14" height="10" fill="{_colour(colour)}"/>'
                f'<text x="{x + 20}" y="{y}">{_e(shown)}</text></g>'
            )
        return "".join([*parts, "</g>"])

    def axes(self, x_label: str, y_label: str, y_ticks: Sequence[tuple[float, str]]) -> str:
        parts = ['<g class="cp-axes">']
        for y, label in y_ticks:
            parts.append(
                f'<line class="cp-grid" x1="{self.left}" y1="{y:.1f}" x2="{self.right}" y2="{y:.1f}"/>'
                f'<text class="cp-tick" x="{self.left - 6}" y="{y + 4:.1f}" '
                f'text-anchor="end">{_e(label)}</text>'
            )
        middle = (self.top + self.bottom) / 2
        parts.append(
            f'<line x1="{self.left}" y1="{self.bottom}" x2="{self.right}" y2="{self.bottom}"/>'
            f'<line x1="{self.left}" y1="{self.top}" x2="{self.left}" y2="{self.bottom}"/>'
            f'<text class="cp-axis-label" x="{(self.left + self.right) / 2}" y="{self.bottom + 38}" '
            f'text-anchor="middle">{_e(x_label)}</text>'
            f'<text class="cp-axis-label" x="16" y="{middle}" text-anchor="middle" '
            f'transform="rotate(-90 16 {middle})">{_e(y_label)}</text></g>'
        )
        return "".join(parts)


def _line_chart(
    chart: str, title: str, series: Sequence[Series], *, span: float, width: int, y_label: str, unit: str
) -> str:
    """Lines over time (x: seconds since the report's first snapshot); ``None`` breaks a line."""
    frame = _Frame(width)
    ys = [y for _, _, points in series for _, y in points if y is not None]
    top, step_y, scale_label = _value_axis(max(ys, default=0.0), unit)
    plot_w = frame.right - frame.left

    def px(x: float) -> float:
        return frame.left + (plot_w * x / span if span > 0 else plot_w / 2)

    def py(y: float) -> float:
        return frame.bottom - _PLOT_HEIGHT * y / top

    y_ticks = [
        (py(k * step_y), _value_label(k * step_y, unit, scale_label)) for k in range(round(top / step_y) + 1)
    ]
    time_unit, time_scale = next(
        ((u, s) for u, s in (("h", 3600.0), ("min", 60.0)) if span >= 2 * s), ("s", 1.0)
    )
    parts = [
        frame.open(chart, f"chart-{chart}", title, math.ceil(len(series) / frame.per_row())),
        frame.axes(f"time since the first snapshot ({time_unit})", y_label, y_ticks),
    ]
    if span > 0:
        step_x = _nice_step(span / time_scale, 10 if width == _FULL else 5) * time_scale
        for k in range(int(span / step_x + 1e-9) + 1):
            parts.append(
                f'<text class="cp-tick" x="{px(k * step_x):.1f}" y="{frame.bottom + 18}" '
                f'text-anchor="middle">{_number(k * step_x / time_scale)}</text>'
            )
    for label, colour, points in series:
        path, dots, pen_down = [], [], False
        for x, y in points:
            if y is None:
                pen_down = False
                continue
            path.append(f"{'L' if pen_down else 'M'}{px(x):.1f} {py(y):.1f}")
            pen_down = True
            shown = format_bytes(int(y)) if unit == "bytes" else _value_label(y, unit, "")
            dots.append(
                f'<circle class="cp-point" cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{_colour(colour)}">'
                f"<title>{_e(label)}: {_e(shown)} at +{_number(x)} s</title></circle>"
            )
        parts.append(
            f'<g class="cp-series" data-series="{_e(label)}"><path class="cp-line" d="{" ".join(path)}" '
            f'stroke="{_colour(colour)}" fill="none" stroke-width="2"/>{"".join(dots)}</g>'
        )
    parts += [frame.legend([(label, colour) for label, colour, _ in series]), "</svg>"]
    return "".join(parts)


def _histogram(chart: str, ident: str, title: str, series: Sequence[Series], extra: str) -> str:
    """Bars per latency bucket (points: bucket index, count), one bar per series in each bucket."""
    frame = _Frame(_HALF)
    counts = [{int(i): n or 0.0 for i, n in points} for _, _, points in series]
    low = min(i for c in counts for i in c)
    high = max(i for c in counts for i in c)
    slots = high - low + 1
    top, step_y, _ = _value_axis(max(n for c in counts for n in c.values()), "count")
    slot_w = (frame.right - frame.left) / slots
    bar_w = max(slot_w * 0.8 / len(series), 1.0)
    y_ticks = [
        (frame.bottom - _PLOT_HEIGHT * k * step_y / top, _number(k * step_y))
        for k in range(round(top / step_y) + 1)
    ]
    parts = [
        frame.open(chart, ident, title, math.ceil(len(series) / frame.per_row()), extra),
        frame.axes("latency (bucket's upper bound)", "count", y_ticks),
    ]
    every = max(math.ceil(slots / 6), 1)
    for k in range(0, slots, every):
        x = frame.left + slot_w * (k + 0.5)
        parts.append(
            f'<text class="cp-tick" x="{x:.1f}" y="{frame.bottom + 18}" text-anchor="middle">'
            f"{_e(_bound_label(low + k))}</text>"
        )
    for s, (label, colour, _) in enumerate(series):
        for index, n in sorted(counts[s].items()):
            x = frame.left + slot_w * (index - low + 0.1) + bar_w * s
            h = _PLOT_HEIGHT * n / top
            parts.append(
                f'<rect class="cp-bar" x="{x:.1f}" y="{frame.bottom - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{_colour(colour)}"><title>{_e(label)}: {_number(n)} at or under '
                f"{_e(_bound_label(index))}</title></rect>"
            )
    parts += [frame.legend([(label, colour) for label, colour, _ in series]), "</svg>"]
    return "".join(parts)


def _bound_label(index: int) -> str:
    bound = bucket_bound(index)
    return "longer" if math.isinf(bound) else format_seconds(bound)


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
        bars: Series = ("computations", _COMPUTE_COLOUR, _bucket_points(compute))
        parts.append(
            _figure(title, _histogram("compute-latency", f"chart-compute-latency-{i}", title, [bars], attr))
        )
    else:
        parts.append('<p class="cp-empty">No computation timed.</p>')
    timed = {tier: r for tier, r in f["hit_latency"].items() if r["count"]}
    if timed:
        title = f"{name}: hits, " + "; ".join(
            f"{tier} {r['count']} timed, p95 {format_seconds(r['p95'])}" for tier, r in timed.items()
        )
        hits = [(f"{tier} hits", tier_colours.get(tier, 0), _bucket_points(r)) for tier, r in timed.items()]
        parts.append(_figure(title, _histogram("hit-latency", f"chart-hit-latency-{i}", title, hits, attr)))
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
            _line_chart(
                "hit-rate", title, rates, span=length, width=_FULL, y_label="hit rate", unit="percent"
            )
        )
    else:
        parts.append('<p class="cp-empty">One snapshot per process: no interval yet.</p>')
    parts.append('<h2>Tier sizes</h2><div class="cp-pair">')
    for field, unit in (("entries", "count"), ("bytes", "bytes")):
        series = _tier_series(report, field)
        if series:
            title = f"Tier {field} over time"
            chart = _line_chart(
                f"tier-{field}", title, series, span=length, width=_HALF, y_label=field, unit=unit
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
