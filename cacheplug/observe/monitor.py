"""The monitor: snapshots at an interval, hit-rate trends, alert rules, published stats.

A :class:`Monitor` watches one cache. Each round (:meth:`Monitor.check`, or every
``interval`` seconds in its own thread after :meth:`Monitor.start`) it takes a snapshot
(``cache.stats()``), keeps it in a bounded window, evaluates its rules on what changed
since the previous round (per function and per tier: never totals since start), sends
each alert raised or resolved as the ``cacheplug.signals.alert`` signal and a log line,
and publishes the window beside the disk tier (``cacheplug.observe.publish``) so reports
and the CLI cover every process of the host. A publishing fault is counted and logged,
never raised: monitoring must not break the service it watches.

Time is the cache's clock (or ``clock=``), so tests script whole days by calling
:meth:`Monitor.check` with a fake clock; the thread only decides when rounds happen.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .. import signals
from ..cache import Cache
from ..defaults import get_cache
from ..errors import ConfigurationError
from ..statistics import CacheStats
from . import trends as trending
from .publish import collect, publish, shared_directory, unpublish
from .report import build_report
from .rules import Alert, Interval, Rule, checked_rules

__all__ = ["Monitor", "host_alerts", "host_snapshots", "performance_report", "start_monitoring"]

log = logging.getLogger("cacheplug")

_RECENT_ALERTS = 100  # alerts a monitor remembers for its report


class Monitor:
    """Watches ``cache`` (default: the default cache, resolved now): a bounded window of
    snapshots, per-function trends and percentiles, and alerts from ``rules``.

    ``interval``: seconds between rounds once :meth:`start`-ed (default 60). ``rules``: a
    list of rules (``None``: ``[HitRateBelow(0.5), LatencyAbove()]``; ``[]``: no alerts).
    ``clock``: seconds, for the snapshots' times and the alerts' (default: the cache's
    clock). ``window``: how many snapshots are kept (default 31: the 30 intervals a trend
    reads). Closing the cache stops the monitor.
    """

    def __init__(
        self,
        cache: Cache | None = None,
        interval: float = 60.0,
        rules: Sequence[Rule] | None = None,
        clock: Callable[[], float] | None = None,
        window: int = trending.INTERVALS + 1,
    ) -> None:
        if cache is not None and not isinstance(cache, Cache):
            raise ConfigurationError(
                f"Monitor(cache=...) takes a cacheplug.Cache (or None for the default cache), got {cache!r}"
            )
        ok = isinstance(interval, (int, float)) and not isinstance(interval, bool)
        if not ok or not math.isfinite(interval) or interval <= 0:
            raise ConfigurationError(
                f"Monitor(interval=...) is the seconds between rounds, a finite number > 0 "
                f"(e.g. 60), got {interval!r}"
            )
        if clock is not None and not callable(clock):
            raise ConfigurationError("Monitor(clock=...) must be a zero-argument callable returning seconds")
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ConfigurationError(
                f"Monitor(window=...) is how many snapshots to keep, an int >= 2 (e.g. 31), got {window!r}"
            )
        self.cache: Cache = cache if cache is not None else get_cache()
        if self.cache.closed:
            raise ConfigurationError("Monitor(cache=...) got a closed cache: monitor an open one")
        self.interval = float(interval)
        self.rules: tuple[Rule, ...] = checked_rules(rules)
        self.clock: Callable[[], float] = clock if clock is not None else self.cache.clock
        self._own_clock = clock is not None
        self.directory = shared_directory(self.cache.tiers)
        """Where the window is published: the disk tier's directory, or ``None`` (not published)."""
        self.publish_faults = 0
        """How many rounds could not publish their window (each one logged)."""
        self._window: deque[CacheStats] = deque(maxlen=window)
        self._firing: dict[tuple[int, str], Alert] = {}
        self._recent: deque[Alert] = deque(maxlen=_RECENT_ALERTS)
        self._round = threading.Lock()  # one round at a time (the thread's and a caller's)
        self._life = threading.Lock()  # guards start/stop
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._published = False
        self.cache.on_close(self.stop)

    # -- state ------------------------------------------------------------------------------

    @property
    def window(self) -> tuple[CacheStats, ...]:
        """The snapshots kept, oldest first."""
        return tuple(self._window)

    @property
    def firing(self) -> list[Alert]:
        """The alerts firing now (raised, not resolved yet)."""
        return list(self._firing.values())

    @property
    def alerts(self) -> list[Alert]:
        """The last 100 alerts raised or resolved, oldest first."""
        return list(self._recent)

    @property
    def running(self) -> bool:
        """Whether the monitor's thread is running."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    # -- rounds -----------------------------------------------------------------------------

    def check(self) -> list[Alert]:
        """Run one round now: snapshot, rules, publishing. Returns the alerts it raised or resolved."""
        with self._round:
            if self.cache.closed:
                raise ConfigurationError("the monitor's cache is closed: build a Monitor on an open cache")
            now = self.cache.stats()
            if self._own_clock:
                now = dataclasses.replace(now, time=self.clock())
            before = self._window[-1] if self._window else None
            self._window.append(now)
            interval = Interval.between(self.cache, before, now)
            raised: list[Alert] = []
            for index, rule in enumerate(self.rules):
                if before is not None or not rule.needs_interval:
                    raised += self._evaluate(index, rule, interval)
            self._recent.extend(raised)
            self._publish()
        for alert in raised:  # outside the round: a receiver may ask the monitor anything
            self._announce(alert)
        return raised

    def _evaluate(self, index: int, rule: Rule, interval: Interval) -> list[Alert]:
        firing: list[Alert] = []
        resolved: list[Alert] = []
        name, time = type(rule).__name__, interval.now.time
        for measured in rule.measure(interval):
            key = (index, measured.subject)
            if measured.breached and key not in self._firing:
                message = rule.message(measured, True)
                firing.append(
                    Alert(name, measured.subject, measured.value, rule.threshold, "firing", time, message)
                )
            elif not measured.breached and key in self._firing:
                del self._firing[key]
                message = rule.message(measured, False)
                resolved.append(
                    Alert(name, measured.subject, measured.value, rule.threshold, "resolved", time, message)
                )
        firing = rule.fired(interval, firing)
        for alert in firing:
            self._firing[index, alert.subject] = alert
        return firing + resolved

    def _publish(self) -> None:
        if self.directory is None:
            return
        try:
            publish(
                self.directory,
                list(self._window),
                interval=self.interval,
                label=self.cache.namespace,
                alerts=[{**a.to_dict(), "pid": os.getpid()} for a in self._firing.values()],
            )
            self._published = True
        except Exception as exc:
            self.publish_faults += 1
            log.warning(
                "cacheplug: the monitor could not publish its stats beside %s (%d time(s) so far): %s",
                self.directory,
                self.publish_faults,
                exc,
            )

    def _announce(self, alert: Alert) -> None:
        log.log(logging.WARNING if alert.state == "firing" else logging.INFO, "%s", alert.message)
        try:
            signals.alert.send(self.cache, alert=alert)
        except Exception:
            log.exception("cacheplug: a receiver of cacheplug.signals.alert raised")

    # -- the thread -------------------------------------------------------------------------

    def start(self) -> Monitor:
        """Run a round now and then every ``interval`` seconds, in a daemon thread of the
        monitor's own; returns the monitor. Starting a running monitor does nothing."""
        with self._life:
            if self.cache.closed:
                raise ConfigurationError("the monitor's cache is closed: build a Monitor on an open cache")
            if self.running:
                return self
            self._stopping = stopping = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(stopping,), name="cacheplug-monitor", daemon=True
            )
            self._thread.start()
        return self

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                self.check()
            except Exception:
                log.exception("cacheplug: a monitor round failed (the monitor goes on)")
            if stopping.wait(self.interval):
                return

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread and wait up to ``timeout`` seconds for its round to end; remove
        this process's published file. Stopping a stopped monitor does nothing."""
        with self._life:
            thread, self._thread = self._thread, None
            self._stopping.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("cacheplug: the monitor's thread did not stop within %s s", timeout)
        if self._published and self.directory is not None:
            self._published = False
            unpublish(self.directory, self.cache.namespace)

    # -- reading ----------------------------------------------------------------------------

    def trend(self, name: str, tier: str | None = None) -> trending.Trend:
        """``"improving"``, ``"degrading"`` or ``"stable"``: the hit-rate trend of function
        ``name`` (of the hits ``tier`` answered, when given) over the window's last 30
        intervals (see ``cacheplug.observe.trends`` for the exact method)."""
        return trending.trend(self.window, name, tier)

    def trends(self) -> dict[str, trending.Trend]:
        """Every function's hit-rate trend by qualified name, and every tier's (the share of
        all calls it answered) by tier name."""
        return trending.every_trend(self.window)

    def percentiles(self, name: str, tier: str | None = None) -> dict[str, dict[str, float | None]]:
        """``{"hit": {"p50": s, "p95": s, "p99": s}, "compute": {...}}``: function ``name``'s
        latencies in seconds over the window (``tier``'s hits only, when given); ``None``
        where nothing was recorded."""
        return trending.percentiles(self.window, name, tier)

    def report(self) -> dict[str, Any]:
        """The window as a report dict (see ``cacheplug.observe.report``), with the recent
        alerts and every function's trend."""
        alerts = [alert.to_dict() for alert in self._recent]
        report: dict[str, Any] = build_report(self.window, alerts=alerts, trends=self.trends())
        return report

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Monitor({self.cache!r}, interval={self.interval:g}, rules={list(self.rules)!r}, {state})"


def start_monitoring(interval: float = 60, **options: Any) -> Monitor:
    """Start a :class:`Monitor` of the default cache every ``interval`` seconds; returns it.

    ``options``: the other arguments of :class:`Monitor` (``rules``, ``clock``, ``window``).
    """
    return Monitor(None, interval, **options).start()


def host_snapshots(cache: Cache) -> tuple[list[CacheStats], list[CacheStats]]:
    """``(others, own)``: the snapshots the other processes of the host published for
    ``cache``'s directory and namespace (each process's oldest first), and this process's:
    its published window, then a fresh ``cache.stats()``."""
    others: list[CacheStats] = []
    own: list[CacheStats] = []
    directory = shared_directory(cache.tiers)
    if directory is not None:
        here = (socket.gethostname(), os.getpid())
        for published in collect(directory):
            mine = [s for s in published.snapshots if s.namespace == cache.namespace]
            (own if (published.host, published.pid) == here else others).extend(mine)
    own.append(cache.stats())
    return others, own


def performance_report(cache: Cache | None = None) -> dict[str, Any]:
    """A report dict (see ``cacheplug.observe.report``) of ``cache`` (default: the default
    cache) in every process of the host: the snapshots the processes published beside its
    disk tier and a fresh one of this process, with this process's trends."""
    chosen = cache if cache is not None else get_cache()
    others, own = host_snapshots(chosen)
    report: dict[str, Any] = build_report(
        [*others, *own], trends=trending.every_trend(own), alerts=host_alerts(chosen)
    )
    return report


def host_alerts(cache: Cache) -> list[dict[str, Any]]:
    """The alerts firing in every monitored process of the host for ``cache``'s directory and
    namespace, as the monitors last published them (each with its ``pid``)."""
    directory = shared_directory(cache.tiers)
    if directory is None:
        return []
    return [
        dict(alert)
        for published in collect(directory)
        if published.latest.namespace == cache.namespace
        for alert in published.alerts
    ]
