"""The typed stats (issue 8, "Stats"): exact counters, latencies on a fake clock, errors,
retired functions, the JSON form and the tiers' sizes.

Counters are checked against the calls the test itself made: after a threaded run the
outcomes of every function sum to its calls, the totals to the functions' sums and the
per-tier hits to the hits. Latencies are scripted with the fake clock (``Cache(clock=...)``
also times hits with it), so every duration, bucket and percentile is exact.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import math
import random
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cacheplug.fastpath
from cacheplug import (
    Cache,
    CacheStats,
    DiskTier,
    FunctionStats,
    Latency,
    MemoryTier,
    ProxyTier,
    TierStats,
    cached,
)
from cacheplug.cache.calls import Meter
from cacheplug.envelope import Entry
from cacheplug.histogram import BUCKETS, Histogram, bucket_bound

from .conftest import FakeClock
from .tier_doubles import Gate, GatedTier, wait

THREADS = 8
CALLS = 10_000  # per thread
KEYS = 400
JOIN = 120.0  # seconds a worker may take (never reached when correct)


def _raises(key: int) -> bool:
    return key % 37 == 0


class Obj:
    """An instance whose method is cached (its calls take the general path)."""

    def __cache_key__(self) -> str:
        return "obj"


def _name(func: Any) -> str:
    """The name stats() files a function under: its module and qualified name."""
    return f"{func.__module__}.{func.__qualname__}"


def _stats_of(cache: Cache, func: Any) -> FunctionStats:
    return cache.stats().functions[_name(func)]


# -- counters reconcile exactly after 8 threads x 10,000 calls ---------------------------------


@pytest.fixture(params=["memory", "memory+disk"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cache]:
    # A small memory tier: the run evicts, so it has misses (and disk hits) all along.
    tiers: list[Any] = [MemoryTier(max_entries=128)]
    if request.param == "memory+disk":
        tiers.append(DiskTier(tmp_path / "disk"))
    with Cache(tiers) as made:
        yield made
    for tier in tiers[1:]:
        tier.close()


def test_counters_reconcile_after_threads(cache: Cache) -> None:
    @cached(300, cache=cache)
    def fast(i: int) -> int:  # int arguments: the generated fast path
        if _raises(i):
            raise ValueError(i)
        return i

    class Thing(Obj):
        @cached(300, cache=cache)
        def method(self, values: list[int], *, scale: int = 1) -> int:  # the general path
            if _raises(values[0]):
                raise ValueError(values)
            return values[0] * scale

    @cached(300, cache=cache)
    async def coro(i: int) -> int:
        if _raises(i):
            raise ValueError(i)
        return i

    thing = Thing()
    made: collections.Counter[str] = collections.Counter()
    raised: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    failures: list[BaseException] = []

    async def body(seed: int) -> None:
        rng = random.Random(seed)
        mine: collections.Counter[str] = collections.Counter()
        errs: collections.Counter[str] = collections.Counter()
        for n in range(CALLS):
            key = rng.randrange(KEYS)
            which = ("fast", "method", "coro")[n % 3]
            mine[which] += 1
            try:
                if which == "fast":
                    assert fast(key) == key
                elif which == "method":
                    assert thing.method([key], scale=2) == 2 * key
                else:
                    assert await coro(key) == key
            except ValueError:
                assert _raises(key)
                errs[which] += 1
        with lock:
            made.update(mine)
            raised.update(errs)

    def worker(seed: int) -> None:
        try:
            asyncio.run(body(seed))  # an event loop per thread
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN)
        assert not thread.is_alive(), "a worker did not finish"
    assert not failures, failures
    assert sum(made.values()) == THREADS * CALLS

    stats = cache.stats()
    names = {"fast": _name(fast), "method": _name(Thing.method), "coro": _name(coro)}
    infos = {"fast": fast.cache_info(), "method": Thing.method.cache_info(), "coro": coro.cache_info()}
    assert set(stats.functions) == set(names.values())  # the direct API made no call
    tier_names = [tier.name for tier in cache.tiers]
    for which, name in names.items():
        fs = stats.functions[name]
        assert fs.hits + fs.misses + fs.stale + fs.coalesced + fs.errors == made[which], which
        assert fs.calls == made[which]
        assert fs.errors == raised[which] > 0  # a raising key is never cached: every call errs
        assert fs.stale == 0  # (coalesced: callers that shared a concurrent miss's computation)
        assert fs.hits > 0 and fs.misses > 0
        assert set(fs.tier_hits) == set(tier_names)
        assert sum(fs.tier_hits.values()) == fs.hits
        assert fs.compute.count == fs.misses  # every computation that returned is timed
        for tier in tier_names[1:]:  # every shared-tier hit is timed
            assert fs.hit_latency[tier].count == fs.tier_hits[tier]
        if len(tier_names) > 1:
            assert fs.tier_hits["disk"] > 0  # evicted from memory, served by the disk
        # functools' shape: four fields; misses are every call no tier served (raised included).
        hits, misses, maxsize, currsize = infos[which]
        assert (hits, misses, maxsize) == (fs.hits, made[which] - fs.hits, 128)
        assert 0 < currsize <= 128
        assert infos[which].stats.outcomes() == fs.outcomes()
        assert infos[which].share == pytest.approx(currsize / stats.entries)
    assert sum(info.share for info in infos.values()) == pytest.approx(1.0)
    # The totals are the functions' sums.
    functions = list(stats.functions.values())
    for field in ("hits", "misses", "stale", "coalesced", "errors", "calls"):
        assert getattr(stats, field) == sum(getattr(fs, field) for fs in functions), field
    assert stats.calls == THREADS * CALLS
    assert stats.tier_hits == {t: sum(fs.tier_hits[t] for fs in functions) for t in tier_names}
    assert sum(stats.tier_hits.values()) == stats.hits
    assert {t: stats.tiers[t].hits for t in tier_names} == stats.tier_hits
    assert stats.hit_rate == pytest.approx(stats.hits / stats.calls)


class Shared(ProxyTier):
    """A memory tier standing in for a second shared tier (the one above the disk)."""


def test_a_snapshot_during_a_shared_tier_hit_is_consistent(clock: FakeClock, disk_dir: Path) -> None:
    upper_store = MemoryTier()
    upper = Shared(upper_store)
    upper.name, upper.shared = "upper", True
    gate = Gate()
    disk = DiskTier(disk_dir)
    with Cache([MemoryTier(), GatedTier(upper, gate), disk], clock=clock) as cache:

        @cached(300, cache=cache)
        def f(i: int) -> int:
            return i

        f(1)
        (skey,) = [k for k in disk.keys() if "(i1)" in k]  # noqa: SIM118 - a tier, not a dict
        assert cache.memory is not None
        cache.memory.clear()
        upper_store.clear()
        # The disk answers; the call stops while it copies the entry into the tier above.
        gate.arm(("set", skey))
        caller = threading.Thread(target=f, args=(1,))
        caller.start()
        try:
            wait(gate.reached, "the promotion into the upper tier")
            during = cache.stats()
        finally:
            gate.release.set()
            caller.join(JOIN)
        fs = during.functions[_name(f)]
        assert fs.tier_hits == {"memory": 0, "upper": 0, "disk": 1} and fs.hits == 1
        assert CacheStats.from_dict(json.loads(json.dumps(during.to_dict()))) == during
        assert _stats_of(cache, f).tier_hits == {"memory": 0, "upper": 0, "disk": 1}
    disk.close()


# -- latencies on the fake clock ----------------------------------------------------------------


class SlowGets(ProxyTier):
    """A real tier whose reads take ``seconds`` of the fake clock."""

    def __init__(self, tier: Any, clock: FakeClock, seconds: float) -> None:
        super().__init__(tier)
        self.clock = clock
        self.seconds = seconds

    def get(self, key: str) -> Entry | Any:
        self.clock.advance(self.seconds)
        return self.tier.get(key)


def _first_bucket_holding(seconds: float) -> int:
    return next(i for i in range(BUCKETS) if bucket_bound(i) >= seconds)


PATHS = ("lean", "shared", "general", "async")


def _cache_for(path: str, clock: FakeClock, disk_dir: Path, slow: float = 0.0) -> Cache:
    if path == "shared":
        return Cache([MemoryTier(), SlowGets(DiskTier(disk_dir), clock, slow)], clock=clock)
    return Cache([MemoryTier()], clock=clock)


def _caller(path: str, cache: Cache, body: Callable[[int], int]) -> tuple[Any, Callable[[int], int]]:
    """A cached function of ``path``'s kind running ``body``, and a sync way to call it."""
    if path == "general":

        class Holder(Obj):
            @cached(300, cache=cache)
            def method(self, i: int, *, extra: int = 0) -> int:
                return body(i)

        holder = Holder()
        return Holder.method, lambda i: holder.method(i, extra=1)
    if path == "async":

        @cached(300, cache=cache)
        async def coro(i: int) -> int:
            return body(i)

        loop = asyncio.new_event_loop()
        calls = lambda i: loop.run_until_complete(coro(i))  # noqa: E731
        calls.loop = loop  # type: ignore[attr-defined]
        return coro, calls

    @cached(300, cache=cache)
    def fast(i: int) -> int:
        return body(i)

    return fast, fast


@pytest.mark.parametrize("path", PATHS)
def test_compute_durations_land_in_their_buckets(path: str, clock: FakeClock, disk_dir: Path) -> None:
    def body(i: int) -> int:
        clock.advance(0.25 if i < 90 else 2.0)
        return i

    with _cache_for(path, clock, disk_dir) as cache:
        func, call = _caller(path, cache, body)
        for i in range(100):
            assert call(i) == i
        compute = _stats_of(cache, func).compute
    assert bucket_bound(88) == 0.25 and bucket_bound(100) == 2.0
    assert compute.buckets == ((88, 90), (100, 10))
    assert compute.count == 100 and compute.total == pytest.approx(90 * 0.25 + 10 * 2.0)
    assert compute.mean == pytest.approx(0.425)
    assert compute.percentile(50) == 0.25
    assert compute.percentile(90) == 0.25
    assert compute.percentile(91) == 2.0
    assert compute.percentile(95) == 2.0
    assert compute.percentile(100) == 2.0
    with pytest.raises(ValueError, match="percentile"):
        compute.percentile(0)


@pytest.mark.parametrize("path", ["fast", "general"])
def test_every_disk_hit_is_timed(path: str, clock: FakeClock, disk_dir: Path) -> None:
    with _cache_for("shared", clock, disk_dir, slow=0.003) as cache:
        func, call = _caller("general" if path == "general" else "shared", cache, lambda i: i)
        for i in range(50):
            call(i)
        assert cache.memory is not None
        cache.memory.clear()
        for i in range(50):
            call(i)  # served by the disk (then promoted)
        for i in range(50):
            call(i)  # served by memory
        fs = _stats_of(cache, func)
    assert fs.tier_hits == {"memory": 50, "disk": 50}
    disk = fs.hit_latency["disk"]
    index = _first_bucket_holding(0.003)
    assert disk.count == 50 and disk.buckets == ((index, 50),)
    assert disk.percentile(50) == disk.percentile(95) == bucket_bound(index)
    assert 0.003 <= bucket_bound(index) <= 0.003 * 1.19
    assert disk.total == pytest.approx(50 * 0.003, rel=1e-3)
    # The hit counter counts the hits of every tier: disk hits 0..49, memory hits 50..99, of
    # which hit 64 asks for the next memory hit to be timed.
    assert fs.hit_latency["memory"].count == 1


def _expected_samples(hits: int, path: str) -> int:
    """Timed memory hits after ``hits`` consecutive memory hits of a fresh function.

    The hit counter numbers hits from 0. On the generated fast path (sync and async), hit
    ``k`` with ``k % 64 == 63`` (every 64th) times one more lookup of its key: ``hits // 64``.
    On the general path, hit ``k`` with ``k % 64 == 0`` asks for the next call to be timed,
    and that call (a hit) is: hits 1, 65, 129... are timed, those ``<= hits - 1``.
    """
    if path != "general":
        return hits // 64
    return 0 if hits < 2 else (hits - 2) // 64 + 1


@pytest.mark.parametrize("path", ["lean", "general", "async"])
@pytest.mark.parametrize("hits", [1, 2, 64, 65, 66, 640, 6400])
def test_memory_hits_are_sampled_1_in_64(path: str, hits: int, clock: FakeClock, disk_dir: Path) -> None:
    with _cache_for(path, clock, disk_dir) as cache:
        func, call = _caller(path, cache, lambda i: i)
        call(7)  # the miss
        for _ in range(hits):
            assert call(7) == 7
        fs = _stats_of(cache, func)
    expected = _expected_samples(hits, path)
    assert abs(expected - hits // 64) <= 1
    assert fs.hits == hits and fs.tier_hits == {"memory": hits}
    memory = fs.hit_latency["memory"]
    assert memory.count == expected
    # A memory hit takes no time on the fake clock: every reading is in the first bucket.
    assert memory.buckets == (((0, expected),) if expected else ())


def test_hits_are_not_sampled_without_recording(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cacheplug.fastpath, "RECORD_HITS", False)
    with Cache([MemoryTier()], clock=clock) as cache:

        @cached(300, cache=cache)
        def f(i: int) -> int:
            return i

        for _ in range(641):
            f(1)
        fs = _stats_of(cache, f)
    assert fs.hits == 640 and fs.hit_latency["memory"].count == 0


# -- errors: one error outcome, no miss ----------------------------------------------------------


ERROR_PATHS = ("fast", "lean", "general", "async", "get_or_compute")


@pytest.mark.parametrize("path", ERROR_PATHS)
@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_a_raising_computation_counts_one_error(
    path: str, error: type[BaseException], clock: FakeClock, disk_dir: Path
) -> None:
    if path == "async" and error is KeyboardInterrupt:
        pytest.skip("a KeyboardInterrupt in a coroutine stops its event loop (asyncio's own handling)")

    def body(i: int) -> int:
        clock.advance(1.0)
        raise error(i)

    with _cache_for("shared" if path == "fast" else "lean", clock, disk_dir) as cache:
        if path == "get_or_compute":
            with pytest.raises(error):
                cache.get_or_compute("k", lambda: body(1))
            fs = cache.stats().functions["<direct>"]
            info = None
        else:
            func, call = _caller(path if path in ("general", "async") else "fast", cache, body)
            with pytest.raises(error):
                call(1)
            fs = _stats_of(cache, func)
            info = func.cache_info()
        stats = cache.stats()
    assert fs.outcomes() == {"hit": 0, "miss": 0, "stale": 0, "coalesced": 0, "error": 1}
    assert fs.calls == 1 and fs.compute.count == 0  # only computations that returned are timed
    assert (stats.errors, stats.misses, stats.calls) == (1, 0, 1)
    if info is not None:
        assert (info.hits, info.misses) == (0, 1)  # functools counts it as not served


# -- retired functions ---------------------------------------------------------------------------


def _meters() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is Meter)


def test_counts_of_collected_functions_stay_under_their_name(clock: FakeClock) -> None:
    with Cache([MemoryTier()], clock=clock) as cache:

        def factory(n: int) -> Any:
            @cached(300, cache=cache)
            def closure(i: int) -> int:
                if i < 0:
                    raise ValueError(i)
                return i + n

            return closure

        gc.collect()
        cache.stats()
        before = _meters()
        name = ""
        for n in range(5000):
            f = factory(n)
            name = _name(f)
            assert f(1) == 1 + n and f(1) == 1 + n
            with pytest.raises(ValueError):
                f(-1)
        del f
        gc.collect()
        stats = cache.stats()
        assert not cache.bindings.retired  # folded
        assert list(cache.bindings.gone) == [name]
        assert len(cache.bindings.gone) == 1
        assert _meters() <= before  # no meter of a dropped closure is kept
        fs = stats.functions[name]
        assert fs.outcomes() == {"hit": 5000, "miss": 5000, "stale": 0, "coalesced": 0, "error": 5000}
        assert fs.compute.count == 5000
        assert stats.calls == 15_000
        # A live function of the same name adds to its retired predecessors.
        g = factory(-1)
        g(5)
        assert cache.stats().functions[name].misses == 5001
        assert g.cache_info().misses == 1  # cache_info is this function object's own


# -- the JSON form and the mapping ----------------------------------------------------------------


def _busy_stats(clock: FakeClock, disk_dir: Path) -> CacheStats:
    disk = DiskTier(disk_dir)
    with Cache([MemoryTier(), SlowGets(disk, clock, 0.002)], clock=clock) as cache:

        @cached(300, cache=cache, version="1")  # a closure over the clock: say what keys it
        def f(i: int) -> int:
            clock.advance(0.01 * (i + 1))
            if i == 3:
                raise ValueError(i)
            return i

        for i in range(10):
            with contextlib.suppress(ValueError):
                f(i)
        assert cache.memory is not None
        cache.memory.clear()
        for _ in range(200):
            f(1)
        cache.set("direct", 1)
        cache.get("direct")
        stats = cache.stats()
    disk.close()
    return stats


def test_json_round_trip(clock: FakeClock, disk_dir: Path) -> None:
    stats = _busy_stats(clock, disk_dir)
    fs = stats.functions[next(n for n in stats.functions if n.endswith(".f"))]
    assert fs.compute.count and fs.hit_latency["disk"].count and fs.hit_latency["memory"].count
    assert stats.tiers["disk"].entries
    text = json.dumps(stats.to_dict())
    assert CacheStats.from_dict(json.loads(text)) == stats
    for name, one in stats.functions.items():
        assert FunctionStats.from_dict(json.loads(json.dumps(one.to_dict()))) == one, name
    for name, tier in stats.tiers.items():
        assert TierStats.from_dict(json.loads(json.dumps(tier.to_dict()))) == tier, name
    data = json.loads(text)
    assert data["calls"] == stats.calls and data["functions"][fs.name]["calls"] == fs.calls
    assert data["functions"][fs.name]["compute"]["p95"] == fs.compute.percentile(95)


def test_legacy_mapping_access(clock: FakeClock) -> None:
    with Cache([MemoryTier()], clock=clock) as cache:
        cache.set("a", 1)
        cache.get("a")
        cache.get("b")
        stats = cache.stats()
    assert stats["hits"] == stats.hits == 1
    assert stats["misses"] == stats.misses == 1
    assert dict(stats)["tier_hits"] == {"memory": 1}
    assert "hits" in stats and "calls" not in dict(stats) and len(stats) == len(dict(stats))
    assert stats.get("nonsense") is None
    with pytest.raises(KeyError):
        stats["nonsense"]
    with pytest.raises(AttributeError):
        stats.hits = 5  # type: ignore[misc]


def _good(clock: FakeClock, disk_dir: Path) -> dict[str, Any]:
    return json.loads(json.dumps(_busy_stats(clock, disk_dir).to_dict()))


def _function(data: dict[str, Any]) -> dict[str, Any]:
    return next(v for k, v in data["functions"].items() if k.endswith(".f"))


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("not a mapping", lambda d: d.update(functions=[1, 2]), "'functions' must be a mapping"),
    ("negative total", lambda d: d.update(hits=-1), "'hits' must be a count"),
    ("string count", lambda d: d.update(misses="3"), "'misses' must be a count"),
    ("bool count", lambda d: d.update(errors=True), "'errors' must be a count"),
    ("float count", lambda d: d.update(entries=1.5), "'entries' must be a count"),
    ("negative tier hits", lambda d: d["tier_hits"].update(memory=-2), "'memory' must be a count"),
    ("bad hit rate", lambda d: d.update(hit_rate="high"), "'hit_rate' must be a number"),
    ("bad time", lambda d: d.update(time=None), "'time' must be a number"),
    ("function name missing", lambda d: _function(d).pop("name"), "need a 'name'"),
    ("function name not a str", lambda d: _function(d).update(name=5), "need a 'name'"),
    ("function not a mapping", lambda d: d["functions"].update(x=[1]), "must be a mapping"),
    ("tier name missing", lambda d: d["tiers"]["disk"].pop("name"), "need a 'name'"),
    ("negative function count", lambda d: _function(d).update(hits=-5), "'hits' must be a count"),
    ("negative tier entries", lambda d: d["tiers"]["disk"].update(entries=-1), "'entries' must be a count"),
    ("bucket index too high", lambda d: _function(d)["compute"].update(buckets=[[BUCKETS, 1]]), "bad bucket"),
    ("bucket index negative", lambda d: _function(d)["compute"].update(buckets=[[-1, 1]]), "bad bucket"),
    ("bucket count zero", lambda d: _function(d)["compute"].update(buckets=[[3, 0]]), "bad bucket"),
    ("bucket not a pair", lambda d: _function(d)["compute"].update(buckets=["12"]), "bad bucket"),
    ("bucket float", lambda d: _function(d)["compute"].update(buckets=[[3.5, 1]]), "bad bucket"),
    ("buckets unordered", lambda d: _function(d)["compute"].update(buckets=[[5, 1], [4, 1]]), "bad bucket"),
    ("buckets not a list", lambda d: _function(d)["compute"].update(buckets=7), "'buckets' must be a list"),
    ("count off the buckets", lambda d: _function(d)["compute"].update(count=10**6), "inconsistent"),
    ("count a string", lambda d: _function(d)["compute"].update(count="9"), "'count' must be an int"),
    ("total negative", lambda d: _function(d)["compute"].update(total=-1.0), "'total' must be a finite"),
    ("total NaN", lambda d: _function(d)["compute"].update(total=math.nan), "'total' must be a finite"),
    ("latency not a mapping", lambda d: _function(d)["hit_latency"].update(disk=3), "must be a mapping"),
]


@pytest.mark.parametrize(("what", "spoil", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_input_is_refused_clearly(
    what: str, spoil: Callable[[dict[str, Any]], None], message: str, clock: FakeClock, disk_dir: Path
) -> None:
    data = _good(clock, disk_dir)
    CacheStats.from_dict(data)  # the unspoiled form reads
    spoil(data)
    with pytest.raises(ValueError, match=message):
        CacheStats.from_dict(data)


def test_malformed_parts_are_refused_on_their_own() -> None:
    with pytest.raises(ValueError, match="need a 'name'"):
        FunctionStats.from_dict({"hits": 1})
    with pytest.raises(ValueError, match="need a 'name'"):
        TierStats.from_dict({})
    with pytest.raises(ValueError, match="must be a mapping"):
        Latency.from_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a cacheplug stats snapshot"):
        CacheStats.from_dict([1, 2])  # type: ignore[arg-type]


# -- tiers' entries and bytes --------------------------------------------------------------------


def test_memory_tier_entries_and_bytes(clock: FakeClock) -> None:
    for max_bytes in (None, 1 << 20):
        memory = MemoryTier(max_bytes=max_bytes)
        with Cache([memory], clock=clock) as cache:

            @cached(300, cache=cache)
            def f(i: int) -> str:
                return "x" * 100

            for i in range(20):
                f(i)
            tier = cache.stats().tiers["memory"]
        assert tier.entries == 20 == len(memory)
        if max_bytes is None:
            assert tier.bytes is None
        else:
            assert tier.bytes == memory.bytes and tier.bytes >= 20 * 100


def test_disk_tier_entries_and_bytes(clock: FakeClock, disk_dir: Path) -> None:
    disk = DiskTier(disk_dir)
    with Cache([MemoryTier(), disk], clock=clock) as cache:

        @cached(300, cache=cache)
        def f(i: int) -> bytes:
            return b"y" * 1000

        for i in range(30):
            f(i)
        tier = cache.stats().tiers["disk"]
        assert tier.entries == len(disk) >= 30  # the rows (the function's entries, and bookkeeping)
        assert tier.bytes is not None and tier.bytes >= 30 * 1000
        assert tier.evictions is None and tier.faults == {}
    disk.close()


@pytest.mark.parametrize("how", ["deleted", "unreadable"])
def test_an_unreachable_disk_tier_measures_none_and_counts_a_fault(
    how: str, clock: FakeClock, tmp_path: Path
) -> None:
    where = tmp_path / "disk"
    disk = DiskTier(where)
    with Cache([MemoryTier(), disk], clock=clock) as cache:

        @cached(300, cache=cache)
        def f(i: int) -> int:
            return i

        f(1)
        if how == "deleted":
            shutil.rmtree(where)
        else:
            # What an unreadable database does to diskcache (root reads any file, so the
            # permission bits cannot stand in for it).
            disk._dc = None  # type: ignore[attr-defined]
            disk._retry_at = math.inf  # type: ignore[attr-defined]
            disk.down_reason = "unreadable"  # type: ignore[attr-defined]
        found: list[CacheStats] = []
        # SQLite keeps an open handle on a deleted file: a new thread opens a new connection.
        reader = threading.Thread(target=lambda: found.append(cache.stats()))
        reader.start()
        reader.join(JOIN)
        assert found, "stats() raised"
        tier = found[0].tiers["disk"]
        assert (tier.entries, tier.bytes) == (None, None)
        assert tier.faults.get("measure") == 1
        assert found[0].faults.get("disk.measure") == 1
    disk.close()


# -- Latency: properties --------------------------------------------------------------------------

in_range = st.floats(min_value=2.0**-24, max_value=2.0**8, exclude_max=True, allow_nan=False)
durations = st.lists(st.floats(min_value=0.0, max_value=1e4, allow_nan=False), max_size=60)


def _reading(values: list[float]) -> Latency:
    histogram = Histogram()
    for value in values:
        histogram.record(value)
    return histogram.read()


@settings(max_examples=300, deadline=None)
@given(durations, durations)
def test_latency_plus_and_minus_are_inverse(a: list[float], b: list[float]) -> None:
    first, second = _reading(a), _reading(b)
    both = first.plus(second)
    assert both == _reading(a + b) or both.buckets == _reading(a + b).buckets
    back = both.minus(second)
    assert (back.count, back.buckets) == (first.count, first.buckets)
    assert back.total == pytest.approx(first.total, rel=1e-9, abs=1e-9)
    other = both.minus(first)
    assert (other.count, other.buckets) == (second.count, second.buckets)
    assert first.minus(first) == Latency(0, 0.0, ())
    assert Latency.from_dict(json.loads(json.dumps(both.to_dict()))) == both


@settings(max_examples=300, deadline=None)
@given(durations.filter(bool), st.lists(st.floats(min_value=0.01, max_value=100.0), min_size=2, max_size=10))
def test_latency_percentile_is_monotone(values: list[float], qs: list[float]) -> None:
    reading = _reading(values)
    found = [reading.percentile(q) for q in sorted(qs)]
    assert found == sorted(found)  # type: ignore[type-var]


@settings(max_examples=500, deadline=None)
@given(st.lists(in_range, min_size=1, max_size=60), st.floats(min_value=0.01, max_value=100.0))
def test_latency_percentile_is_never_low_and_at_most_19_percent_high(values: list[float], q: float) -> None:
    reading = _reading(values)
    truth = sorted(values)[math.ceil(len(values) * q / 100) - 1]
    found = reading.percentile(q)
    assert found is not None
    assert truth <= found <= truth * 1.19


@given(st.sampled_from(range(1, BUCKETS - 1)), st.sampled_from([-2, -1, 0, 1, 2]))
def test_a_duration_next_to_a_bound_lands_in_the_bucket_holding_it(index: int, ulps: int) -> None:
    value = bucket_bound(index)
    for _ in range(abs(ulps)):
        value = math.nextafter(value, math.inf if ulps > 0 else 0.0)
    reading = _reading([value])
    ((found, _),) = reading.buckets
    assert bucket_bound(found - 1) < value <= bucket_bound(found)
