"""Freshness policies (issue 9): ``stale_ttl=``, ``stale_if_error=``, ``early_refresh=``.

Time is the fake clock's (``Cache(clock=...)``: expiry, windows and the computations'
durations δ alike); the XFetch draw is a seeded ``random.Random`` (``Cache(random=...)``).
Background refreshes run on the cache's real pool threads (or as tasks of the running
loop); a test drains them with ``cache.background.wait()`` where it needs them done, and
holds them with a gate where it needs them running.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import json
import pickle
import random
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cacheplug
from cacheplug import Cache, ConfigurationError, DiskTier, Entry, MemoryTier, cached
from cacheplug.codec import PickleCodec
from cacheplug.envelope import PolicyEntry
from tests.conftest import FakeClock
from tests.test_stampede import Counter, watching_waits

TTL = 10.0
JOIN = 30.0  # seconds a thread may take (never reached when correct)


class Down(Exception):
    """What a failing computation raises."""


@pytest.fixture
def cache(clock: FakeClock) -> Iterator[Cache]:
    with Cache([MemoryTier()], clock=clock, random=random.Random(2015).random) as made:
        yield made


def _name(func: Any) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# -- the options, checked where they are given -------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stale_ttl": -1}, "stale_ttl"),
        ({"stale_ttl": "60"}, "stale_ttl"),
        ({"stale_ttl": True}, "stale_ttl"),
        ({"stale_ttl": float("nan")}, "stale_ttl"),
        ({"stale_if_error": float("inf")}, "stale_if_error"),
        ({"early_refresh": -0.5}, "early_refresh"),
        ({"early_refresh": "yes"}, "early_refresh"),
        ({"early_refresh": float("inf")}, "early_refresh"),
    ],
)
def test_bad_options_fail_at_decoration_time(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        cached(ttl=TTL, **options)


def test_a_ttl_of_zero_stores_nothing_to_serve_stale(cache: Cache) -> None:
    with pytest.raises(ConfigurationError, match="ttl=0"):
        cached(ttl=0, stale_ttl=5)
    with pytest.raises(ConfigurationError, match="ttl=0"):
        cache.get_or_compute("k", lambda: 1, ttl=0, early_refresh=True)
    with pytest.raises(ConfigurationError, match="stale_if_error"):
        cache.get_or_compute("k", lambda: 1, ttl=5, stale_if_error=-2)


def test_options_take_timedeltas_and_off_values(cache: Cache, clock: FakeClock) -> None:
    @cached(cache=cache, ttl=TTL, stale_ttl=datetime.timedelta(seconds=30), early_refresh=0)
    def f(x: int) -> int:
        return x

    assert f(1) == 1
    binding = f._self_core.bound[1]
    policy = binding.policy
    assert policy is not None and policy.stale_ttl == 30.0 and policy.beta == 0.0
    entry = binding.shelf[(1,)]
    assert entry.stale_until == entry.expires + 30.0 and entry.deadline == entry.expires

    @cached(cache=cache, ttl=TTL, stale_ttl=0, stale_if_error=None, early_refresh=False)
    def g(x: int) -> int:
        return x

    assert g._self_core.freshness is None  # all off: the function is a plain one


# -- early_refresh: XFetch on a hot key --------------------------------------------------------


READS_PER_SECOND = 400
COMPUTE = 0.05  # δ: the computation advances the fake clock this much
HOT_TTL = 2.0
PERIODS = 1_000


def test_a_hot_key_under_early_refresh_never_waits(clock: FakeClock) -> None:
    """400 reads per second over 1,000 TTL periods; every recomputation is a background one.

    Expected XFetch lead (β = 1): about δ·(ln(δ·rate) + 0.58) ≈ 0.18 s before expiry, so a
    period of 2 s sees about 1.07 recomputations (at ttl=1 s it would be about 1.15).
    """
    computed: list[tuple[float, float, bool]] = []  # (start, end, on the caller's thread)
    with Cache([MemoryTier()], clock=clock, random=random.Random(2015).random) as cache:

        @cached(cache=cache, ttl=HOT_TTL, early_refresh=True)
        def hot(key: int) -> int:
            start = clock()
            clock.advance(COMPUTE)
            computed.append((start, clock(), _on_main_thread()))
            return len(computed)

        assert hot(1) == 1  # the warm-up: the one synchronous computation
        began = clock()
        pool = cache.background
        reads = 0
        values = set()
        while clock() < began + PERIODS * HOT_TTL:
            clock.advance(1 / READS_PER_SECOND)
            values.add(hot(1))
            reads += 1
            if pool.pending:
                assert pool.wait(JOIN)  # the refresh runs on the pool's thread, then lands
        info = hot.cache_info()
        stats = cache.stats().functions[_name(hot)]

    assert info.misses == 1 and info.hits == reads, info  # 0 synchronous waits after warm-up
    assert [on_caller for *_, on_caller in computed] == [True] + [False] * (len(computed) - 1)
    assert stats.refreshes == len(computed) - 1 and stats.refresh_errors == 0
    assert values == set(range(1, len(computed) + 1))  # every refreshed value was served
    # Never two recomputations within one entry's lifetime: each entry lives from the end of
    # its computation for HOT_TTL; at most one recomputation starts in that time.
    starts = [start for start, _, _ in computed]
    for _, created, _ in computed:
        assert sum(created <= s < created + HOT_TTL for s in starts) <= 1
    periods = (clock() - computed[0][1]) / HOT_TTL
    assert (len(computed) - 1) / periods <= 1.1, (len(computed), periods)


def test_a_hit_far_from_expiry_draws_no_random_number(clock: FakeClock) -> None:
    draws: list[float] = []
    source = random.Random(1)

    def counting() -> float:
        draws.append(clock())
        return source.random()

    with Cache([MemoryTier()], clock=clock, random=counting) as cache:

        @cached(cache=cache, ttl=TTL, early_refresh=2.0)
        def f(x: int) -> int:
            clock.advance(0.1)  # δ = 0.1 s, β = 2: refresh_from = expiry - 2 s
            return x

        f(1)
        entry = f._self_core.bound[1].shelf[(1,)]
        assert entry.deadline == pytest.approx(entry.expires - 2.0)
        for _ in range(70):
            clock.advance(0.1)  # up to 7 s after creation: before refresh_from (8 s)
            assert f(1) == 1
        assert draws == []
        clock.advance(1.5)  # past refresh_from: now each hit draws
        assert f(1) == 1
        assert len(draws) == 1 and draws[0] >= entry.deadline
        cache.background.wait(JOIN)


def test_early_refresh_through_get_or_compute(cache: Cache, clock: FakeClock) -> None:
    computed: list[bool] = []

    def compute() -> str:
        clock.advance(0.2)
        computed.append(_on_main_thread())
        return f"v{len(computed)}"

    assert cache.get_or_compute("report", compute, ttl=TTL, early_refresh=True) == "v1"
    clock.advance(TTL - 0.01)  # 10 ms before expiry: the draw is all but certain to say now
    assert cache.get_or_compute("report", compute, ttl=TTL, early_refresh=True) == "v1"
    assert cache.background.wait(JOIN)
    assert computed == [True, False]
    assert cache.get_or_compute("report", compute, ttl=TTL, early_refresh=True) == "v2"


# -- stale_ttl: serve stale while one refresh runs -----------------------------------------------


class Gate:
    """Holds the background refreshes of a test until it opens the gate."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()

    def hold(self) -> None:
        if not _on_main_thread():
            self.entered.set()
            assert self.open.wait(JOIN), "the test never opened the gate"


def test_callers_during_a_refresh_get_the_stale_value_without_waiting(cache: Cache, clock: FakeClock) -> None:
    gate = Gate()
    computed: list[bool] = []

    @cached(cache=cache, ttl=TTL, stale_ttl=30)
    def page(n: int) -> str:
        gate.hold()
        computed.append(_on_main_thread())
        return f"page {n} v{len(computed)}"

    assert page(1) == "page 1 v1"
    clock.advance(TTL + 1)  # expired, within stale_ttl
    assert page(1) == "page 1 v1"  # served stale; the refresh starts, held by the gate
    assert gate.entered.wait(JOIN)

    served: list[str] = []

    def reader() -> None:
        for _ in range(100):
            served.append(page(1))

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN)
    # The refresh is still held: every reader finished without waiting for it.
    assert not any(t.is_alive() for t in threads) and not gate.open.is_set()
    assert served == ["page 1 v1"] * 800
    assert computed == [True]  # the held refresh has not finished; nobody else computed
    gate.open.set()
    assert cache.background.wait(JOIN)
    assert computed == [True, False]
    assert page(1) == "page 1 v2"
    stats = cache.stats().functions[_name(page)]
    assert (stats.hits, stats.misses, stats.stale, stats.errors) == (1, 1, 801, 0)
    assert stats.calls == 803 and stats.refreshes == 1


def test_after_an_invalidation_the_stale_value_is_never_served(cache: Cache, clock: FakeClock) -> None:
    computed: list[bool] = []

    @cached(cache=cache, ttl=TTL, tags=["page:{n}"], stale_ttl=60, stale_if_error=60)
    def page(n: int) -> str:
        computed.append(_on_main_thread())
        return f"v{len(computed)}"

    assert page(1) == "v1"
    clock.advance(TTL + 1)
    cache.invalidate(tags=["page:1"])
    assert page(1) == "v2"  # computed now, by the caller: the stale v1 is not served
    assert computed == [True, True]
    # And with the function's own invalidate() (the key dropped in every tier).
    clock.advance(TTL + 1)
    page.invalidate(1)
    assert page(1) == "v3" and computed == [True, True, True]


def test_a_background_refresh_started_before_an_invalidation_stores_nothing(
    cache: Cache, clock: FakeClock
) -> None:
    gate = Gate()
    computed: list[bool] = []

    @cached(cache=cache, ttl=TTL, tags=["page:{n}"], stale_ttl=30)
    def page(n: int) -> str:
        gate.hold()
        computed.append(_on_main_thread())
        return f"v{len(computed)}"

    assert page(1) == "v1"
    clock.advance(TTL + 1)
    assert page(1) == "v1"  # stale; its refresh starts and waits at the gate
    assert gate.entered.wait(JOIN)
    cache.invalidate(tags=["page:1"])  # lands while the refresh computes
    gate.open.set()
    assert cache.background.wait(JOIN)
    assert computed == [True, False]  # the refresh did compute...
    assert cache.stats().stale_sets == 1  # ...and its value, older than the invalidation, was refused
    assert page(1) == "v3"  # neither the stale v1 nor the refresh's v2
    assert computed == [True, False, True]


def test_a_failing_background_refresh_is_counted_and_retried_later(cache: Cache, clock: FakeClock) -> None:
    attempts: list[float] = []

    @cached(cache=cache, ttl=TTL, stale_ttl=5)  # retried at most every min(1 s, 5 s / 10)
    def feed(n: int) -> str:
        if attempts or not _on_main_thread():
            attempts.append(clock())
            raise Down("backend down")
        attempts.append(clock())
        return "v1"

    assert feed(1) == "v1"
    clock.advance(TTL + 0.01)
    for _ in range(20):  # 2 s of reads every 0.1 s: stale, one refresh at a time
        assert feed(1) == "v1"
        assert cache.background.wait(JOIN)
        clock.advance(0.1)
    refreshes = attempts[1:]
    assert len(refreshes) == 4  # at +0.01 s, then 0.5 s after each failure
    assert all(b - a >= 0.5 for a, b in itertools.pairwise(refreshes))
    stats = cache.stats()
    assert stats.refreshes == stats.refresh_errors == 4
    assert stats.functions[_name(feed)].stale == 20
    clock.advance(5)  # past stale_ttl: the caller computes, and its error is the caller's
    with pytest.raises(Down):
        feed(1)


# -- stale_if_error: the last good value while the computation raises ---------------------------


def test_stale_if_error_serves_the_last_value_until_the_window_ends_then_raises(
    cache: Cache, clock: FakeClock
) -> None:
    attempts: list[float] = []
    failing = threading.Event()
    window = 4.4  # retried at most every min(1 s, 0.44 s)

    @cached(cache=cache, ttl=TTL, stale_if_error=window)
    def rates(currency: str) -> dict[str, float]:
        attempts.append(clock())
        if failing.is_set():
            raise Down("rates service down")
        return {"EUR": 1.0}

    assert rates("EUR") == {"EUR": 1.0}
    expiry = clock() + TTL
    failing.set()
    clock.advance(TTL + 0.01)
    served = 0
    while clock() < expiry + window:
        assert rates("EUR") == {"EUR": 1.0}  # the caller waited for the attempt, then got the stale value
        served += 1
        clock.advance(0.1)
    tries = attempts[1:]
    assert served == 44
    # An attempt at the first call after expiry, then one 0.44 s after each failure: the
    # calls at +0.01, +0.51, +1.01, ..., +4.01 s (every fifth call), never on every call.
    assert tries == pytest.approx([expiry + 0.01 + 0.5 * i for i in range(9)])
    with pytest.raises(Down):
        rates("EUR")  # the window has ended: the error reaches the caller
    with pytest.raises(Down):
        rates("EUR")
    assert len(attempts) == 1 + 9 + 2
    stats = cache.stats().functions[_name(rates)]
    assert (stats.misses, stats.stale, stats.errors, stats.refresh_errors) == (1, 44, 2, 9)
    assert stats.calls == 1 + 44 + 2
    failing.clear()
    assert rates("EUR") == {"EUR": 1.0}


def test_stale_if_error_recovers_when_the_computation_succeeds_again(cache: Cache, clock: FakeClock) -> None:
    results: list[Any] = [1, Down("down"), 2]

    @cached(cache=cache, ttl=TTL, stale_if_error=60)
    def value(n: int) -> int:
        result = results.pop(0)
        if isinstance(result, Exception):
            raise result
        return int(result)

    assert value(1) == 1
    clock.advance(TTL + 1)
    assert value(1) == 1  # the recomputation raised: the stale value
    clock.advance(1.0)  # the retry is due
    assert value(1) == 2  # recomputed and stored
    clock.advance(1.0)
    assert value(1) == 2 and results == []  # a plain hit now


def test_stale_if_error_does_not_swallow_what_is_not_an_exception(cache: Cache, clock: FakeClock) -> None:
    stop = [False]

    @cached(cache=cache, ttl=TTL, stale_if_error=60)
    def value(n: int) -> int:
        if stop[0]:
            raise KeyboardInterrupt
        return n

    assert value(1) == 1
    stop[0] = True
    clock.advance(TTL + 1)
    with pytest.raises(KeyboardInterrupt):
        value(1)


def test_an_invalidation_during_a_failing_recomputation_is_not_answered_with_the_stale_value(
    cache: Cache, clock: FakeClock
) -> None:
    failing = threading.Event()

    @cached(cache=cache, ttl=TTL, tags=["rates"], stale_if_error=60)
    def rates(n: int) -> int:
        if failing.is_set():
            cache.invalidate(tags=["rates"])  # lands while this recomputation runs
            raise Down("down")
        return n

    assert rates(1) == 1
    clock.advance(TTL + 1)
    failing.set()
    with pytest.raises(Down):
        rates(1)  # the stale value was invalidated meanwhile: the error, not the value


def test_get_or_compute_serves_stale_on_error(cache: Cache, clock: FakeClock) -> None:
    def fails() -> str:
        raise Down("down")

    assert cache.get_or_compute("quote", lambda: "q1", ttl=TTL, stale_if_error=30) == "q1"
    clock.advance(TTL + 1)
    assert cache.get_or_compute("quote", fails, ttl=TTL, stale_if_error=30) == "q1"
    assert cache.get("quote") is None  # get() serves fresh values only
    clock.advance(30)
    with pytest.raises(Down):
        cache.get_or_compute("quote", fails, ttl=TTL, stale_if_error=30)


# -- through the disk tier: another cache (another process) judges the windows alike ------------


@pytest.fixture
def two_caches(clock: FakeClock, disk_dir: Path) -> Iterator[tuple[Cache, Cache]]:
    """Two caches over one disk directory, each with its own memory (two processes, in effect)."""
    disks = [DiskTier(disk_dir), DiskTier(disk_dir)]
    caches = [Cache([MemoryTier(), disk], clock=clock) for disk in disks]
    try:
        yield caches[0], caches[1]
    finally:
        for thing in (*caches, *disks):
            thing.close()


@cached(ttl=TTL, stale_ttl=30, stale_if_error=60, version="1")
def _shared_report(n: int) -> str:
    _SHARED_CALLS.append(_on_main_thread())
    if _SHARED_FAILS:
        raise Down("down")
    return f"report {n} v{len(_SHARED_CALLS)}"


_SHARED_CALLS: list[bool] = []
_SHARED_FAILS: list[bool] = []


def test_another_cache_on_the_disk_directory_serves_stale_within_the_window(
    two_caches: tuple[Cache, Cache], clock: FakeClock
) -> None:
    first, second = two_caches
    _SHARED_CALLS.clear()
    cacheplug.configure(first)
    assert _shared_report(1) == "report 1 v1"
    clock.advance(TTL + 1)  # expired everywhere, within stale_ttl
    cacheplug.configure(second)  # nothing in its memory: it reads the disk row
    assert _shared_report(1) == "report 1 v1"  # stale, from disk
    assert second.background.wait(JOIN)
    assert _SHARED_CALLS == [True, False]  # refreshed in the second cache's background
    assert _shared_report(1) == "report 1 v2"
    cacheplug.configure(first)  # its memory still holds the stale v1; the disk has v2
    assert _shared_report(1) == "report 1 v2"
    assert second.stats().functions[_name(_shared_report)].stale == 1


def test_another_cache_on_the_disk_directory_serves_stale_on_error(
    two_caches: tuple[Cache, Cache], clock: FakeClock
) -> None:
    first, second = two_caches
    _SHARED_CALLS.clear()
    cacheplug.configure(first)
    assert _shared_report(2) == "report 2 v1"
    clock.advance(TTL + 40)  # past stale_ttl (30), within stale_if_error (60)
    cacheplug.configure(second)
    _SHARED_FAILS.append(True)
    try:
        assert _shared_report(2) == "report 2 v1"  # the recomputation raised: the disk's stale value
        clock.advance(30)  # the window has ended
        with pytest.raises(Down):
            _shared_report(2)
    finally:
        _SHARED_FAILS.clear()


def test_an_invalidated_disk_entry_is_not_served_stale_by_another_cache(
    two_caches: tuple[Cache, Cache], clock: FakeClock
) -> None:
    first, second = two_caches
    _SHARED_CALLS.clear()
    cacheplug.configure(first)
    assert _shared_report(3) == "report 3 v1"
    clock.advance(TTL + 1)
    _shared_report.invalidate(3)  # in the first cache
    cacheplug.configure(second)
    assert _shared_report(3) == "report 3 v2" and _SHARED_CALLS == [True, True]


def test_the_windows_survive_a_round_trip_through_the_codec() -> None:
    for codec in (PickleCodec(), PickleCodec("a-secret-0123456789")):
        stale = PolicyEntry("v", 100.0, 160.0, 3, ("t",), 0.25, None, "inc")
        stale.deadline, stale.stale_until, stale.error_until = 157.5, 190.0, 220.0
        back = codec.loads(codec.dumps(stale, "k"), "k")
        assert type(back) is PolicyEntry
        windows = (back.deadline, back.expires, back.stale_until, back.error_until)
        assert windows == (157.5, 160.0, 190.0, 220.0)
        early = Entry("v", 100.0, 160.0, 3, ("t",), 0.25)
        early.deadline = 157.5
        back = codec.loads(codec.dumps(early, "k"), "k")
        assert type(back) is Entry and back.deadline == 157.5 and back.stale_until == float("-inf")
        plain = Entry("v", 100.0, 160.0, 3, ("t",), 0.25)
        data = codec.dumps(plain, "k")
        payload = data[44:] if codec.signed else data[4:]  # after the header (and signature)
        assert len(pickle.loads(payload)) == 7  # a plain entry's record is what it always was
        assert codec.loads(data, "k").windows() is None


# -- async: tasks of the running loop ------------------------------------------------------------


def test_async_callers_during_a_refresh_get_the_stale_value_without_waiting(clock: FakeClock) -> None:
    async def main() -> None:
        opened = asyncio.Event()
        computed: list[int] = []
        with Cache([MemoryTier()], clock=clock) as cache:

            @cached(cache=cache, ttl=TTL, stale_ttl=30)
            async def page(n: int) -> str:
                if computed:
                    await asyncio.wait_for(opened.wait(), JOIN)  # the refresh is held until the test opens
                computed.append(n)
                return f"v{len(computed)}"

            assert await page(1) == "v1"
            clock.advance(TTL + 1)
            served = await asyncio.gather(*(page(1) for _ in range(500)))
            assert served == ["v1"] * 500  # while the refresh task waits
            assert computed == [1] and cache.background.pending == 1
            opened.set()
            await cache.background.await_tasks()
            assert computed == [1, 1]
            assert await page(1) == "v2"
            stats = cache.stats().functions[_name(page)]
            assert (stats.stale, stats.refreshes) == (500, 1)

    asyncio.run(main())


def test_async_refresh_started_before_an_invalidation_stores_nothing(clock: FakeClock) -> None:
    async def main() -> None:
        entered, opened = asyncio.Event(), asyncio.Event()
        computed: list[int] = []
        with Cache([MemoryTier()], clock=clock) as cache:

            @cached(cache=cache, ttl=TTL, tags=["page:{n}"], stale_ttl=30)
            async def page(n: int) -> str:
                if len(computed) == 1:
                    entered.set()
                    await asyncio.wait_for(opened.wait(), JOIN)
                computed.append(n)
                return f"v{len(computed)}"

            assert await page(1) == "v1"
            clock.advance(TTL + 1)
            assert await page(1) == "v1"
            await asyncio.wait_for(entered.wait(), JOIN)
            await cache.ainvalidate(tags=["page:1"])
            opened.set()
            await cache.background.await_tasks()
            assert await page(1) == "v3"  # the refresh's v2 was refused, the stale v1 not served
            assert cache.stats().stale_sets == 1

    asyncio.run(main())


def test_async_stale_if_error(clock: FakeClock) -> None:
    async def main() -> None:
        attempts: list[float] = []
        with Cache([MemoryTier()], clock=clock) as cache:

            @cached(cache=cache, ttl=TTL, stale_if_error=5)
            async def rates(n: int) -> int:
                attempts.append(clock())
                if len(attempts) > 1:
                    raise Down("down")
                return n

            assert await rates(1) == 1
            clock.advance(TTL + 0.01)
            for _ in range(10):  # 1 s of calls: attempts 0.5 s apart
                assert await rates(1) == 1
                clock.advance(0.1)
            assert len(attempts) == 1 + 2
            clock.advance(5)
            with pytest.raises(Down):
                await rates(1)

    asyncio.run(main())


def test_async_hot_key_under_early_refresh(clock: FakeClock) -> None:
    async def main() -> None:
        computed: list[float] = []
        with Cache([MemoryTier()], clock=clock, random=random.Random(9).random) as cache:

            @cached(cache=cache, ttl=HOT_TTL, early_refresh=True)
            async def hot(key: int) -> int:
                clock.advance(COMPUTE)
                computed.append(clock())
                return len(computed)

            await hot(1)
            began = clock()
            while clock() < began + 50 * HOT_TTL:
                clock.advance(1 / READS_PER_SECOND)
                await hot(1)
                if cache.background.pending:
                    await cache.background.await_tasks()
            info = hot.cache_info()
            assert info.misses == 1  # every recomputation after the first was a background task
            periods = (clock() - computed[0]) / HOT_TTL
            assert 1 <= (len(computed) - 1) / periods <= 1.1

    asyncio.run(main())


# -- the pool's bounds and the caller's function ----------------------------------------------


def test_one_background_refresh_per_key_at_a_time(cache: Cache, clock: FakeClock) -> None:
    gate = Gate()
    computed: list[int] = []

    @cached(cache=cache, ttl=TTL, stale_ttl=30)
    def page(n: int) -> int:
        gate.hold()
        computed.append(n)
        return n * 10 + len(computed)

    assert page(1) == 11 and page(2) == 22
    clock.advance(TTL + 1)
    for _ in range(5):
        assert page(1) == 11 and page(2) == 22
    assert gate.entered.wait(JOIN)
    gate.open.set()
    assert cache.background.wait(JOIN)
    assert sorted(computed[2:]) == [1, 2]  # one refresh of each key, not five
    assert cache.stats().refreshes == 2


def test_a_method_is_refreshed_with_its_instance(clock: FakeClock) -> None:
    with Cache([MemoryTier()], clock=clock) as cache:

        class Repo:
            def __init__(self) -> None:
                self.loads = 0

            def __cache_key__(self) -> str:
                return "repo"

            @cached(cache=cache, ttl=TTL, stale_ttl=30)
            def load(self, n: int) -> int:
                self.loads += 1
                return n + self.loads

        repo = Repo()
        assert repo.load(1) == 2
        clock.advance(TTL + 1)
        assert repo.load(1) == 2  # stale
        assert cache.background.wait(JOIN)
        assert repo.loads == 2 and repo.load(1) == 3


# -- real processes -------------------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, sys, threading
    from cacheplug import Cache, DiskTier, MemoryTier, cached

    directory, now, action = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    disk = DiskTier(directory)
    cache = Cache([MemoryTier(), disk], clock=lambda: now)
    calls = []

    @cached(cache=cache, ttl=10, stale_ttl=30, stale_if_error=60, version="1")
    def report(n):
        calls.append(threading.current_thread() is threading.main_thread())
        if action == "fail":
            raise RuntimeError("report service down")
        return {"n": n, "by": action}

    served = report(1)
    assert cache.background.wait(30)
    stats = cache.stats()
    print(json.dumps({"served": served, "on_caller": calls, "stale": stats.stale,
                      "refreshes": stats.refreshes, "refresh_errors": stats.refresh_errors}))
    cache.close()
    disk.close()
    """
)
ROOT = Path(__file__).resolve().parent.parent
T0 = 1_700_000_000.0


def _worker(script: Path, directory: Path, now: float, action: str) -> Any:
    done = subprocess.run(
        [sys.executable, str(script), str(directory), repr(now), action],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_another_process_serves_stale_from_the_disk_tier_and_refreshes_it(
    tmp_path: Path, disk_dir: Path
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    wrote = _worker(script, disk_dir, T0, "write")
    assert wrote["served"] == {"n": 1, "by": "write"} and wrote["on_caller"] == [True]
    # 15 s later, in another process: expired (ttl 10), within stale_ttl (30).
    read = _worker(script, disk_dir, T0 + 15, "read")
    assert read["served"] == {"n": 1, "by": "write"}  # the stale value, without waiting...
    assert read["on_caller"] == [False] and read["stale"] == 1 and read["refreshes"] == 1  # ...refreshed
    # 50 s after that refresh: past its stale_ttl, within stale_if_error; the computation fails.
    failed = _worker(script, disk_dir, T0 + 65, "fail")
    assert failed["served"] == {"n": 1, "by": "read"}  # what the second process refreshed
    assert failed["on_caller"] == [True] and failed["refresh_errors"] == 1


def test_a_call_without_the_options_never_serves_an_entry_stale(
    two_caches: tuple[Cache, Cache], clock: FakeClock
) -> None:
    """The windows an entry carries are acted on only by calls that have the options."""
    first, second = two_caches

    def fails() -> str:
        raise Down("down")

    assert first.get_or_compute("k", lambda: "v1", ttl=TTL, stale_ttl=60, stale_if_error=60) == "v1"
    clock.advance(TTL + 1)  # within both windows of the disk entry
    with pytest.raises(Down):
        second.get_or_compute("k", fails, ttl=TTL)  # no stale_if_error here: the error
    assert second.get_or_compute("k", lambda: "v2", ttl=TTL) == "v2"  # no stale_ttl: recomputed
    assert second.background.pending == 0 and second.stats().stale == 0


def test_every_tier_keeps_an_entry_for_its_ttl_plus_its_windows(clock: FakeClock, disk_dir: Path) -> None:
    disk = DiskTier(disk_dir)
    with Cache([MemoryTier(), disk], clock=clock) as cache, Cache([disk], clock=clock) as plain:
        assert cache.get_or_compute("k", lambda: "v1", ttl=TTL, stale_ttl=20, stale_if_error=40) == "v1"
        skey = cache.user_key("k")
        clock.advance(TTL + 30)  # past stale_ttl, within stale_if_error
        assert plain.get("k") is None  # a reader without the options: not served...
        assert disk.get(skey).value == "v1"  # ...and not deleted either
        assert cache.sweep() == 0 and plain.sweep() == 0
        assert disk.get(skey).value == "v1" and len(cache.direct.shelf) == 1
        clock.advance(10)  # past every window
        assert cache.sweep() == 2  # the memory entry and the disk row
        assert disk.get(skey) is cacheplug.MISS
    disk.close()


def test_the_module_level_get_or_compute_takes_the_options(cache: Cache, clock: FakeClock) -> None:
    cacheplug.configure(cache)
    assert cacheplug.get_or_compute("k", lambda: "v1", ttl=TTL, stale_ttl=30) == "v1"
    clock.advance(TTL + 1)
    assert cacheplug.get_or_compute("k", lambda: "v2", ttl=TTL, stale_ttl=30) == "v1"  # stale
    assert cache.background.wait(JOIN)
    assert cacheplug.get_or_compute("k", lambda: "v3", ttl=TTL, stale_ttl=30) == "v2"


def test_callers_waiting_for_a_failing_recomputation_all_get_the_stale_value(
    cache: Cache, clock: FakeClock
) -> None:
    """With single-flight: one recomputation for every caller in the window; it raises, and
    each of them (the one computing and those waiting for it) is served the stale value."""
    entered, release = threading.Event(), threading.Event()
    attempts: list[int] = []
    waiters = 15
    waiting = Counter(waiters)

    @cached(cache=cache, ttl=TTL, stale_if_error=60)
    def rates(n: int) -> int:
        attempts.append(n)
        if len(attempts) == 1:
            return n
        entered.set()
        assert release.wait(JOIN)
        raise Down("rates service down")

    assert rates(1) == 1
    clock.advance(TTL + 1)
    served: list[Any] = []

    def caller(wait_first: bool) -> None:
        with contextlib.ExitStack() as stack:
            if wait_first:  # says when it starts waiting for the computation in flight
                stack.enter_context(watching_waits(waiting))
            try:
                served.append(rates(1))
            except Down as exc:  # pragma: no cover - a failure of the test
                served.append(exc)

    first = threading.Thread(target=caller, args=(False,))
    first.start()
    assert entered.wait(JOIN)  # the first caller computes, holding the key
    others = [threading.Thread(target=caller, args=(True,)) for _ in range(waiters)]
    for thread in others:
        thread.start()
    assert waiting.reached.wait(JOIN)  # every other caller waits for that computation
    release.set()
    for thread in (first, *others):
        thread.join(JOIN)
    assert served == [1] * (waiters + 1)
    assert len(attempts) == 2  # one recomputation for the 16 callers
    stats = cache.stats().functions[_name(rates)]
    assert (stats.stale, stats.errors, stats.coalesced, stats.refresh_errors) == (16, 0, 0, 1)
