"""How the human output reads: one rich console, and the forms of times, durations, sizes and rates.

Keys and tags are the user's strings and may contain ``[``: the console interprets no markup
and no emoji codes, so what is printed is what is stored. Off a terminal the console is wide
(200 columns) so that tables piped to a file or read by a test do not wrap.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console

from ..histogram import Latency
from ..observe.report import format_bytes as size

__all__ = ["ago", "console", "duration", "moment", "percent", "percentile_ms", "size"]


def console(*, stderr: bool = False) -> Console:
    """The console commands print through (no markup, no highlighting)."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 200
    return Console(file=stream, width=width, markup=False, emoji=False, highlight=False)


def moment(seconds: float | None) -> str:
    """A wall-clock time as ``YYYY-MM-DD HH:MM:SS UTC`` (``never`` for ``None``)."""
    if seconds is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def duration(seconds: float) -> str:
    """``4.2 s``, ``3 min 5 s``, ``2 h 10 min``, ``3 d 4 h``."""
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{sign}{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{sign}{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{sign}{days} d {hours} h"


def ago(seconds: float | None, now: float) -> str:
    """``<moment> (<duration> ago)``."""
    if seconds is None:
        return "unknown"
    return f"{moment(seconds)} ({duration(now - seconds)} ago)"


def percent(rate: float) -> str:
    """``0.754`` as ``75.4%``."""
    return f"{rate * 100:.1f}%"


def percentile_ms(latency: Latency, q: float = 95) -> str:
    """The ``q``-th percentile of ``latency``: ``4.2 µs``, ``1.35 ms``, ``2.10 s`` (``-`` if none)."""
    value = latency.percentile(q)
    if value is None:
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.1f} µs"
    return f"{value * 1e3:.2f} ms" if value < 1 else f"{value:.2f} s"
