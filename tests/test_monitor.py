"""The monitor: rules firing and clearing on scripted days, alerts as signals and log lines,
cleanup by SizeAbove, hit-rate trends, the thread's life, and published stats from real
processes. Time is a fake clock: every round is a ``check()`` call, nothing sleeps."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cacheplug
from cacheplug import (
    Alert,
    Cache,
    ConfigurationError,
    DiskTier,
    HitRateBelow,
    InvalidationRateAbove,
    LatencyAbove,
    MemoryTier,
    Monitor,
    ProxyTier,
    SizeAbove,
    cached,
    signals,
)
from cacheplug.observe import publish, trends
from cacheplug.observe.monitor import host_snapshots
from tests.conftest import FakeClock

REPO = Path(__file__).resolve().parent.parent
DAY = 24 * 3600


class SlowTier(ProxyTier):
    """The real tier, with each read taking ``delay`` seconds of the fake clock."""

    def __init__(self, tier: Any, clock: FakeClock) -> None:
        super().__init__(tier)
        self.clock = clock
        self.delay = 0.0

    def get(self, key: str) -> Any:
        self.clock.advance(self.delay)
        return super().get(key)


@pytest.fixture
def disk(disk_dir: Path) -> Iterator[DiskTier]:
    tier = DiskTier(disk_dir)
    yield tier
    tier.close()


@pytest.fixture
def cache(clock: FakeClock, disk: DiskTier) -> Iterator[Cache]:
    with Cache([MemoryTier(), disk], clock=clock) as made:
        yield made


@pytest.fixture
def received() -> Iterator[list[tuple[Any, Alert]]]:
    got: list[tuple[Any, Alert]] = []

    def receiver(sender: Any, alert: Alert) -> None:
        got.append((sender, alert))

    with signals.alert.connected_to(receiver):
        yield got


class Calls:
    """A cached function and a script of its calls: so many hits, so many misses."""

    def __init__(self, cache: Cache, warm: int = 100) -> None:
        @cached(cache=cache, ttl=DAY)
        def load(i: int) -> int:
            return i * 2

        self.load = load
        self.new = warm
        for i in range(warm):
            load(i)
        (self.name,) = cache.stats().functions

    @staticmethod
    def name_in(cache: Cache) -> str:
        (name,) = (n for n in cache.stats().functions if n.endswith("Calls.__init__.<locals>.load"))
        return name

    def run(self, hits: int, misses: int) -> None:
        for i in range(hits):
            self.load(i)
        for _ in range(misses):
            self.new += 1
            self.load(self.new)


def test_hit_rate_below_fires_once_while_low_and_resolves(
    cache: Cache, clock: FakeClock, received: list[tuple[Any, Alert]], caplog: pytest.LogCaptureFixture
) -> None:
    calls = Calls(cache)
    monitor = Monitor(cache, rules=[HitRateBelow(0.5, min_calls=100)])
    assert monitor.check() == []  # the baseline: no interval yet
    calls.run(hits=30, misses=170)
    clock.advance(60)
    with caplog.at_level(logging.INFO, logger="cacheplug"):
        (alert,) = monitor.check()
    assert (alert.rule, alert.subject, alert.state) == ("HitRateBelow", calls.name, "firing")
    assert alert.value == pytest.approx(0.15) and alert.threshold == 0.5 and alert.time == clock.now
    assert "0.15" in alert.message and "0.5" in alert.message and "200 calls" in alert.message
    assert [r.levelno for r in caplog.records if r.message == alert.message] == [logging.WARNING]
    assert received == [(cache, alert)]

    calls.run(hits=10, misses=190)  # still low: no repeat
    clock.advance(60)
    assert monitor.check() == []
    assert monitor.firing == [alert]

    calls.run(hits=20, misses=10)  # too few calls to judge: the state stays
    clock.advance(60)
    assert monitor.check() == []

    calls.run(hits=100, misses=0)  # per interval, not since start (that would still be low)
    clock.advance(60)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cacheplug"):
        (resolved,) = monitor.check()
    assert (resolved.state, resolved.subject, resolved.value) == ("resolved", calls.name, 1.0)
    assert cache.stats().functions[calls.name].hit_rate < 0.5
    assert [r.levelno for r in caplog.records if r.message == resolved.message] == [logging.INFO]
    assert [a for _, a in received] == [alert, resolved]
    assert monitor.firing == [] and monitor.alerts == [alert, resolved]


def test_latency_above_reads_the_p95_of_the_interval_per_tier(
    clock: FakeClock, disk: DiskTier, received: list[tuple[Any, Alert]]
) -> None:
    slow = SlowTier(disk, clock)
    with Cache([MemoryTier(), slow], clock=clock) as cache:
        calls = Calls(cache, warm=50)
        monitor = Monitor(cache, rules=[LatencyAbove(ms=20)])
        monitor.check()

        def disk_hits(delay: float) -> None:
            assert cache.memory is not None
            cache.memory.clear()
            slow.delay = delay
            calls.run(hits=50, misses=0)
            clock.advance(60)

        disk_hits(0.005)
        assert monitor.check() == []
        disk_hits(0.05)
        (alert,) = monitor.check()
        assert (alert.rule, alert.subject, alert.threshold) == ("LatencyAbove", "disk", 20.0)
        assert 50 <= alert.value <= 50 * 1.19 and "50 timed hits" in alert.message
        disk_hits(0.08)
        assert monitor.check() == []
        p = monitor.percentiles(calls.name, tier="disk")["hit"]
        assert p["p50"] is not None and 0.05 <= p["p50"] <= 0.05 * 1.19
        assert p["p99"] is not None and 0.08 <= p["p99"] <= 0.08 * 1.19
        disk_hits(0.002)
        (resolved,) = monitor.check()
        assert resolved.state == "resolved" and resolved.value < 20
        assert [a.state for _, a in received] == ["firing", "resolved"]


def test_latency_target_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LatencyAbove().threshold == 10.0
    monkeypatch.setenv("CACHEPLUG_LATENCY_TARGET_MS", " 25 ")
    assert LatencyAbove().threshold == 25.0
    assert LatencyAbove(ms=3).threshold == 3.0
    for garbage in ("fast", "0", "-5", "nan", "inf"):
        monkeypatch.setenv("CACHEPLUG_LATENCY_TARGET_MS", garbage)
        with pytest.raises(ConfigurationError, match="CACHEPLUG_LATENCY_TARGET_MS"):
            LatencyAbove()


def test_size_above_sweeps_expired_entries_from_the_disk_tier(
    clock: FakeClock, cache: Cache, disk: DiskTier, received: list[tuple[Any, Alert]]
) -> None:
    @cached(cache=cache, ttl=60)
    def blob(i: int) -> bytes:
        return bytes([i]) * 100_000

    monitor = Monitor(cache, rules=[SizeAbove(500_000)])
    for i in range(10):
        blob(i)
    clock.advance(120)  # all ten expire
    for i in range(3):
        blob(100 + i)  # three live ones: about 300 kB
    assert len(disk) == 13
    (alert,) = monitor.check()
    assert (alert.rule, alert.subject, alert.state) == ("SizeAbove", "disk", "firing")
    assert alert.reclaimed is not None
    assert alert.reclaimed.entries >= 10  # the disk tier's ten (and memory's expired ones)
    assert alert.reclaimed.bytes_before == alert.value > 1_300_000
    assert alert.reclaimed.bytes_after < 500_000
    assert len(disk) == 3 and [blob(100 + i)[0] for i in range(3)] == [100, 101, 102]
    assert "1300" in alert.message or str(alert.reclaimed.bytes_before) in alert.message
    (resolved,) = monitor.check()
    assert resolved.state == "resolved" and resolved.reclaimed is None
    assert received[0][1].reclaimed == alert.reclaimed


def test_size_above_does_not_sweep_again_while_it_persists(cache: Cache) -> None:
    @cached(cache=cache, ttl=DAY)
    def blob(i: int) -> bytes:
        return bytes([i]) * 100_000

    for i in range(3):
        blob(i)
    monitor = Monitor(cache, rules=[SizeAbove(100_000)])
    (alert,) = monitor.check()
    assert alert.reclaimed is not None and alert.reclaimed.entries == 0  # nothing was expired
    assert monitor.check() == []


def test_invalidation_rate_above_is_per_second_of_the_interval(
    cache: Cache, clock: FakeClock, received: list[tuple[Any, Alert]]
) -> None:
    monitor = Monitor(cache, rules=[InvalidationRateAbove(1.0)])
    monitor.check()
    for i in range(50):
        cache.invalidate(tags=[f"t{i}"])
    clock.advance(60)  # 50 in 60 s: under
    assert monitor.check() == []
    for i in range(90):
        cache.invalidate(tags=[f"t{i}"])
    clock.advance(60)  # 90 in 60 s: 1.5/s
    (alert,) = monitor.check()
    assert (alert.subject, alert.value, alert.threshold) == ("<cache>", 1.5, 1.0)
    assert "90 in 60 s" in alert.message
    clock.advance(3600)  # an hour without: resolved
    (resolved,) = monitor.check()
    assert resolved.state == "resolved" and resolved.value == 0.0
    assert [a for _, a in received] == [alert, resolved]


def test_default_rules_and_rule_instances_are_independent(cache: Cache, clock: FakeClock) -> None:
    assert [type(r) for r in Monitor(cache).rules] == [HitRateBelow, LatencyAbove]
    calls = Calls(cache)
    monitor = Monitor(cache, rules=[HitRateBelow(0.5), HitRateBelow(0.9)])
    monitor.check()
    calls.run(hits=70, misses=30)
    clock.advance(60)
    (alert,) = monitor.check()
    assert alert.threshold == 0.9
    calls.run(hits=10, misses=90)
    clock.advance(60)
    (alert,) = monitor.check()
    assert alert.threshold == 0.5  # the 0.9 one is still firing: not repeated


def test_a_whole_day_of_rounds_alerts_only_on_changes(cache: Cache, clock: FakeClock) -> None:
    calls = Calls(cache)
    monitor = Monitor(cache, rules=[HitRateBelow(0.5)])
    states = []
    for minute in range(24 * 60):
        bad = 8 * 60 <= minute < 9 * 60 or 17 * 60 <= minute < 17 * 60 + 5
        calls.run(hits=10 if bad else 90, misses=90 if bad else 10)
        clock.advance(60)
        states += [a.state for a in monitor.check()]
    assert states == ["firing", "resolved", "firing", "resolved"]
    assert len(monitor.window) == 31


def test_trends_classify_improving_degrading_and_flat_series(cache: Cache, clock: FakeClock) -> None:
    calls = Calls(cache)
    monitor = Monitor(cache, rules=[])
    monitor.check()
    assert monitor.trend(calls.name) == "stable"  # no points
    for hits in (10, 20, 30, 40, 50, 60, 70, 80, 90):
        calls.run(hits=hits, misses=100 - hits)
        clock.advance(60)
        monitor.check()
    assert monitor.trend(calls.name) == "improving"
    assert monitor.trend(calls.name, tier="memory") == "improving"
    assert monitor.trend(calls.name, tier="disk") == "stable"
    assert monitor.trends() == {calls.name: "improving", "memory": "improving", "disk": "stable"}
    assert monitor.trend("nobody.calls.this") == "stable"

    for hits in (50, 51, 49, 50, 52, 48, 50, 51, 49, 50) * 4:  # flat, and 40 intervals > 30 read
        calls.run(hits=hits, misses=100 - hits)
        clock.advance(60)
        monitor.check()
    assert monitor.trend(calls.name) == "stable"

    for k in range(30):  # 0.95 down to 0.08: -0.03 per interval, over the 30 read
        calls.run(hits=95 - 3 * k, misses=5 + 3 * k)
        clock.advance(60)
        monitor.check()
    assert monitor.trend(calls.name) == "degrading"
    assert trends.slope(trends.hit_rates(monitor.window, calls.name)) == pytest.approx(-0.03)


def test_trend_method_slope_dead_band_gaps_and_few_points() -> None:
    assert trends.classify([(0, 0.1), (1, 0.9)]) == "stable"  # fewer than 3 points
    assert trends.classify([(0, 0.50), (1, 0.519), (2, 0.538)]) == "stable"  # 0.019: in the band
    assert trends.classify([(0, 0.50), (1, 0.53), (2, 0.56)]) == "improving"
    assert trends.classify([(0, 0.9), (5, 0.6), (10, 0.3)]) == "degrading"  # slope -0.06 over gaps
    assert trends.slope([(0, 1.0), (10, 0.0)]) == pytest.approx(-0.1)


def test_intervals_without_calls_are_skipped_by_trends(cache: Cache, clock: FakeClock) -> None:
    calls = Calls(cache)
    monitor = Monitor(cache, rules=[])
    monitor.check()
    for hits in (10, None, None, 40, None, 70):
        if hits is not None:
            calls.run(hits=hits, misses=100 - hits)
        clock.advance(60)
        monitor.check()
    assert [x for x, _ in trends.hit_rates(monitor.window, calls.name)] == [0, 3, 5]
    assert monitor.trend(calls.name) == "improving"


def test_percentiles_cover_the_window(cache: Cache, clock: FakeClock) -> None:
    @cached(cache=cache, ttl=DAY)
    def slow(i: int) -> int:
        clock.advance(0.2)
        return i

    monitor = Monitor(cache, rules=[])
    assert monitor.percentiles("x") == {
        "hit": {"p50": None, "p95": None, "p99": None},
        "compute": {"p50": None, "p95": None, "p99": None},
    }
    slow(-1)  # before the window: not counted
    monitor.check()
    for i in range(10):
        slow(i)
    monitor.check()
    (name,) = cache.stats().functions
    compute = monitor.percentiles(name)["compute"]
    assert compute["p50"] is not None and 0.2 <= compute["p50"] <= 0.2 * 1.19
    assert (
        monitor.window[-1].functions[name].compute.count - monitor.window[0].functions[name].compute.count
        == 10
    )


def test_start_runs_rounds_in_a_thread_stopped_at_cache_close(clock: FakeClock, disk: DiskTier) -> None:
    cache = Cache([MemoryTier(), disk], clock=clock)
    cache.set("k", b"v" * 1000)
    fired = threading.Event()

    def receiver(sender: Any, alert: Alert) -> None:
        fired.set()

    monitor = Monitor(cache, interval=3600, rules=[SizeAbove(0)])
    with signals.alert.connected_to(receiver):
        assert monitor.start() is monitor and monitor.running
        thread = monitor._thread
        assert thread is not None and thread.daemon and thread.name == "cacheplug-monitor"
        assert monitor.start()._thread is thread  # starting again: the same thread
        assert fired.wait(10)  # its first round ran at once, in the thread
    cache.close()  # stops and joins the monitor
    assert not thread.is_alive() and not monitor.running
    monitor.stop()  # idempotent
    with pytest.raises(ConfigurationError, match="closed"):
        monitor.start()
    with pytest.raises(ConfigurationError, match="closed"):
        monitor.check()


def test_stop_and_start_again(cache: Cache) -> None:
    monitor = Monitor(cache, interval=3600, rules=[])
    monitor.start()
    first = monitor._thread
    monitor.stop()
    assert first is not None and not first.is_alive() and not monitor.running
    monitor.start()
    assert monitor.running and monitor._thread is not first
    monitor.stop()
    assert not monitor.running


def test_a_failing_receiver_does_not_break_the_round(cache: Cache, caplog: pytest.LogCaptureFixture) -> None:
    cache.set("k", b"v")

    def broken(sender: Any, alert: Alert) -> None:
        raise RuntimeError("receiver bug")

    with signals.alert.connected_to(broken), caplog.at_level(logging.ERROR, logger="cacheplug"):
        (alert,) = Monitor(cache, rules=[SizeAbove(0)]).check()
    assert alert.state == "firing" and "receiver" in caplog.text


def test_the_window_is_published_beside_the_disk_tier(cache: Cache, disk_dir: Path) -> None:
    Calls(cache, warm=5)
    monitor = Monitor(cache, interval=30, rules=[])
    assert monitor.directory == str(disk_dir)
    monitor.check()
    monitor.check()
    files = list((disk_dir / "stats").glob("*.json"))
    assert [f.name for f in files] == [f"{publish._own_name()}"]
    body = json.loads(files[0].read_text())
    assert body["pid"] == os.getpid() and body["interval"] == 30 and len(body["snapshots"]) == 2
    (mine,) = publish.collect(disk_dir)
    assert mine.latest.functions.keys() == cache.stats().functions.keys()
    monitor.stop()  # a stopped monitor removes its file
    assert list((disk_dir / "stats").glob("*.json")) == []


def test_two_monitored_caches_of_one_process_publish_apart(
    clock: FakeClock, disk: DiskTier, disk_dir: Path
) -> None:
    """Two namespaces on one directory used to overwrite one file: one cache's figures were lost."""
    with (
        Cache([MemoryTier(), disk], clock=clock, namespace="orders") as orders,
        Cache([MemoryTier(), disk], clock=clock, namespace="users") as users,
    ):
        orders.set("k", 1)
        users.set("k", 2)
        for made in (orders, users):
            Monitor(made, interval=30, rules=[]).check()
        assert sorted(p.namespace for p in [f.latest for f in publish.collect(disk_dir)]) == [
            "orders",
            "users",
        ]


def test_a_publishing_fault_is_counted_and_logged_never_raised(
    cache: Cache, disk_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (disk_dir / "stats").write_text("a file where the folder goes")
    monitor = Monitor(cache, rules=[])
    with caplog.at_level(logging.WARNING, logger="cacheplug"):
        assert monitor.check() == []
        assert monitor.check() == []
    assert monitor.publish_faults == 2 and "could not publish" in caplog.text


def test_a_memory_only_cache_is_monitored_without_publishing(memory_cache: Cache) -> None:
    monitor = Monitor(memory_cache, rules=[])
    monitor.check()
    assert monitor.directory is None and monitor.publish_faults == 0
    others, own = host_snapshots(memory_cache)
    assert others == [] and len(own) == 1


_CHILD = """
import sys
from cacheplug import Cache, DiskTier, MemoryTier, Monitor, SizeAbove, cached
cache = Cache([MemoryTier(), DiskTier(sys.argv[1])])

@cached(cache=cache)
def child_load(i):
    return i

for i in range(7):
    child_load(i % 3)
Monitor(cache, interval=60, rules=[SizeAbove(1)]).check()  # fires: the disk holds entries
print("published", flush=True)
sys.stdin.readline()
"""


def test_reports_cover_another_process_until_it_is_gone(cache: Cache, disk_dir: Path) -> None:
    Calls(cache, warm=5)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(disk_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "published\n"
        others, own = host_snapshots(cache)
        assert {s.pid for s in others} == {child.pid}
        (theirs,) = others
        (child_name,) = theirs.functions
        assert child_name.endswith("child_load") and theirs.functions[child_name].calls == 7
        assert theirs.functions[child_name].hits == 4
        assert own[-1].pid == os.getpid() and child_name not in own[-1].functions
        report = cacheplug.performance_report(cache)
        assert report["pids"] == sorted([child.pid, os.getpid()])
        assert report["functions"][child_name]["calls"] == 7
        assert report["functions"][Calls.name_in(cache)]["calls"] == 5
        # Its monitor's alert too: a report from any process shows every process's alerts.
        (alert,) = report["alerts"]
        assert alert["rule"] == "SizeAbove" and alert["state"] == "firing" and alert["pid"] == child.pid
    finally:
        child.communicate("exit\n", timeout=60)
    assert child.returncode == 0
    # Its process is gone: its snapshots age out, and its file is removed.
    others, _ = host_snapshots(cache)
    assert others == [] and list((disk_dir / "stats").glob("*.json")) == []


def test_start_monitoring_watches_the_default_cache() -> None:
    monitor = cacheplug.start_monitoring(interval=3600, rules=[])
    try:
        assert monitor.cache is cacheplug.get_cache() and monitor.running and monitor.interval == 3600
    finally:
        monitor.stop()
    assert not monitor.running


def test_report_has_the_window_alerts_and_trends(cache: Cache, clock: FakeClock) -> None:
    calls = Calls(cache)
    monitor = Monitor(cache, rules=[HitRateBelow(0.5)])
    monitor.check()
    for hits in (10, 40, 70, 100):
        calls.run(hits=hits, misses=100 - hits)
        clock.advance(60)
        monitor.check()
    report = monitor.report()
    assert report["snapshots"] == 5 and report["pids"] == [os.getpid()]
    assert report["functions"][calls.name]["trend"] == "improving"
    assert report["tiers"]["memory"]["trend"] == "improving"  # the share of calls memory answered
    assert report["tiers"]["disk"]["trend"] == "stable"
    assert [(a["rule"], a["state"]) for a in report["alerts"]] == [
        ("HitRateBelow", "firing"),
        ("HitRateBelow", "resolved"),
    ]
    points = report["functions"][calls.name]["series"][0]["points"]
    assert [p["hit_rate"] for p in points] == [0.1, 0.4, 0.7, 1.0]  # per interval
    json.dumps(report)
    host = cacheplug.performance_report(cache)  # no other process: this one, published + fresh
    assert host["pids"] == [os.getpid()] and host["functions"][calls.name]["trend"] == "improving"


def test_performance_report_of_the_default_cache() -> None:
    Calls(cacheplug.get_cache(), warm=3)
    report = cacheplug.performance_report()
    assert report["totals"]["calls"] == 3 and report["pids"] == [os.getpid()]


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"cache": "default"}, "takes a cacheplug.Cache"),
        ({"interval": 0}, "finite number > 0"),
        ({"interval": -5}, "finite number > 0"),
        ({"interval": float("nan")}, "finite number > 0"),
        ({"interval": True}, "finite number > 0"),
        ({"interval": "60"}, "finite number > 0"),
        ({"rules": "HitRateBelow"}, "list of rules"),
        ({"rules": HitRateBelow(0.5)}, "list of rules"),
        ({"rules": [object()]}, "is not a rule"),
        ({"clock": 5}, "callable"),
        ({"window": 1}, "int >= 2"),
        ({"window": 3.5}, "int >= 2"),
    ],
)
def test_garbage_monitor_arguments_are_refused_clearly(
    cache: Cache, arguments: dict[str, Any], says: str
) -> None:
    given = {"cache": cache, **arguments}
    with pytest.raises(ConfigurationError, match=says):
        Monitor(**given)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: HitRateBelow(1.5), "rate from 0 to 1"),
        (lambda: HitRateBelow(-0.1), "finite number >= 0"),
        (lambda: HitRateBelow("0.5"), "finite number >= 0"),
        (lambda: HitRateBelow(0.5, min_calls=0), "int >= 1"),
        (lambda: LatencyAbove(ms=0), r"LatencyAbove\(ms=...\) must be a finite number > 0"),
        (lambda: LatencyAbove(ms=float("inf")), "finite"),
        (lambda: SizeAbove(-1), "int >= 0"),
        (lambda: SizeAbove(1.5), "int >= 0"),
        (lambda: InvalidationRateAbove("often"), "finite number >= 0"),
    ],
)
def test_garbage_rule_arguments_are_refused_clearly(make: Any, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        make()


def test_a_closed_cache_is_refused(clock: FakeClock) -> None:
    cache = Cache([MemoryTier()], clock=clock)
    cache.close()
    with pytest.raises(ConfigurationError, match="closed cache"):
        Monitor(cache)


def test_alerts_are_json_ready(cache: Cache) -> None:
    cache.set("k", b"v")
    (alert,) = Monitor(cache, rules=[SizeAbove(0)]).check()
    data = json.loads(json.dumps(alert.to_dict()))
    assert data["rule"] == "SizeAbove" and data["reclaimed"]["entries"] == 0
