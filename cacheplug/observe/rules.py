"""Alert rules: what the monitor checks at each round, and the :class:`Alert` it raises.

A rule measures one number per subject (a function, a tier, or the cache) from an
:class:`Interval`: what changed between two consecutive snapshots, never totals since
start. The monitor turns measurements into alerts: ``"firing"`` when a subject's
condition starts to hold, nothing more while it persists, ``"resolved"`` once it clears.
A measurement a rule cannot make (too few calls, no latency recorded) leaves the
subject's state as it was.

=================================  ==========================================================
``HitRateBelow(threshold, min_     a function's hit rate over the interval (stale values count
calls=100)``                       as hits), when it had at least ``min_calls`` calls
``LatencyAbove(ms=None)``          a tier's p95 hit latency over the interval, every function
                                   together (default ``CACHEPLUG_LATENCY_TARGET_MS``, 10 ms)
``SizeAbove(bytes)``               a tier's bytes at the round (tiers that know their size);
                                   when it fires, ``cache.sweep()`` removes expired and
                                   invalidated entries and the alert says what it reclaimed
``InvalidationRateAbove(per_       the cache's invalidations per second of its clock over the
second)``                          interval
=================================  ==========================================================
"""

from __future__ import annotations

import abc
import dataclasses
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ..errors import ConfigurationError
from ..histogram import Latency
from ..statistics import CacheStats, FunctionStats

if TYPE_CHECKING:
    from ..cache import Cache

__all__ = [
    "LATENCY_TARGET_VARIABLE",
    "Alert",
    "HitRateBelow",
    "Interval",
    "InvalidationRateAbove",
    "LatencyAbove",
    "Measurement",
    "Reclaimed",
    "Rule",
    "SizeAbove",
    "default_rules",
]

LATENCY_TARGET_VARIABLE = "CACHEPLUG_LATENCY_TARGET_MS"
_DEFAULT_LATENCY_MS = 10.0


@dataclass(frozen=True, slots=True)
class Reclaimed:
    """What the cleanup run by :class:`SizeAbove` reclaimed: ``entries`` removed (from every
    tier) and the firing tier's ``bytes_before`` and ``bytes_after`` it."""

    entries: int
    bytes_before: int
    bytes_after: int

    def to_dict(self) -> dict[str, int]:
        """A JSON-ready form."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert raised or resolved by a monitor round (the payload of ``cacheplug.signals.alert``).

    ``rule``: the rule's class name (``"HitRateBelow"``...); ``subject``: the function's
    qualified name, the tier's name, or ``"<cache>"``; ``value``: what was measured and
    ``threshold``: what it was compared with, both in the rule's unit (a rate, milliseconds,
    bytes, invalidations per second); ``state``: ``"firing"`` or ``"resolved"``; ``time``:
    the monitor's clock at the round; ``message``: all of it in words; ``reclaimed``: what
    the cleanup reclaimed (:class:`SizeAbove` firing only, else ``None``).
    """

    rule: str
    subject: str
    value: float
    threshold: float
    state: Literal["firing", "resolved"]
    time: float
    message: str
    reclaimed: Reclaimed | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["reclaimed"] = None if self.reclaimed is None else self.reclaimed.to_dict()
        return data


@dataclass(frozen=True, slots=True)
class Interval:
    """What the rules see at one round: the snapshot ``now``, the previous one ``before``
    (``None`` at a monitor's first round), and per function what happened in between."""

    cache: Cache
    now: CacheStats
    before: CacheStats | None
    functions: Mapping[str, FunctionStats]

    @classmethod
    def between(cls, cache: Cache, before: CacheStats | None, now: CacheStats) -> Interval:
        """The interval from ``before`` to ``now`` (no function deltas without ``before``)."""
        functions = (
            {}
            if before is None
            else {
                name: stats.minus(before.functions.get(name, FunctionStats(name)))
                for name, stats in now.functions.items()
            }
        )
        return cls(cache, now, before, functions)

    @property
    def elapsed(self) -> float:
        """Seconds of the clock between the two snapshots (0.0 at the first round)."""
        return 0.0 if self.before is None else self.now.time - self.before.time

    def tier_hit_latency(self) -> dict[str, Latency]:
        """Per tier, the durations of the hits it served in the interval (every function)."""
        merged: dict[str, Latency] = {}
        for stats in self.functions.values():
            for tier, reading in stats.hit_latency.items():
                merged[tier] = merged.get(tier, Latency()).plus(reading)
        return merged


@dataclass(frozen=True, slots=True)
class Measurement:
    """One subject's number at one round, and whether it breaks the rule."""

    subject: str
    value: float
    breached: bool
    detail: str = ""


class Rule(abc.ABC):
    """The base of alert rules: :meth:`measure` one number per subject from an interval.

    ``threshold`` is in the rule's unit; ``needs_interval`` is False for a rule that can
    measure from one snapshot (sizes), True for one that needs two (rates).
    """

    what: ClassVar[str] = "value"
    direction: ClassVar[str] = "above"
    unit: ClassVar[str] = ""
    needs_interval: ClassVar[bool] = True
    threshold: float

    @abc.abstractmethod
    def measure(self, interval: Interval) -> Iterable[Measurement]:
        """This interval's measurements, one per subject that can be measured."""

    def fired(self, interval: Interval, alerts: list[Alert]) -> list[Alert]:
        """Called with this round's new ``"firing"`` alerts of the rule; returns them (amended)."""
        return alerts

    def format(self, value: float) -> str:
        """A measured value or threshold in words."""
        return f"{value:g}{self.unit}"

    def message(self, measured: Measurement, firing: bool) -> str:
        """What an alert says: what was measured, and the threshold."""
        detail = f" ({measured.detail})" if measured.detail else ""
        if firing:
            verdict = f"{self.direction} the threshold {self.format(self.threshold)}"
        else:
            verdict = f"no longer {self.direction} the threshold {self.format(self.threshold)}"
        return (
            f"cacheplug {'alert' if firing else 'alert resolved'}: {self.what} of {measured.subject} "
            f"is {self.format(measured.value)}{detail}, {verdict}"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.format(self.threshold)})"


def _number(value: Any, what: str, *, minimum: float = 0.0, above: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= minimum if above else value < minimum):
        bound = f"> {minimum:g}" if above else f">= {minimum:g}"
        raise ConfigurationError(f"{what} must be a finite number {bound}, got {value!r}")
    return float(value)


class HitRateBelow(Rule):
    """Fires when a function's hit rate over an interval is below ``threshold`` (0 to 1),
    among functions called at least ``min_calls`` times in it."""

    what, direction = "the hit rate", "below"

    def __init__(self, threshold: float, min_calls: int = 100) -> None:
        self.threshold = _number(threshold, "HitRateBelow(threshold=...) (a rate from 0 to 1)")
        if self.threshold > 1:
            raise ConfigurationError(f"HitRateBelow(threshold=...) is a rate from 0 to 1, got {threshold!r}")
        if isinstance(min_calls, bool) or not isinstance(min_calls, int) or min_calls < 1:
            raise ConfigurationError(f"HitRateBelow(min_calls=...) must be an int >= 1, got {min_calls!r}")
        self.min_calls = min_calls

    def measure(self, interval: Interval) -> Iterable[Measurement]:
        for name, stats in interval.functions.items():
            if stats.calls >= self.min_calls:
                rate = stats.hit_rate
                yield Measurement(name, rate, rate < self.threshold, f"{stats.calls} calls")

    def format(self, value: float) -> str:
        return f"{value:.2f}"

    def __repr__(self) -> str:
        return f"HitRateBelow({self.threshold:g}, min_calls={self.min_calls})"


def latency_target_ms() -> float:
    """The hit latency target: ``CACHEPLUG_LATENCY_TARGET_MS`` (milliseconds, > 0), else 10."""
    raw = (os.environ.get(LATENCY_TARGET_VARIABLE) or "").strip()
    if not raw:
        return _DEFAULT_LATENCY_MS
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(
            f"{LATENCY_TARGET_VARIABLE}={raw!r} must be a finite number of milliseconds > 0; "
            f"unset it or give e.g. {LATENCY_TARGET_VARIABLE}=10"
        )
    return value


class LatencyAbove(Rule):
    """Fires when a tier's p95 hit latency over an interval (the hits of every function it
    served) is above ``ms`` milliseconds; default: ``CACHEPLUG_LATENCY_TARGET_MS``, else 10.

    Memory hits are timed 1 in 64, shared-tier hits every one; a tier with no timed hit in
    the interval is not measured.
    """

    what, direction, unit = "the p95 hit latency", "above", " ms"

    def __init__(self, ms: float | None = None) -> None:
        self.threshold = (
            latency_target_ms() if ms is None else _number(ms, "LatencyAbove(ms=...)", above=True)
        )

    def measure(self, interval: Interval) -> Iterable[Measurement]:
        for tier, reading in interval.tier_hit_latency().items():
            p95 = reading.percentile(95)
            if p95 is not None:
                value = p95 * 1000.0
                yield Measurement(tier, value, value > self.threshold, f"{reading.count} timed hits")

    def format(self, value: float) -> str:
        return f"{value:.3g} ms"


class SizeAbove(Rule):
    """Fires when a tier holds more than ``bytes`` bytes (tiers that know their size: the
    disk tier; a memory tier given ``max_bytes``). Firing runs ``cache.sweep()`` once (it
    removes expired and invalidated entries from every tier, O(entries), in the monitor's
    round) and the alert's ``reclaimed`` says what that reclaimed. While the tier stays
    above, nothing more is done; a ``"resolved"`` follows once it is back under."""

    what, direction, unit = "the size", "above", " bytes"
    needs_interval = False

    def __init__(self, bytes: int) -> None:
        if isinstance(bytes, bool) or not isinstance(bytes, int) or bytes < 0:
            raise ConfigurationError(f"SizeAbove(bytes=...) must be an int >= 0 (bytes), got {bytes!r}")
        self.threshold = bytes

    def measure(self, interval: Interval) -> Iterable[Measurement]:
        for name, tier in interval.now.tiers.items():
            if tier.bytes is not None:
                yield Measurement(name, tier.bytes, tier.bytes > self.threshold, f"{tier.entries} entries")

    def fired(self, interval: Interval, alerts: list[Alert]) -> list[Alert]:
        if not alerts:
            return alerts
        removed = interval.cache.sweep()
        after = interval.cache.stats().tiers
        amended = []
        for alert in alerts:
            left = after[alert.subject].bytes if alert.subject in after else None
            reclaimed = Reclaimed(removed, int(alert.value), int(alert.value) if left is None else left)
            message = (
                f"{alert.message}; the cleanup removed {removed} expired or invalidated entries "
                f"({reclaimed.bytes_before} -> {reclaimed.bytes_after} bytes)"
            )
            amended.append(dataclasses.replace(alert, reclaimed=reclaimed, message=message))
        return amended

    def format(self, value: float) -> str:
        return f"{int(value)} bytes"


class InvalidationRateAbove(Rule):
    """Fires when the cache records more than ``per_second`` invalidations per second of its
    clock over an interval (subject ``"<cache>"``)."""

    what, direction, unit = "the invalidation rate", "above", "/s"

    def __init__(self, per_second: float) -> None:
        self.threshold = _number(per_second, "InvalidationRateAbove(per_second=...)")

    def measure(self, interval: Interval) -> Iterable[Measurement]:
        if interval.before is None or interval.elapsed <= 0:
            return
        count = max(interval.now.invalidations - interval.before.invalidations, 0)
        rate = count / interval.elapsed
        detail = f"{count} in {interval.elapsed:g} s"
        yield Measurement("<cache>", rate, rate > self.threshold, detail)

    def format(self, value: float) -> str:
        return f"{value:.3g}/s"


def default_rules() -> list[Rule]:
    """``rules=None``: a function's hit rate below 0.5, and the hit latency target."""
    return [HitRateBelow(0.5), LatencyAbove()]


def checked_rules(rules: Sequence[Rule] | None) -> tuple[Rule, ...]:
    """``rules`` as a tuple of :class:`Rule`, or :class:`ConfigurationError` saying what to give."""
    if rules is None:
        return tuple(default_rules())
    if isinstance(rules, (str, bytes, Rule)) or not isinstance(rules, Iterable):
        raise ConfigurationError(
            f"Monitor(rules=...) takes a list of rules, e.g. [HitRateBelow(0.5), SizeAbove(2**30)], "
            f"got {rules!r}"
        )
    chosen = tuple(rules)
    for rule in chosen:
        if not isinstance(rule, Rule):
            raise ConfigurationError(
                f"Monitor(rules=...): {rule!r} is not a rule (HitRateBelow, LatencyAbove, SizeAbove, "
                f"InvalidationRateAbove, or a subclass of cacheplug.observe.rules.Rule)"
            )
    return chosen
