"""Proxy tiers over real tiers: pass-through, capabilities, fault tolerance, the circuit breaker.

The tiers are real ``DiskTier`` instances on a temp directory that fail for real: down (a
file where the directory should be), or with a store whose database went away (SQLite
errors). Time is an injected clock.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cacheplug import (
    MISS,
    Cache,
    CircuitBreaker,
    ConfigurationError,
    DiskTier,
    Entry,
    FaultTolerant,
    MemoryTier,
    ProxyTier,
    SerializationError,
    Tier,
    TierUnavailable,
    cached,
)
from cacheplug.faults import FAULT_LOG_INTERVAL, FaultLedger
from cacheplug.tiers import AsyncTier, CountsDamage, HasVersions, KeyListing, Measured, SelfChecking
from cacheplug.tiers.capabilities import OPTIONAL_MEMBERS
from tests.conftest import FakeClock
from tests.tier_doubles import BrokenTier, CountingTier, FailingStore, Gate, GatedTier, TierOnly

KEY = "|k:key"
CAPABILITIES = (HasVersions, SelfChecking, KeyListing, CountsDamage, Measured, AsyncTier)


def _entry(value: Any) -> Entry:
    return Entry(value, 100.0, None, 0)


class AsyncDiskTier(DiskTier):
    """A disk tier with async methods (run in a worker thread), as a networked tier has."""

    async def aget(self, key: str) -> Entry | Any:
        return await asyncio.to_thread(self.get, key)

    async def aset(self, key: str, entry: Entry, expire: float | None = None) -> None:
        await asyncio.to_thread(self.set, key, entry, expire)

    async def adelete(self, key: str) -> bool:
        return await asyncio.to_thread(self.delete, key)


def _static(obj: object, name: str) -> bool:
    try:
        inspect.getattr_static(obj, name)
    except AttributeError:
        return False
    return True


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[DiskTier]:
    tier = DiskTier(tmp_path / "disk")
    yield tier
    tier.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


@pytest.fixture
def down(tmp_path: Path, clock: FakeClock) -> Iterator[DiskTier]:
    """A disk tier that is down (its directory cannot be created) until ``tmp_path/blocker`` goes."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the folder should be")
    tier = DiskTier(blocker / "tier", monotonic=clock)
    assert tier.down_reason is not None
    yield tier
    tier.close()


def _heal(tmp_path: Path, clock: FakeClock) -> None:
    """Let the ``down`` tier open: remove the blocker, and pass its retry interval."""
    blocker = tmp_path / "blocker"
    blocker.unlink()
    blocker.mkdir(mode=0o700)
    clock.advance(10.0)


# -- the proxy base ----------------------------------------------------------------------


def test_a_proxy_passes_every_operation_to_its_tier(disk: DiskTier) -> None:
    proxy = ProxyTier(disk)
    assert (proxy.name, proxy.shared) == ("disk", True)
    proxy.set(KEY, _entry("v"))
    assert disk.get(KEY).value == "v"
    assert proxy.get(KEY).value == "v"
    assert list(proxy.keys()) == [KEY]
    assert proxy.delete(KEY) is True and proxy.delete(KEY) is False
    disk.set(KEY, _entry("again"))
    proxy.clear()
    assert disk.get(KEY) is MISS
    assert proxy.versions() is disk.versions()
    assert proxy.check() is False


def test_a_proxy_has_exactly_the_capabilities_of_its_tier(disk: DiskTier, tmp_path: Path) -> None:
    ledger = FaultLedger("ns")
    async_disk = AsyncDiskTier(tmp_path / "async")
    try:
        for tier in (MemoryTier(), disk, async_disk):
            for proxy in (ProxyTier(tier), FaultTolerant(CircuitBreaker(tier), ledger), CountingTier(tier)):
                assert isinstance(proxy, Tier)
                for member in OPTIONAL_MEMBERS:
                    assert hasattr(proxy, member) == hasattr(tier, member), (proxy, member)
                    # Statically too: isinstance() on Python >= 3.12 looks members up this way.
                    assert _static(proxy, member) == hasattr(tier, member), (proxy, member)
                for capability in CAPABILITIES:
                    assert isinstance(proxy, capability) == isinstance(tier, capability), (proxy, capability)
    finally:
        async_disk.close()
    assert [c for c in CAPABILITIES if isinstance(MemoryTier(), c)] == [Measured]
    assert [c for c in CAPABILITIES if isinstance(disk, c)] == [
        HasVersions,
        SelfChecking,
        KeyListing,
        CountsDamage,
        Measured,
    ]


def test_the_optional_members_are_those_of_the_capability_protocols() -> None:
    declared = {
        name
        for protocol in CAPABILITIES
        for name in vars(protocol)
        if not name.startswith("_") and name not in {"register"}
    }
    assert declared == set(OPTIONAL_MEMBERS)


def test_a_proxy_withholds_the_capabilities_it_names(disk: DiskTier) -> None:
    only = TierOnly(disk)
    assert not any(hasattr(only, member) for member in OPTIONAL_MEMBERS)
    assert not isinstance(only, HasVersions) and isinstance(only, Tier)
    only.set(KEY, _entry(1))
    assert only.get(KEY).value == 1


def test_the_damage_counters_are_the_wrapped_tiers_live_counts(disk: DiskTier) -> None:
    proxy = FaultTolerant(CircuitBreaker(disk), FaultLedger("ns"))
    assert (proxy.corrupt, proxy.tampered, proxy.foreign) == (0, 0, 0)
    disk._dc.set(KEY, b"not an entry")  # a row that does not read back
    assert proxy.get(KEY) is MISS
    assert proxy.corrupt == disk.corrupt == 1


def test_a_proxy_refuses_what_is_not_a_tier() -> None:
    with pytest.raises(ConfigurationError, match="wraps a tier"):
        ProxyTier(object())  # type: ignore[arg-type]


def test_proxies_stack_and_each_sees_the_calls(disk: DiskTier) -> None:
    counting = CountingTier(disk)
    stack = FaultTolerant(CircuitBreaker(counting), FaultLedger("ns"))
    stack.set(KEY, _entry(1))
    assert stack.get(KEY).value == 1
    assert list(stack.keys()) == [KEY]
    assert counting.calls == {"get": 1, "set": 1, "delete": 0, "clear": 0, "keys": 1}


# -- FaultTolerant -----------------------------------------------------------------------


def test_faults_of_a_failing_database_are_counted_and_answered_as_nothing_there(disk: DiskTier) -> None:
    ledger = FaultLedger("ns")
    proxy = FaultTolerant(disk, ledger)
    proxy.set(KEY, _entry("kept"))
    real, disk._dc = disk._dc, FailingStore()
    try:
        assert proxy.get(KEY) is MISS
        assert proxy.set(KEY, _entry("lost")) is None
        assert proxy.delete(KEY) is False
        assert list(proxy.keys()) == []
    finally:
        disk._dc = real
    assert ledger.counts() == {"disk.get": 1, "disk.set": 1, "disk.delete": 1, "disk.keys": 1}
    assert proxy.get(KEY).value == "kept"


def test_a_down_tier_is_served_as_misses(down: DiskTier) -> None:
    ledger = FaultLedger("ns")
    proxy = FaultTolerant(down, ledger)
    assert proxy.get(KEY) is MISS
    proxy.set(KEY, _entry(1))
    assert ledger.counts() == {"disk.get": 1, "disk.set": 1}


def test_a_failing_check_is_counted_and_answered_false(disk: DiskTier) -> None:
    ledger = FaultLedger("ns")
    proxy = FaultTolerant(BrokenTier(disk, ops={"check"}), ledger)
    assert proxy.check() is False
    assert ledger.counts() == {"disk.check": 1}


def test_a_value_that_cannot_be_serialized_is_not_a_fault(disk: DiskTier) -> None:
    ledger = FaultLedger("ns")
    with pytest.raises(SerializationError):
        FaultTolerant(disk, ledger).set(KEY, _entry(threading.Lock()))
    assert ledger.counts() == {}


def test_clear_fails_loudly(down: DiskTier) -> None:
    with pytest.raises(TierUnavailable):
        FaultTolerant(down, FaultLedger("ns")).clear()


def test_async_faults_are_answered_and_counted_as_their_sync_twins(tmp_path: Path) -> None:
    tier = AsyncDiskTier(tmp_path / "async")
    ledger = FaultLedger("ns")
    proxy = FaultTolerant(tier, ledger)

    async def scenario() -> None:
        await proxy.aset(KEY, _entry("v"))
        assert (await proxy.aget(KEY)).value == "v"
        real, tier._dc = tier._dc, FailingStore()
        try:
            assert await proxy.aget(KEY) is MISS
            assert await proxy.aset(KEY, _entry("w")) is None
            assert await proxy.adelete(KEY) is False
        finally:
            tier._dc = real
        with pytest.raises(SerializationError):
            await proxy.aset(KEY, _entry(threading.Lock()))

    asyncio.run(scenario())
    tier.close()
    assert ledger.counts() == {"disk.get": 1, "disk.set": 1, "disk.delete": 1}


# -- the fault ledger --------------------------------------------------------------------


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "failed in cache" in r.getMessage()]


def test_the_ledger_logs_each_kind_once_per_interval(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    ledger = FaultLedger("shop", clock=clock)
    with caplog.at_level(logging.WARNING, logger="cacheplug"):
        for _ in range(20):
            ledger.report("disk", "get", OSError("gone"))
        assert len(_lines(caplog)) == 1
        ledger.report("disk", "get", TimeoutError("slow"))  # another exception type
        ledger.report("disk", "set", OSError("gone"))  # another operation
        ledger.report("redis", "get", OSError("gone"))  # another tier
        assert len(_lines(caplog)) == 4
        clock.advance(FAULT_LOG_INTERVAL - 0.1)
        ledger.report("disk", "get", OSError("gone"))
        assert len(_lines(caplog)) == 4
        clock.advance(0.1)
        ledger.report("disk", "get", OSError("gone"))
        assert len(_lines(caplog)) == 5
    assert ledger.counts() == {"disk.get": 23, "disk.set": 1, "redis.get": 1}
    first = caplog.records[0]
    assert first.levelno == logging.WARNING and first.name == "cacheplug"
    assert first.getMessage() == (
        "cacheplug: disk.get failed in cache 'shop' (OSError('gone')); serving from another tier or "
        "computing (logged once per 10 s)"
    )


def test_the_ledger_counts_exactly_under_threads() -> None:
    ledger = FaultLedger("ns")
    start = threading.Barrier(8)

    def report() -> None:
        start.wait()
        for _ in range(2000):
            ledger.report("disk", "get", OSError("gone"))

    threads = [threading.Thread(target=report) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.counts() == {"disk.get": 16_000}


# -- the circuit breaker -----------------------------------------------------------------


def test_the_breaker_opens_after_consecutive_failures_and_stops_calling(
    down: DiskTier, clock: FakeClock
) -> None:
    counting = CountingTier(down)
    breaker = CircuitBreaker(counting, failures=3, reset_after=30.0, clock=clock)
    for _ in range(3):
        with pytest.raises(TierUnavailable, match="retries every 10 s"):  # the tier's own error
            breaker.get(KEY)
    assert breaker.state == "open" and breaker.opened == 1
    for op in (lambda: breaker.get(KEY), lambda: breaker.set(KEY, _entry(1)), breaker.keys, breaker.clear):
        with pytest.raises(TierUnavailable, match="circuit breaker refuses calls for 30 s"):
            op()
    assert counting.calls == {"get": 3, "set": 0, "delete": 0, "clear": 0, "keys": 0}


def test_after_reset_after_one_trial_call_closes_it_on_success(
    down: DiskTier, clock: FakeClock, tmp_path: Path
) -> None:
    counting = CountingTier(down)
    breaker = CircuitBreaker(counting, failures=2, reset_after=30.0, clock=clock)
    for _ in range(2):
        with pytest.raises(TierUnavailable):
            breaker.get(KEY)
    _heal(tmp_path, clock)  # 10 s later: still open
    assert breaker.state == "open"
    clock.advance(20.0)
    assert breaker.state == "half-open"
    assert breaker.get(KEY) is MISS  # the trial reaches the (healed) tier
    assert breaker.state == "closed"
    breaker.set(KEY, _entry("back"))
    assert breaker.get(KEY).value == "back"
    assert counting.calls["get"] == 4


def test_a_failed_trial_opens_it_again_for_a_full_period(down: DiskTier, clock: FakeClock) -> None:
    counting = CountingTier(down)
    breaker = CircuitBreaker(counting, failures=2, reset_after=30.0, clock=clock)
    for _ in range(2):
        with pytest.raises(TierUnavailable):
            breaker.get(KEY)
    clock.advance(30.0)
    with pytest.raises(TierUnavailable, match="retries every 10 s"):
        breaker.get(KEY)  # the trial: the tier is still down
    assert breaker.state == "open" and counting.calls["get"] == 3
    clock.advance(29.9)
    with pytest.raises(TierUnavailable, match="circuit breaker"):
        breaker.get(KEY)
    clock.advance(0.1)
    with pytest.raises(TierUnavailable, match="retries every 10 s"):
        breaker.get(KEY)
    assert counting.calls["get"] == 4 and breaker.opened == 1


def test_a_success_resets_the_count_of_consecutive_failures(disk: DiskTier, clock: FakeClock) -> None:
    breaker = CircuitBreaker(disk, failures=3, clock=clock)
    real = disk._dc
    for _ in range(5):
        disk._dc = FailingStore()
        for _ in range(2):
            with pytest.raises(Exception, match="disk I/O error"):
                breaker.get(KEY)
        disk._dc = real
        assert breaker.get(KEY) is MISS
    assert breaker.state == "closed" and breaker.opened == 0


def test_only_one_trial_call_goes_through_while_half_open(
    down: DiskTier, clock: FakeClock, tmp_path: Path
) -> None:
    gate = Gate()
    breaker = CircuitBreaker(GatedTier(down, gate, ops=("get",)), failures=1, reset_after=30.0, clock=clock)
    with pytest.raises(TierUnavailable):
        breaker.get(KEY)
    _heal(tmp_path, clock)
    clock.advance(20.0)
    gate.arm(("get", KEY))
    results: list[Any] = []
    trial = threading.Thread(target=lambda: results.append(breaker.get(KEY)))
    trial.start()
    assert gate.reached.wait(30)
    with pytest.raises(TierUnavailable, match="circuit breaker"):
        breaker.get(KEY)  # while the trial is in flight
    gate.release.set()
    trial.join(30)
    assert results == [MISS] and breaker.state == "closed"


def test_a_value_that_cannot_be_serialized_does_not_trip_the_breaker(
    disk: DiskTier, clock: FakeClock
) -> None:
    breaker = CircuitBreaker(disk, failures=1, clock=clock)
    for _ in range(3):
        with pytest.raises(SerializationError):
            breaker.set(KEY, _entry(threading.Lock()))
    assert breaker.state == "closed"


def test_async_calls_go_through_the_breaker(tmp_path: Path, clock: FakeClock) -> None:
    tier = AsyncDiskTier(tmp_path / "async")
    breaker = CircuitBreaker(tier, failures=2, reset_after=30.0, clock=clock)

    async def scenario() -> None:
        await breaker.aset(KEY, _entry("v"))
        real, tier._dc = tier._dc, FailingStore()
        for _ in range(2):
            with pytest.raises(Exception, match="disk I/O error"):
                await breaker.aget(KEY)
        tier._dc = real
        with pytest.raises(TierUnavailable, match="circuit breaker"):
            await breaker.adelete(KEY)
        clock.advance(30.0)
        assert (await breaker.aget(KEY)).value == "v"

    asyncio.run(scenario())
    tier.close()
    assert breaker.state == "closed"


@pytest.mark.parametrize(
    "bad", [{"failures": 0}, {"failures": 2.5}, {"reset_after": 0}, {"reset_after": "1"}]
)
def test_the_breaker_refuses_bad_settings(disk: DiskTier, bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        CircuitBreaker(disk, **bad)


def test_a_cache_over_a_broken_breaker_stack_is_served(
    disk: DiskTier, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = FaultLedger("ns", clock=clock)
    counting = CountingTier(disk)
    stack = FaultTolerant(CircuitBreaker(counting, failures=2, clock=clock), ledger)
    calls: list[int] = []
    with caplog.at_level(logging.WARNING, logger="cacheplug"), Cache([MemoryTier(), stack]) as cache:

        @cached(cache=cache)
        def triple(x: int) -> int:
            calls.append(x)
            return 3 * x

        real, disk._dc = disk._dc, FailingStore()
        try:
            assert [triple(i) for i in range(10)] == [3 * i for i in range(10)]
        finally:
            disk._dc = real
        assert calls == list(range(10))
    assert counting.calls["get"] + counting.calls["set"] == 2  # then the breaker stopped calling
    assert sum(ledger.counts().values()) == 20
    assert len(_lines(caplog)) == 4  # get and set, each failing (OperationalError) then refused
