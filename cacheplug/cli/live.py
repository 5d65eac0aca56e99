"""``cacheplug top``: a live view of every process's functions, refreshed in place.

Each refresh collects the published snapshots again and shows, per function, summed over
the live processes: calls in the last published interval and per second, the hit rate and
the p95 hit and compute latencies over that interval (a process with one snapshot so far
counts everything since it started, and has no rate yet). The view is drawn with
``rich.live.Live``; ``q`` (the terminal is put in cbreak mode while it runs) or Ctrl-C
ends it with status 0. ``--once`` prints one frame and exits.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Iterator

import click
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..observe.publish import collect
from ..statistics import FunctionStats
from .common import checked_directory, directory_option, namespace_option
from .merge import hit_latency, per_interval
from .text import console, moment, percent, percentile_ms

__all__ = ["frame", "top"]


def _row_totals(
    directory: str, namespace: str | None
) -> tuple[dict[str, tuple[FunctionStats, float | None]], int]:
    """Per function: its summed interval stats and calls per second; and the process count."""
    published = collect(directory)
    if namespace is not None:
        published = [p for p in published if p.latest.namespace == namespace]
    rows: dict[str, tuple[FunctionStats, float | None]] = {}
    for p in published:
        functions, span = per_interval(p)
        for name, stats in functions.items():
            rate = stats.calls / span if span else None
            if name in rows:
                before, before_rate = rows[name]
                both = None if before_rate is None and rate is None else (before_rate or 0.0) + (rate or 0.0)
                rows[name] = (before.plus(stats), both)
            else:
                rows[name] = (stats, rate)
    return dict(sorted(rows.items())), len(published)


def frame(directory: str, namespace: str | None, interval: float) -> Group:
    """One screen of the view."""
    rows, processes = _row_totals(directory, namespace)
    header = Text(
        f"cacheplug top  {directory}  {processes} process{'es' if processes != 1 else ''}  "
        f"{moment(time.time())}  every {interval:g} s  (q to quit)"
    )
    table = Table("function", "calls", "calls/s", "hit rate", "hit p95", "compute p95")
    for column in table.columns[1:]:
        column.justify = "right"
    for name, (stats, rate) in rows.items():
        table.add_row(
            name,
            str(stats.calls),
            "-" if rate is None else f"{rate:.1f}",
            percent(stats.hit_rate),
            percentile_ms(hit_latency(stats)),
            percentile_ms(stats.compute),
        )
    if not rows:
        return Group(header, Text("No live process publishes its stats here yet (a Monitor does)."))
    return Group(header, table)


@contextlib.contextmanager
def _keys() -> Iterator[int | None]:
    """stdin in cbreak mode (keys arrive one by one, Ctrl-C still interrupts); its fd or None."""
    if not sys.stdin.isatty():
        yield None
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _quit_within(fd: int | None, seconds: float) -> bool:
    """Wait up to ``seconds``; True if ``q`` was pressed meanwhile."""
    if fd is None:
        time.sleep(seconds)
        return False
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if ready and os.read(fd, 1) in (b"q", b"Q"):
            return True
    return False


@click.command()
@directory_option
@namespace_option(default=None)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option("--once", is_flag=True, help="Print one frame and exit.")
def top(directory: str | None, namespace: str | None, interval: float, once: bool) -> None:
    """A live view: per function calls/s, hit rate and p95 latencies. q or Ctrl-C quits."""
    path = checked_directory(directory)
    out = console()
    if once:
        out.print(frame(path, namespace, interval))
        return
    try:
        with _keys() as fd, Live(frame(path, namespace, interval), console=out, auto_refresh=False) as live:
            while not _quit_within(fd, interval):
                live.update(frame(path, namespace, interval), refresh=True)
    except KeyboardInterrupt:
        pass
