"""OpenTelemetry (issue 8): the spans and metric points ``OpenTelemetryMiddleware`` produces,
checked exactly with the real SDK's in-memory span exporter and metric reader.

Providers are passed explicitly (a process can set the global ones only once); the global
ones (``Cache(tracing=True)``, ``CACHEPLUG_OTEL=true``) are tested in subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from cacheplug import Cache, ConfigurationError, DiskTier, MemoryTier, cached
from cacheplug.histogram import bucket_bound
from cacheplug.otel import BOUNDARIES, METRICS, OpenTelemetryMiddleware
from tests.conftest import FakeClock

ROOT = Path(__file__).resolve().parent.parent


class Spans:
    """A tracer provider exporting to memory, and what it exported."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests")

    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def cacheplug(self) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name.startswith("cacheplug ")]


class Points:
    """A meter provider read by an in-memory reader: each collection's points by metric."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def collect(self) -> dict[str, dict[tuple[tuple[str, Any], ...], Any]]:
        """``{metric: {sorted attributes: value}}``; a histogram's value is ``(count, sum)``."""
        out: dict[str, dict[tuple[tuple[str, Any], ...], Any]] = {}
        self.units: dict[str, str] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                assert scope.scope.name == "cacheplug"
                for metric in scope.metrics:
                    self.units[metric.name] = metric.unit or ""
                    values = out.setdefault(metric.name, {})
                    for point in metric.data.data_points:
                        key = tuple(sorted(point.attributes.items()))  # type: ignore[union-attr]
                        assert key not in values, (metric.name, key)
                        if hasattr(point, "explicit_bounds"):
                            assert tuple(point.explicit_bounds) == BOUNDARIES, metric.name
                        value = getattr(point, "value", None)
                        values[key] = (point.count, point.sum) if value is None else value  # type: ignore[union-attr]
        return out


def attrs(**given: Any) -> tuple[tuple[str, Any], ...]:
    names = {"function": "code.function.name", "outcome": "cacheplug.outcome", "tier": "cacheplug.tier"}
    return tuple(sorted((names[k], v) for k, v in given.items()))


@pytest.fixture
def spans() -> Iterator[Spans]:
    found = Spans()
    yield found
    found.provider.shutdown()


@pytest.fixture
def points() -> Iterator[Points]:
    found = Points()
    yield found
    found.provider.shutdown()


@pytest.fixture
def otel(spans: Spans, points: Points) -> OpenTelemetryMiddleware:
    return OpenTelemetryMiddleware(tracer_provider=spans.provider, meter_provider=points.provider)


def _child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    return span.parent is not None and span.parent.span_id == parent.context.span_id


# -- spans --------------------------------------------------------------------------------------


def test_a_computation_is_a_span_child_of_the_callers_span(
    spans: Spans, otel: OpenTelemetryMiddleware, clock: FakeClock
) -> None:
    cache = Cache([MemoryTier()], clock=clock, middleware=[otel])

    @cached(60, cache=cache)
    def square(x: int) -> int:
        with spans.tracer.start_as_current_span("inside"):
            return x * x

    with spans.tracer.start_as_current_span("request"):
        assert [square(3), square(3), square(4)] == [9, 9, 16]
    finished = {s.name: s for s in spans.finished() if not s.name.startswith("cacheplug ")}
    ours = spans.cacheplug()
    name = square.__qualname__
    qualified = f"{__name__}.{name}"
    assert [s.name for s in ours] == [f"cacheplug {qualified}"] * 2  # the hit has no span
    for span in ours:
        assert dict(span.attributes or {}) == {
            "code.function.name": qualified,
            "cacheplug.outcome": "miss",
            "cacheplug.tags": 0,
        }
        assert span.status.status_code is StatusCode.UNSET
        assert span.kind is trace.SpanKind.INTERNAL
        assert _child_of(span, finished["request"])
    inside = [s for s in spans.finished() if s.name == "inside"]
    assert len(inside) == 2
    assert [_child_of(s, c) for s, c in zip(inside, ours, strict=True)] == [True, True]
    assert spans.finished()[-1].name == "request"


def test_an_exception_is_recorded_and_sets_the_status(spans: Spans, otel: OpenTelemetryMiddleware) -> None:
    cache = Cache([MemoryTier()], middleware=[otel])

    @cached(60, cache=cache)
    def broken(x: int) -> int:
        raise ValueError(f"no {x}")

    with pytest.raises(ValueError, match="no 1"):
        broken(1)
    (span,) = spans.cacheplug()
    assert span.attributes is not None and span.attributes["cacheplug.outcome"] == "error"
    assert "cacheplug.tier" not in span.attributes
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: no 1"
    (event,) = span.events
    assert event.name == "exception" and event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "no 1"
    assert cache.stats().errors == 1


def test_an_async_computation_span_covers_the_awaited_computation(
    spans: Spans, otel: OpenTelemetryMiddleware
) -> None:
    cache = Cache([MemoryTier()], middleware=[otel])

    @cached(60, cache=cache)
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        with spans.tracer.start_as_current_span("inside"):
            await asyncio.sleep(0)
        if x < 0:
            raise KeyError(x)
        return x + 1

    async def main() -> list[int]:
        with spans.tracer.start_as_current_span("request"):
            got = [await fetch(1), await fetch(1)]
            with pytest.raises(KeyError):
                await fetch(-1)
            return got

    assert asyncio.run(main()) == [2, 2]
    by_name = {s.name: s for s in spans.finished() if not s.name.startswith("cacheplug")}
    ok, failed = spans.cacheplug()
    inside = [s for s in spans.finished() if s.name == "inside"]
    assert ok.name == f"cacheplug {__name__}.{fetch.__qualname__}"
    assert [_child_of(ok, by_name["request"]), _child_of(failed, by_name["request"])] == [True, True]
    for span, inner in zip((ok, failed), inside, strict=True):
        assert _child_of(inner, span)
        assert span.start_time is not None and inner.start_time is not None
        assert span.end_time is not None and inner.end_time is not None
        assert span.start_time <= inner.start_time <= inner.end_time <= span.end_time
    assert ok.attributes is not None and ok.attributes["cacheplug.outcome"] == "miss"
    assert failed.attributes is not None and failed.attributes["cacheplug.outcome"] == "error"
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]


def test_get_or_compute_is_named_direct(spans: Spans, otel: OpenTelemetryMiddleware) -> None:
    cache = Cache([MemoryTier()], middleware=[otel])
    assert cache.get_or_compute("k", lambda: 5) == 5
    assert cache.get_or_compute("k", lambda: 6) == 5
    (span,) = spans.cacheplug()
    assert span.name == "cacheplug <direct>"
    assert span.attributes is not None and span.attributes["code.function.name"] == "<direct>"


def test_the_span_counts_the_user_tags(spans: Spans, otel: OpenTelemetryMiddleware) -> None:
    cache = Cache([MemoryTier()], middleware=[otel])

    @cached(60, cache=cache, tags=["a", "b"])
    def tagged(x: int) -> int:
        return x

    tagged(1)
    (span,) = spans.cacheplug()
    assert span.attributes is not None and span.attributes["cacheplug.tags"] == 2


# -- hits: untouched by default, traced when asked ----------------------------------------------


class Counting(OpenTelemetryMiddleware):
    """The middleware, counting the ops it is given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kinds: list[str] = []

    def __call__(self, op: Any, call_next: Any) -> Any:
        self.kinds.append(op.kind)
        return super().__call__(op, call_next)


def test_hits_get_no_span_and_keep_the_fast_path_by_default(spans: Spans, points: Points) -> None:
    otel = Counting(spans.provider, points.provider)
    assert otel.observes == frozenset({"compute"})
    cache = Cache([MemoryTier()], middleware=[otel])
    assert cache.chains.misses_only and cache.chains.get is None

    @cached(60, cache=cache)
    def f(x: int) -> int:
        return x

    for _ in range(100):
        f(1)
    assert otel.kinds == ["compute"]
    assert len(spans.cacheplug()) == 1
    assert f.cache_info().hits == 99  # type: ignore[attr-defined]


def test_trace_hits_one_gives_a_span_per_hit(spans: Spans, points: Points, tmp_path: Path) -> None:
    otel = OpenTelemetryMiddleware(spans.provider, points.provider, trace_hits=1.0)
    assert otel.observes == frozenset({"compute", "get"})
    disk = DiskTier(tmp_path / "disk")
    cache = Cache([MemoryTier(), disk], middleware=[otel])
    other = Cache([MemoryTier(), disk], middleware=[otel])

    def make(on: Cache) -> Any:
        @cached(60, cache=on)
        def f(x: int) -> int:
            return x

        return f

    f, g = make(cache), make(other)
    with spans.tracer.start_as_current_span("request"):
        f(1)
        f(1)
        f(1)
        g(1)  # the other cache's memory misses: the disk tier answers
    request = spans.finished()[-1]
    qualified = f"{__name__}.{f.__qualname__}"
    found = [(s.name, dict(s.attributes or {})) for s in spans.cacheplug()]
    hit = {"code.function.name": qualified, "cacheplug.outcome": "hit", "cacheplug.tags": 0}
    assert found == [
        (
            f"cacheplug {qualified}",
            {"code.function.name": qualified, "cacheplug.outcome": "miss", "cacheplug.tags": 0},
        ),
        (f"cacheplug {qualified}", {**hit, "cacheplug.tier": "memory"}),
        (f"cacheplug {qualified}", {**hit, "cacheplug.tier": "memory"}),
        (f"cacheplug {qualified}", {**hit, "cacheplug.tier": "disk"}),
    ]
    assert all(_child_of(s, request) for s in spans.cacheplug())
    for span in spans.cacheplug():
        assert span.start_time is not None and span.end_time is not None
        assert span.start_time <= span.end_time
    other.close()
    cache.close()
    disk.close()


def test_trace_hits_for_async_hits(spans: Spans, points: Points) -> None:
    otel = OpenTelemetryMiddleware(spans.provider, points.provider, trace_hits=1.0)
    cache = Cache([MemoryTier()], middleware=[otel])

    @cached(60, cache=cache)
    async def f(x: int) -> int:
        return x

    async def main() -> None:
        with spans.tracer.start_as_current_span("request"):
            assert [await f(1), await f(1)] == [1, 1]

    asyncio.run(main())
    outcomes = [(s.attributes or {}).get("cacheplug.outcome") for s in spans.cacheplug()]
    assert outcomes == ["miss", "hit"]
    request = spans.finished()[-1]
    assert all(_child_of(s, request) for s in spans.cacheplug())


def test_trace_hits_samples_by_the_ratio(
    spans: Spans, points: Points, monkeypatch: pytest.MonkeyPatch
) -> None:
    draws = iter([0.1, 0.9, 0.24, 0.25, 0.6])
    monkeypatch.setattr("cacheplug.otel.random.random", lambda: next(draws))
    otel = OpenTelemetryMiddleware(spans.provider, points.provider, trace_hits=0.25)
    cache = Cache([MemoryTier()], middleware=[otel])

    @cached(60, cache=cache)
    def f(x: int) -> int:
        return x

    f(1)  # a lookup (draw 0.1, sampled: but a miss gets the computation's span only), computed
    for _ in range(4):
        f(1)  # draws 0.9, 0.24, 0.25, 0.6: one traced hit
    outcomes = [(s.attributes or {}).get("cacheplug.outcome") for s in spans.cacheplug()]
    assert outcomes == ["miss", "hit"]


def test_trace_hits_zero_gives_no_hit_span(spans: Spans, points: Points) -> None:
    otel = OpenTelemetryMiddleware(spans.provider, points.provider, trace_hits=0)
    cache = Cache([MemoryTier()], middleware=[otel])

    @cached(60, cache=cache)
    def f(x: int) -> int:
        return x

    for _ in range(10):
        f(1)
    assert [(s.attributes or {}).get("cacheplug.outcome") for s in spans.cacheplug()] == ["miss"]


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, "0.5", True, None])
def test_trace_hits_must_be_a_ratio(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="trace_hits"):
        OpenTelemetryMiddleware(trace_hits=bad)


# -- metrics ------------------------------------------------------------------------------------


def test_the_metric_points_of_a_scripted_run(
    points: Points, otel: OpenTelemetryMiddleware, clock: FakeClock, tmp_path: Path
) -> None:
    disk = DiskTier(tmp_path / "disk")
    first = Cache([MemoryTier(), disk], clock=clock, middleware=[otel])
    second = Cache([MemoryTier(), disk], clock=clock, middleware=[otel])

    def make(on: Cache) -> Any:
        @cached(60, cache=on)
        def f(x: int) -> int:
            return x

        return f

    f, f2 = make(first), make(second)

    @cached(60, cache=first)
    def broken(x: int) -> int:
        raise ValueError(x)

    @cached(60, cache=first)
    async def fetch(x: int) -> int:
        return x

    for x in (1, 2):
        f(x)  # 2 misses
    for _ in range(5):
        f(1)  # 5 memory hits
    f2(1)  # a disk hit (the second cache's memory is empty), promoted to its memory
    f2(1)  # a memory hit
    for _ in range(2):
        with pytest.raises(ValueError):
            broken(1)  # 2 errors

    async def run_async() -> None:
        await fetch(1)
        await fetch(1)

    asyncio.run(run_async())  # a miss and a memory hit

    got = points.collect()
    assert set(got) == set(METRICS)
    assert {name: points.units[name] for name in got} == {
        name: unit for name, (_, unit, _) in METRICS.items()
    }
    fq = f"{__name__}.{f.__qualname__}"
    bq = f"{__name__}.{broken.__qualname__}"
    aq = f"{__name__}.{fetch.__qualname__}"
    zero = {"stale": 0, "coalesced": 0}

    def calls(name: str, memory: int, disk: int, miss: int, error: int) -> dict[Any, int]:
        out = {
            attrs(function=name, outcome="hit", tier="memory"): memory,
            attrs(function=name, outcome="hit", tier="disk"): disk,
            attrs(function=name, outcome="miss"): miss,
            attrs(function=name, outcome="error"): error,
        }
        out.update({attrs(function=name, outcome=o): n for o, n in zero.items()})
        return out

    assert got["cacheplug.calls"] == {
        **calls(fq, memory=6, disk=1, miss=2, error=0),
        **calls(bq, memory=0, disk=0, miss=0, error=2),
        **calls(aq, memory=1, disk=0, miss=1, error=0),
    }
    # They reconcile with the caches' own counters.
    stats = [first.stats(), second.stats()]
    for key, value in got["cacheplug.calls"].items():
        point = dict(key)
        name, outcome = point["code.function.name"], point["cacheplug.outcome"]
        if outcome == "hit":
            tier = point["cacheplug.tier"]
            expected = sum(s.functions[name].tier_hits.get(tier, 0) for s in stats if name in s.functions)
        else:
            expected = sum(s.functions[name].outcomes()[outcome] for s in stats if name in s.functions)
        assert value == expected, (name, outcome)
    assert sum(got["cacheplug.calls"].values()) == sum(s.calls for s in stats) == 13

    durations = got["cacheplug.compute.duration"]
    assert {key: count for key, (count, _) in durations.items()} == {
        attrs(function=fq, outcome="miss"): 2,
        attrs(function=bq, outcome="error"): 2,
        attrs(function=aq, outcome="miss"): 1,
    }
    assert all(total >= 0 for _, total in durations.values())

    # The sampled hits: every disk hit, 1 in 64 memory hits (times from the fake clock: 0 s,
    # the first bucket), as the caches' hit histograms hold them.
    expected_hits: dict[Any, tuple[int, float]] = {}
    for s in stats:
        for name, function in s.functions.items():
            for tier, reading in function.hit_latency.items():
                if reading.count:
                    count, total = expected_hits.get(attrs(function=name, tier=tier), (0, 0.0))
                    add = sum(bucket_bound(i) * n for i, n in reading.buckets)
                    expected_hits[attrs(function=name, tier=tier)] = (count + reading.count, total + add)
    assert expected_hits[attrs(function=fq, tier="disk")] == (1, bucket_bound(0))
    assert got["cacheplug.hit.duration"] == expected_hits

    # Entries: the first cache's memory holds f(1), f(2), fetch(1); the second's f(1); the
    # disk tier both share (counted once) f(1), f(2), fetch(1). Bytes: only the disk knows.
    assert got["cacheplug.entries"] == {attrs(tier="memory"): 4, attrs(tier="disk"): 3}
    (disk_bytes,) = got["cacheplug.size"].values()
    assert list(got["cacheplug.size"]) == [attrs(tier="disk")] and disk_bytes > 0

    # The next collection adds only what happened since: one more disk hit.
    again = points.collect()
    assert again["cacheplug.hit.duration"] == expected_hits
    f2(2)  # the disk holds f(2), the second cache's memory does not
    after = points.collect()
    count, total = after["cacheplug.hit.duration"][attrs(function=fq, tier="disk")]
    assert (count, total) == pytest.approx((2, 2 * bucket_bound(0)))
    assert after["cacheplug.calls"][attrs(function=fq, outcome="hit", tier="disk")] == 2

    # A closed cache is no longer reported.
    second.close()
    last = points.collect()["cacheplug.calls"]
    assert last[attrs(function=fq, outcome="hit", tier="disk")] == 0
    assert last[attrs(function=fq, outcome="hit", tier="memory")] == 5
    first.close()
    disk.close()


def test_caches_share_the_instruments_of_one_meter_provider(spans: Spans, points: Points) -> None:
    """Two middleware on one provider: one instrument each, both caches reported."""
    caches = [
        Cache([MemoryTier()], middleware=[OpenTelemetryMiddleware(spans.provider, points.provider)])
        for _ in range(2)
    ]
    for cache in caches:
        cache.get_or_compute("k", lambda: 1)
        cache.get_or_compute("k", lambda: 1)
    got = points.collect()
    assert got["cacheplug.calls"][attrs(function="<direct>", outcome="hit", tier="memory")] == 2
    assert got["cacheplug.calls"][attrs(function="<direct>", outcome="miss")] == 2
    assert got["cacheplug.entries"] == {attrs(tier="memory"): 2}
    assert got["cacheplug.compute.duration"][attrs(function="<direct>", outcome="miss")][0] == 2


def test_a_cache_no_longer_referenced_is_not_reported(points: Points, spans: Spans) -> None:
    otel = OpenTelemetryMiddleware(spans.provider, points.provider)
    cache = Cache([MemoryTier()], middleware=[otel])
    cache.get_or_compute("k", lambda: 1)
    assert points.collect()["cacheplug.calls"]
    cache.close()
    del cache
    assert not points.collect().get("cacheplug.calls")


# -- the shorthands, with the global providers (a subprocess each) ------------------------------

_PROVIDERS = """
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
"""

_CACHE = """
import cacheplug
from cacheplug import Cache, MemoryTier, cached

cache = {cache}
"""

_CALLS = """
import json

@cached(60, cache=cache)
def f(x):
    return x

f(1); f(1)
points = {}
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for m in sm.metrics:
            for p in m.data.data_points:
                if m.name == "cacheplug.calls" and p.value:
                    points[p.attributes["cacheplug.outcome"]] = p.value
print(json.dumps({
    "spans": [(s.name, dict(s.attributes)) for s in exporter.get_finished_spans()],
    "calls": points,
    "kinds": sorted(type(m).__name__ for m in (cache or cacheplug.get_cache()).middleware),
}))
"""


def _run(cache: str, *, late: bool = False, **env: str) -> dict[str, Any]:
    """Run the calls in a subprocess with the global providers set before the cache is
    built (or after it, ``late``: the middleware's instruments and tracer then follow)."""
    built = _CACHE.format(cache=cache)
    source = (built + _PROVIDERS if late else _PROVIDERS + built) + _CALLS
    done = subprocess.run(
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _expected(name: str) -> dict[str, Any]:
    return {
        "spans": [
            [
                f"cacheplug {name}",
                {"code.function.name": name, "cacheplug.tags": 0, "cacheplug.outcome": "miss"},
            ]
        ],
        "calls": {"hit": 1, "miss": 1},
        "kinds": ["OpenTelemetryMiddleware"],
    }


@pytest.mark.parametrize("late", [False, True], ids=["providers-first", "providers-later"])
def test_cache_tracing_true_uses_the_global_providers(late: bool) -> None:
    assert _run("Cache([MemoryTier()], tracing=True)", late=late) == _expected("__main__.f")


def test_cacheplug_otel_true_traces_the_default_cache(tmp_path: Path) -> None:
    found = _run("None", CACHEPLUG_OTEL="true", CACHEPLUG_TIERS="memory", CACHEPLUG_DIR=str(tmp_path))
    assert found == _expected("__main__.f")
    found = _run(
        "cacheplug.get_cache()",
        late=True,
        CACHEPLUG_OTEL="1",
        CACHEPLUG_TIERS="memory",
        CACHEPLUG_DIR=str(tmp_path),
    )
    assert found == _expected("__main__.f")


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_a_garbage_cacheplug_otel_is_refused(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHEPLUG_OTEL", value)
    import cacheplug

    with pytest.raises(ConfigurationError, match=f"CACHEPLUG_OTEL='{value}'"):
        cacheplug.get_cache()


def test_cacheplug_otel_false_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHEPLUG_OTEL", "off")
    import cacheplug

    assert cacheplug.get_cache().middleware == ()


def test_tracing_true_does_not_add_a_second_middleware(otel: OpenTelemetryMiddleware) -> None:
    cache = Cache([MemoryTier()], middleware=[otel], tracing=True)
    assert cache.middleware == (otel,)
    with pytest.raises(ConfigurationError, match="takes a list of middleware"):
        Cache([MemoryTier()], middleware=otel, tracing=True)  # type: ignore[arg-type]


def test_importing_cacheplug_does_not_import_opentelemetry() -> None:
    code = "import sys, cacheplug; print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.stdout.strip() == "[]"
