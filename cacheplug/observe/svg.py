"""SVG charts drawn in Python for the HTML report: line charts over time and latency histograms.

Why by hand: the report must render with no network and no script, so no charting library
(they are JavaScript); these two kinds of chart are a few hundred lines. Every text that
reaches the SVG (labels, titles, legends) is escaped here. Each chart is an ``<svg
class="cp-chart" data-chart="...">`` with an ``id``; lines are ``<path class="cp-line">``
with a ``<circle class="cp-point">`` per value, bars ``<rect class="cp-bar">``; every point
and bar has a ``<title>`` (a tooltip with its value). Colours are Okabe-Ito's, which stay
distinguishable with the common colour-vision deficiencies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from ..histogram import bucket_bound
from .report import format_bytes, format_seconds

__all__ = ["COMPUTE_COLOUR", "FULL", "HALF", "Series", "histogram", "line_chart"]

FULL, HALF = 1080, 530
"""Chart widths: a full-width chart, and one of two side by side."""
_PLOT_HEIGHT = 200
_LEFT, _RIGHT, _TOP = 78, 24, 16
_LEGEND_ROW, _LEGEND_COLUMN = 18, 330
_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
COMPUTE_COLOUR = 3
"""The colour (index) of computations' bars; tiers and functions take theirs by position."""
_KIB = 1024

Series = tuple[str, int, list[tuple[float, float | None]]]
"""(label, colour index, points): one line ((x, y) points) or one set of bars ((bucket, count))."""


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


def line_chart(
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
        step_x = _nice_step(span / time_scale, 10 if width == FULL else 5) * time_scale
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


def histogram(chart: str, ident: str, title: str, series: Sequence[Series], extra: str) -> str:
    """Bars per latency bucket (points: bucket index, count), one bar per series in each bucket."""
    frame = _Frame(HALF)
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
