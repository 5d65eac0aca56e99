"""Issue 8: what the OpenTelemetry middleware costs a hit and a miss.

Both sides are memory-only caches of ``f(a: int, b: str)``; the instrumented side has an
``OpenTelemetryMiddleware`` on real SDK providers: a ``TracerProvider`` whose
``SimpleSpanProcessor`` hands every span to an exporter that drops it (so a span costs what
the SDK costs, synchronously, with no exporter I/O and no background thread on the CPU
clock), and a ``MeterProvider`` with an ``InMemoryMetricReader`` (never collected while
timing, as a periodic reader would collect once a minute).

* **hit** (``trace_hits=0``): the middleware declares it observes computations only, so the
  hit keeps the fast path: target <= 1.10x the plain hit;
* **miss**: a span and a ``cacheplug.compute.duration`` record per computation, on ever-new
  keys; reported for reference (it is the SDK's cost, tens of µs against a sub-µs miss).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from _support import TTL, VALUE, call_loop, interleaved
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from cacheplug import Cache, MemoryTier, cached
from cacheplug.otel import OpenTelemetryMiddleware

HIT_OPS = 10_000
MISS_OPS = 1_000


class Dropping(SpanExporter):
    """An exporter that counts the spans and keeps none."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def _instrumented(closing: list[Any]) -> tuple[OpenTelemetryMiddleware, Dropping, InMemoryMetricReader]:
    exporter = Dropping()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    closing += [_Shutdown(tracer_provider), _Shutdown(meter_provider)]
    return OpenTelemetryMiddleware(tracer_provider, meter_provider, trace_hits=0.0), exporter, reader


class _Shutdown:
    def __init__(self, provider: Any) -> None:
        self.provider = provider

    def close(self) -> None:
        self.provider.shutdown()


def _functions(otel: OpenTelemetryMiddleware, closing: list[Any]) -> dict[str, Callable[[int, str], Any]]:
    funcs: dict[str, Callable[[int, str], Any]] = {}
    for side, chain in (("cacheplug", [otel]), ("none", [])):
        cache = Cache([MemoryTier(max_entries=1_000_000)], middleware=chain)
        closing.append(cache)

        @cached(TTL, cache=cache)
        def f(a: int, b: str) -> dict[str, Any]:
            return VALUE

        funcs[side] = f
    return funcs


def bench_hit_with_otel(benchmark: Any, bench_pass: int, closing: list[Any]) -> None:
    otel, exporter, reader = _instrumented(closing)
    assert otel.observes == frozenset({"compute"})
    funcs = _functions(otel, closing)
    for f in funcs.values():
        assert f(1, "x") is VALUE and f(1, "x") is VALUE
    sides = {side: call_loop(f, (1, "x"), HIT_OPS) for side, f in funcs.items()}
    interleaved(benchmark, "otel_hit", sides, HIT_OPS, 15, clock="cpu")
    for f in funcs.values():
        info = f.cache_info()  # type: ignore[attr-defined]
        assert info.misses == 1 and info.hits > HIT_OPS, info
    assert exporter.spans == 1  # the one computation; no hit was traced
    data = reader.get_metrics_data()  # the metrics do see every hit, at collection
    assert data is not None
    calls = {
        point.attributes.get("cacheplug.outcome"): getattr(point, "value", 0)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "cacheplug.calls"
        for point in metric.data.data_points
        if point.attributes is not None
    }
    assert calls["hit"] == funcs["cacheplug"].cache_info().hits, calls  # type: ignore[attr-defined]


def bench_miss_with_otel(benchmark: Any, bench_pass: int, closing: list[Any]) -> None:
    otel, exporter, _ = _instrumented(closing)
    funcs = _functions(otel, closing)
    fresh = itertools.count(10_000_000)
    keys: list[int] = []
    text = "x"

    def setup() -> None:
        keys[:] = [next(fresh) for _ in range(MISS_OPS)]  # every call a miss on both sides

    def loop_of(side: str) -> Callable[[], None]:
        f = funcs[side]

        def run() -> None:
            for k in keys:
                f(k, text)

        return run

    series = interleaved(
        benchmark,
        "otel_miss",
        {side: loop_of(side) for side in funcs},
        MISS_OPS,
        15,
        clock="cpu",
        setup=setup,
    )
    rounds = len(next(iter(series.values()))) + 1  # the warm-up round was timed too
    assert exporter.spans == rounds * MISS_OPS, (exporter.spans, rounds)
    for f in funcs.values():
        assert f.cache_info().misses == rounds * MISS_OPS  # type: ignore[attr-defined]
