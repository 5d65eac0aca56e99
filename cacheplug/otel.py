"""OpenTelemetry spans and metrics for cacheplug, installed as a middleware.

Why it is shaped so: an OpenTelemetry SDK ``counter.add`` costs about 5 µs, a span 11-47 µs,
and a memory hit about 0.4 µs. So a hit never touches OpenTelemetry by default: the
middleware observes computations only (``observes = {"compute"}``), the hit fast path stays
as it is, and the metrics are *observable*: at collection time the callbacks read the
cache's own exact counters (``Cache.stats()``), which every call updates anyway.

* Spans: one per computation, named ``cacheplug <qualified name>``, a child of the caller's
  current span, covering the computation (awaited, for an async function), with the
  attributes of :data:`SPAN_ATTRIBUTES`; an exception is recorded on it and its status set
  to ERROR. Hits get spans only with ``trace_hits=`` a sampling ratio above 0 (then the
  middleware observes lookups too, and every hit leaves the fast path).
* Metrics, meter ``cacheplug`` (:data:`METRICS`): ``cacheplug.calls`` (observable counter
  over the per-function outcome counters), ``cacheplug.compute.duration`` (histogram,
  recorded per computation), ``cacheplug.hit.duration`` (histogram of the sampled hits:
  the API has no observable histogram, so the calls callback records what the cache's own
  hit histograms gained since the last collection, each duration as its bucket's upper
  bound), ``cacheplug.entries`` and ``cacheplug.size`` (observable gauges per tier).

A meter can register an instrument name once (a second registration returns the first
instrument, without the new callbacks), so the instruments are shared by every middleware
of one meter provider: each collection sums over every cache any of them is attached to
(caches held weakly, dropped when closed).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import math
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from opentelemetry import context, metrics, trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.trace import Span, Status, StatusCode, TracerProvider

from .errors import ConfigurationError
from .histogram import BUCKETS, Latency, bucket_bound
from .middleware import Middleware, Op
from .statistics import CacheStats

__all__ = ["BOUNDARIES", "METRICS", "SPAN_ATTRIBUTES", "OpenTelemetryMiddleware", "with_tracing"]

FUNCTION = "code.function.name"
OUTCOME = "cacheplug.outcome"
TIER = "cacheplug.tier"
TAGS = "cacheplug.tags"
DIRECT = "<direct>"  # the Cache.get/set/get_or_compute API, named as in CacheStats.functions

SPAN_ATTRIBUTES = {
    FUNCTION: "the function's qualified name (<direct> for Cache.get_or_compute)",
    OUTCOME: "miss or error (hit on a traced hit; stale and coalesced once the cache reports them)",
    TIER: "the tier that answered; absent when none did (a computation)",
    TAGS: "how many user tags the operation carries",
}
"""The attributes of a cacheplug span."""

METRICS = {
    "cacheplug.calls": ("observable counter", "{call}", (FUNCTION, OUTCOME, TIER)),
    "cacheplug.compute.duration": ("histogram", "s", (FUNCTION, OUTCOME)),
    "cacheplug.hit.duration": ("histogram", "s", (FUNCTION, TIER)),
    "cacheplug.entries": ("observable gauge", "{entry}", (TIER,)),
    "cacheplug.size": ("observable gauge", "By", (TIER,)),
}
"""Every metric: name -> (instrument, unit, attributes)."""

try:
    _VERSION: str | None = importlib.metadata.version("cacheplug")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout
    _VERSION = None

# The histograms' bucket boundaries (seconds, advised to the SDK): the SDK's defaults
# (0, 5, 10, ... 10000) suit milliseconds and would put every cache duration in one bucket.
BOUNDARIES = (
    *(1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4),
    *(1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
"""The bucket boundaries of ``cacheplug.compute.duration`` and ``cacheplug.hit.duration``."""

_NO_LATENCY = Latency()
# The last bucket holds every duration above 256 s: recorded as its lower bound.
_TOP = bucket_bound(BUCKETS - 2)


class _Observed(Protocol):
    """What the middleware needs of a cache (cacheplug.cache sits above this module)."""

    tiers: list[Any]

    def stats(self) -> CacheStats: ...

    def on_close(self, callback: Callable[[], None]) -> None: ...


def _ratio(trace_hits: Any) -> float:
    if (
        isinstance(trace_hits, bool)
        or not isinstance(trace_hits, (int, float))
        or not 0.0 <= trace_hits <= 1.0  # NaN fails too
    ):
        raise ConfigurationError(
            f"OpenTelemetryMiddleware(trace_hits=...) is the share of hits traced, "
            f"a number in [0, 1] (0: none, the default), got {trace_hits!r}"
        )
    return float(trace_hits)


def _value(index: int) -> float:
    bound = bucket_bound(index)
    return _TOP if math.isinf(bound) else bound


def _histogram(meter: metrics.Meter, name: str, description: str) -> metrics.Histogram:
    try:
        return meter.create_histogram(
            name, unit="s", description=description, explicit_bucket_boundaries_advisory=BOUNDARIES
        )
    except TypeError:  # pragma: no cover - opentelemetry-api < 1.23 takes no advice
        return meter.create_histogram(name, unit="s", description=description)


class _Metrics:
    """The instruments of one meter provider and the caches they report on."""

    def __init__(self, meter_provider: MeterProvider | None) -> None:
        meter = metrics.get_meter("cacheplug", _VERSION or "", meter_provider)
        self.lock = threading.Lock()
        # Per cache: the last hit-latency reading per (function, tier) fed to hit.duration.
        self.caches: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], Latency]] = (
            weakref.WeakKeyDictionary()
        )
        self.compute = _histogram(meter, "cacheplug.compute.duration", "Duration of each computation (miss)")
        self.hit = _histogram(
            meter,
            "cacheplug.hit.duration",
            "Duration of the sampled hits (every shared-tier hit, 1 in 64 memory hits)",
        )
        meter.create_observable_counter(
            "cacheplug.calls", [self.observe_calls], unit="{call}", description="Calls by outcome and tier"
        )
        meter.create_observable_gauge(
            "cacheplug.entries", [self.observe_entries], unit="{entry}", description="Entries per tier"
        )
        meter.create_observable_gauge(
            "cacheplug.size", [self.observe_size], unit="By", description="Bytes held per tier"
        )

    def attach(self, cache: _Observed) -> None:
        with self.lock:
            if cache in self.caches:
                return
            self.caches[cache] = {}
        ref = weakref.ref(cache)
        cache.on_close(lambda: self.detach(ref))

    def detach(self, ref: weakref.ref[Any]) -> None:
        cache = ref()
        if cache is not None:
            with self.lock:
                self.caches.pop(cache, None)

    def snapshots(self) -> list[tuple[_Observed, CacheStats, dict[tuple[str, str], Latency]]]:
        with self.lock:
            attached = list(self.caches.items())
        return [(cache, cache.stats(), last) for cache, last in attached]

    def observe_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        counts: dict[tuple[str, str, str | None], int] = {}
        for _, stats, last in self.snapshots():
            for name, function in stats.functions.items():
                for outcome, n in function.outcomes().items():
                    if outcome != "hit":
                        counts[name, outcome, None] = counts.get((name, outcome, None), 0) + n
                        continue
                    for tier, hits in function.tier_hits.items():
                        counts[name, "hit", tier] = counts.get((name, "hit", tier), 0) + hits
                        n -= hits
                    if n > 0:  # hits no tier is named for (a cache without a memory tier)
                        counts[name, "hit", None] = counts.get((name, "hit", None), 0) + n
                with self.lock:
                    self.feed_hits(last, name, function.hit_latency)
        return [
            Observation(n, {FUNCTION: name, OUTCOME: outcome, **({TIER: tier} if tier else {})})
            for (name, outcome, tier), n in counts.items()
        ]

    def feed_hits(self, last: dict[tuple[str, str], Latency], name: str, latency: Any) -> None:
        """Record in ``cacheplug.hit.duration`` the hits timed since the last collection."""
        record = self.hit.record
        for tier, reading in latency.items():
            new = reading.minus(last.get((name, tier), _NO_LATENCY))
            last[name, tier] = reading
            if new.count:
                attributes = {FUNCTION: name, TIER: tier}
                for index, n in new.buckets:
                    value = _value(index)
                    for _ in range(n):
                        record(value, attributes)

    def observe_entries(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._per_tier("entries")

    def observe_size(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._per_tier("bytes")

    def _per_tier(self, field: str) -> list[Observation]:
        """Summed per tier name over the caches; a tier several caches share (one disk
        directory, one memory tier object) counts once."""
        totals: dict[str, int] = {}
        seen: set[tuple[str, object]] = set()
        for cache, stats, _ in self.snapshots():
            for tier in cache.tiers:
                where = getattr(tier, "directory", None)
                place = (tier.name, where if isinstance(where, str) else id(tier))
                measured = stats.tiers.get(tier.name)
                value = None if measured is None or place in seen else getattr(measured, field)
                seen.add(place)
                if value is not None:
                    totals[tier.name] = totals.get(tier.name, 0) + value
        return [Observation(value, {TIER: name}) for name, value in totals.items()]


class _Global:
    """The key of the global meter provider's instruments."""


_GLOBAL = _Global()
_SHARED: weakref.WeakKeyDictionary[Any, _Metrics] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def _metrics_of(meter_provider: MeterProvider | None) -> _Metrics:
    key = _GLOBAL if meter_provider is None else meter_provider
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None:
            found = _SHARED[key] = _Metrics(meter_provider)
        return found


class OpenTelemetryMiddleware:
    """Spans for computations (and sampled hits) and the ``cacheplug`` metrics.

    ``tracer_provider``/``meter_provider``: where spans and metrics go (default: the global
    providers, as set by ``opentelemetry.trace.set_tracer_provider`` and
    ``opentelemetry.metrics.set_meter_provider``; a process can set those once, so pass
    providers explicitly in tests). ``trace_hits``: the share of hits that get a span,
    0 to 1 (default 0: hits are not traced and keep the fast path; above 0 every hit takes
    the general path, which costs far more than the span's share). Install it as
    ``Cache(middleware=[OpenTelemetryMiddleware()])`` or ``Cache(tracing=True)``.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        trace_hits: float = 0.0,
    ) -> None:
        self.trace_hits = _ratio(trace_hits)
        self.observes = frozenset({"compute", "get"} if self.trace_hits > 0.0 else {"compute"})
        self._tracer = trace.get_tracer("cacheplug", _VERSION, tracer_provider)
        self._metrics = _metrics_of(meter_provider)

    def attach(self, cache: _Observed) -> None:
        """Report on ``cache`` (called by ``Cache`` when it is built; held weakly)."""
        self._metrics.attach(cache)

    def __call__(self, op: Op, call_next: Callable[[Op], Any]) -> Any:
        if op.kind == "compute":
            return self._compute(op, call_next)
        ratio = self.trace_hits
        if op.kind == "get" and ratio > 0.0 and (ratio >= 1.0 or random.random() < ratio):
            return self._lookup(op, call_next)
        return call_next(op)

    # -- computations -----------------------------------------------------------------------

    def _compute(self, op: Op, call_next: Callable[[Op], Any]) -> Any:
        name = op.function or DIRECT
        span = self._tracer.start_span(f"cacheplug {name}", attributes={FUNCTION: name, TAGS: len(op.tags)})
        start = time.perf_counter()
        token = context.attach(trace.set_span_in_context(span))
        try:
            result = call_next(op)
        except BaseException as exc:
            self._end(span, op, name, start, exc)
            raise
        finally:
            context.detach(token)
        if inspect.isawaitable(result):
            return self._awaited(span, op, name, start, result)
        self._end(span, op, name, start, None)
        return result

    async def _awaited(self, span: Span, op: Op, name: str, start: float, result: Any) -> Any:
        token = context.attach(trace.set_span_in_context(span))
        try:
            value = await result
        except BaseException as exc:
            self._end(span, op, name, start, exc)
            raise
        finally:
            context.detach(token)
        self._end(span, op, name, start, None)
        return value

    def _end(self, span: Span, op: Op, name: str, start: float, exc: BaseException | None) -> None:
        duration = op.duration if op.duration is not None else time.perf_counter() - start
        outcome = "error" if exc is not None else (op.outcome or "miss")
        span.set_attribute(OUTCOME, outcome)
        if op.tier:
            span.set_attribute(TIER, op.tier)
        if exc is not None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        span.end()
        self._metrics.compute.record(duration, {FUNCTION: name, OUTCOME: outcome})

    # -- traced hits (trace_hits > 0) -------------------------------------------------------

    def _lookup(self, op: Op, call_next: Callable[[Op], Any]) -> Any:
        start = time.time_ns()
        result = call_next(op)
        if inspect.isawaitable(result):
            return self._awaited_lookup(op, start, result)
        self._hit_span(op, start)
        return result

    async def _awaited_lookup(self, op: Op, start: int, result: Any) -> Any:
        value = await result
        self._hit_span(op, start)
        return value

    def _hit_span(self, op: Op, start: int) -> None:
        """A span for a lookup that a tier answered (a miss gets the computation's span)."""
        if op.outcome in (None, "miss"):
            return
        name = op.function or DIRECT
        attributes: dict[str, str | int] = {FUNCTION: name, OUTCOME: op.outcome, TAGS: len(op.tags)}
        if op.tier:
            attributes[TIER] = op.tier
        span = self._tracer.start_span(f"cacheplug {name}", start_time=start, attributes=attributes)
        span.end(end_time=time.time_ns())

    def __repr__(self) -> str:
        return f"OpenTelemetryMiddleware(trace_hits={self.trace_hits})"


def with_tracing(middleware: Any) -> Any:
    """``middleware`` and an :class:`OpenTelemetryMiddleware` on the global providers
    (``Cache(tracing=True)``); unchanged when it holds one already, or is not a list (the
    cache then refuses it with its own message)."""
    if callable(middleware) or isinstance(middleware, (str, bytes)) or not isinstance(middleware, Iterable):
        return middleware
    chain: list[Middleware] = list(middleware)
    if any(isinstance(item, OpenTelemetryMiddleware) for item in chain):
        return chain
    return [*chain, OpenTelemetryMiddleware()]
