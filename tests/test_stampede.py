"""Single-flight in one process (issue 9, "Stampede and freshness"): concurrent misses of one
key wait for one computation and share its value or its exception.

Real threads and real asyncio tasks. Where a test needs a caller to be *waiting* before the
owner moves on, the caller's thread observes itself (``sys.setprofile``) entering
``cacheplug.flight.wait``/``await_`` and says so; nothing sleeps and retries. The 200 ms
computations sleep inside the computation itself. The only timed checks are generous bounds
(a caller that hung until ``lock_timeout`` would exceed them); the p99 figures are in
benchmarks/bench_stampede.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cacheplug import Cache, ConfigurationError, DiskTier, MemoryTier, cached, configure
from cacheplug import flight as flight_module
from cacheplug.cache.calls import Binding

from .conftest import FakeClock
from .disk_support import in_child
from .tier_doubles import wait

THREADS = 64
TASKS = 500
COMPUTE = 0.2  # seconds the stampeded computation takes
BOUND = 20.0  # seconds no caller may wait (it would mean hanging until lock_timeout=30)
JOIN = 60.0

PATHS = ("lean", "shared", "general", "direct")


class Boom(Exception):
    """What a failing computation raises."""


class Abort(BaseException):
    """A BaseException that is not an Exception (as KeyboardInterrupt is)."""


# -- helpers -----------------------------------------------------------------------------------


class Watch:
    """This thread's profile hook: calls ``on_wait()`` each time the thread starts waiting on a
    flight, and records each Flight, ``threading.Event`` or ``Condition`` made and each lock
    or future allocated (``seen``)."""

    WAITS = {flight_module.wait.__code__, flight_module.await_.__code__}
    MADE = {
        flight_module.Flight.__init__.__code__: "Flight",
        threading.Event.__init__.__code__: "Event",
        threading.Condition.__init__.__code__: "Condition",
    }

    def __init__(self, on_wait: Callable[[], Any] | None = None) -> None:
        self.on_wait = on_wait
        self.seen: list[str] = []

    def hook(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            if code in self.WAITS and self.on_wait is not None:
                self.on_wait()
            elif code in self.MADE:
                self.seen.append(self.MADE[code])
        elif event == "c_call" and getattr(arg, "__name__", "") in {"create_future", "allocate_lock"}:
            self.seen.append(arg.__name__)

    @contextlib.contextmanager
    def installed(self) -> Iterator[Watch]:
        previous = sys.getprofile()
        sys.setprofile(self.hook)
        try:
            yield self
        finally:
            sys.setprofile(previous)


def watching_waits(on_wait: Callable[[], Any]) -> contextlib.AbstractContextManager[Watch]:
    """Call ``on_wait()`` each time this thread starts waiting on a flight."""
    return Watch(on_wait).installed()


class Counter:
    """Counts calls across threads, and says when ``target`` of them happened."""

    def __init__(self, target: int = 0) -> None:
        self.lock = threading.Lock()
        self.n = 0
        self.target = target
        self.reached = threading.Event()

    def __call__(self) -> int:
        with self.lock:
            self.n += 1
            if self.n >= self.target:
                self.reached.set()
            return self.n


def run_threads(target: Callable[[int], Any], n: int, *, setup: Callable[[], Any] | None = None) -> list[Any]:
    """Run ``target(i)`` in ``n`` threads (started together); each one's result or exception."""
    out: list[Any] = [None] * n
    barrier = threading.Barrier(n)

    def body(i: int) -> None:
        if setup is not None:
            setup()
        barrier.wait()
        try:
            out[i] = target(i)
        except BaseException as exc:
            out[i] = exc

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN)
        assert not thread.is_alive(), "a caller did not finish"
    return out


def _binding(func: Any) -> Binding:
    core = func._self_core
    cache = core.cache()
    binding: Binding = core.binding(cache)
    return binding


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def cache_for(tmp_path: Path) -> Iterator[Callable[[str], Cache]]:
    made: list[Any] = []

    def make(path: str, clock: Any = None) -> Cache:
        tiers: list[Any] = [MemoryTier()]
        if path == "shared":
            disk = DiskTier(tmp_path / "disk", timeout=2.0)
            made.append(disk)
            tiers.append(disk)
        cache = Cache(tiers, clock=clock)
        made.append(cache)
        return cache

    yield make
    for thing in reversed(made):
        thing.close()


def caller_of(path: str, cache: Cache, body: Callable[[int], Any], **options: Any) -> Callable[[int], Any]:
    """A cached computation of ``body`` reached through ``path``; call it with the key."""
    if path == "direct":
        return lambda k: cache.get_or_compute(f"k{k}", lambda: body(k), **options)
    if path == "general":

        @cached(cache=cache, **options)
        def general(k: int, *, unit: str = "x") -> Any:  # keyword-only: the general flow
            return body(k)

        return lambda k: general(k, unit="x")

    @cached(cache=cache, **options)
    def fast(k: int) -> Any:  # int arguments: the generated fast path
        return body(k)

    return fast


def _function_stats(cache: Cache) -> Any:
    (stats,) = cache.stats().functions.values()
    return stats


# -- 64 threads, 500 tasks -----------------------------------------------------------------------


def test_64_threads_on_a_cold_key_wait_for_one_computation(path: str, cache_for: Any) -> None:
    cache = cache_for(path)
    computed = Counter()

    def body(k: int) -> dict[str, int]:
        computed()
        time.sleep(COMPUTE)
        return {"k": k}

    f = caller_of(path, cache, body)
    waits: list[float] = [0.0] * THREADS

    def call(i: int) -> Any:
        started = time.perf_counter()
        try:
            return f(7)
        finally:
            waits[i] = time.perf_counter() - started

    results = run_threads(call, THREADS)
    assert computed.n == 1
    assert all(r == {"k": 7} for r in results), results
    assert max(waits) < BOUND
    stats = _function_stats(cache)
    assert stats.calls == THREADS and stats.misses == 1 and stats.errors == 0
    assert stats.coalesced + stats.hits == THREADS - 1
    assert stats.coalesced > 0  # callers did wait for the one computation


def test_64_threads_on_a_failing_key_all_get_its_exception(path: str, cache_for: Any) -> None:
    cache = cache_for(path)
    computed = Counter()

    def body(k: int) -> Any:
        computed()
        time.sleep(COMPUTE)
        raise Boom(k)

    f = caller_of(path, cache, body)
    results = run_threads(lambda i: f(7), THREADS)
    assert computed.n == 1
    assert all(isinstance(r, Boom) for r in results), results
    assert len({id(r) for r in results}) == 1  # the one exception, shared
    stats = _function_stats(cache)
    assert stats.errors == THREADS and stats.calls == THREADS  # every call raised


def test_500_tasks_on_a_cold_key_wait_for_one_computation(cache_for: Any) -> None:
    cache = cache_for("lean")
    computed = Counter()

    @cached(cache=cache)
    async def report(k: int) -> dict[str, int]:
        computed()
        await asyncio.sleep(COMPUTE)
        return {"k": k}

    async def main() -> tuple[list[Any], list[float], int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:  # runs only while nothing blocks the event loop
            nonlocal ticks
            while not done.is_set():
                await asyncio.sleep(0.01)
                ticks += 1

        waits: list[float] = []

        async def call() -> Any:
            started = time.perf_counter()
            try:
                return await report(7)
            finally:
                waits.append(time.perf_counter() - started)

        ticking = asyncio.create_task(ticker())
        results = await asyncio.gather(*(call() for _ in range(TASKS)))
        done.set()
        await ticking
        return results, waits, ticks

    results, waits, ticks = asyncio.run(main())
    assert computed.n == 1
    assert all(r == {"k": 7} for r in results)
    assert len(waits) == TASKS and max(waits) < BOUND
    assert ticks > 0  # the waiting tasks left the loop free
    stats = _function_stats(cache)
    assert (stats.misses, stats.coalesced, stats.calls) == (1, TASKS - 1, TASKS)


def test_500_tasks_on_a_failing_key_all_get_its_exception(cache_for: Any) -> None:
    cache = cache_for("lean")
    computed = Counter()

    @cached(cache=cache)
    async def report(k: int) -> Any:
        computed()
        await asyncio.sleep(COMPUTE)
        raise Boom(k)

    async def main() -> list[Any]:
        return await asyncio.gather(*(report(7) for _ in range(TASKS)), return_exceptions=True)

    results = asyncio.run(main())
    assert computed.n == 1
    assert all(isinstance(r, Boom) for r in results) and len({id(r) for r in results}) == 1
    assert _function_stats(cache).errors == TASKS


# -- no event, future or lock for an uncontended miss --------------------------------------------


@pytest.mark.parametrize("kind", [*PATHS, "async"])
def test_an_uncontended_miss_makes_no_event_future_or_lock(kind: str, cache_for: Any) -> None:
    cache = cache_for("shared" if kind == "shared" else "lean")
    if kind == "async":

        @cached(cache=cache)
        async def coro(k: int) -> int:
            return k

        async def calls() -> None:
            for k in range(50):
                assert await coro(k) == k

        asyncio.run(coro(-1))  # binds the function to the cache (which makes its own lock)

        loop = asyncio.new_event_loop()
        watch = Watch()
        try:
            task = loop.create_task(calls())
            with watch.installed():
                loop.run_until_complete(task)
        finally:
            loop.close()
    else:
        f = caller_of(kind, cache, lambda k: k)
        assert f(-1) == -1  # binds the function to the cache (which makes its own lock)
        watch = Watch()
        with watch.installed():
            for k in range(50):
                assert f(k) == k
    assert watch.seen == []
    assert _function_stats(cache).misses == 51


def test_a_second_caller_of_the_key_is_what_makes_the_flight(cache_for: Any) -> None:
    """The detector above is real: a contended miss does make a Flight and an Event."""
    cache = cache_for("lean")
    started, go = threading.Event(), threading.Event()

    @cached(cache=cache)
    def f(k: int) -> int:
        started.set()
        wait(go, "the test to let the owner finish")
        return k

    owner = threading.Thread(target=f, args=(1,))
    owner.start()
    wait(started, "the owner's computation")
    waiting = threading.Event()
    watch = Watch(lambda: (waiting.set(), go.set()))

    def joiner() -> None:
        with watch.installed():
            assert f(1) == 1

    thread = threading.Thread(target=joiner)
    thread.start()
    thread.join(JOIN)
    owner.join(JOIN)
    assert waiting.is_set()
    assert "Flight" in watch.seen and "Event" in watch.seen


# -- takeover ------------------------------------------------------------------------------------


def test_a_cancelled_owner_hands_its_key_to_a_waiter(cache_for: Any) -> None:
    cache = cache_for("lean")
    computed = Counter()
    waiters = 5

    async def main() -> tuple[list[Any], BaseException | None]:
        never = asyncio.Event()
        owner_started = asyncio.Event()
        joined = asyncio.Event()
        count = 0

        @cached(cache=cache)
        async def report(k: int) -> str:
            if computed() == 1:
                owner_started.set()
                await never.wait()  # the owner: cancelled while it computes
            return f"value {k}"

        def on_wait() -> None:
            nonlocal count
            count += 1
            if count == waiters:
                joined.set()

        owner = asyncio.create_task(report(3))
        await owner_started.wait()
        with watching_waits(on_wait):
            others = [asyncio.create_task(report(3)) for _ in range(waiters)]
            await asyncio.wait_for(joined.wait(), BOUND)
        owner.cancel()
        results = await asyncio.wait_for(asyncio.gather(*others), BOUND)
        try:
            await owner
        except BaseException as exc:
            return results, exc
        return results, None

    results, owner_error = asyncio.run(main())
    assert isinstance(owner_error, asyncio.CancelledError)
    assert results == ["value 3"] * waiters
    assert computed.n == 2  # the cancelled one, and one waiter's
    stats = _function_stats(cache)
    assert (stats.errors, stats.misses, stats.coalesced) == (1, 1, waiters - 1)


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, GeneratorExit, Abort])
@pytest.mark.parametrize("route", ["lean", "general", "direct"])
def test_an_owner_raising_a_base_exception_hands_its_key_to_a_waiter(
    error: type[BaseException], route: str, cache_for: Any
) -> None:
    cache = cache_for(route)
    computed = Counter()
    waiters = 4
    joined = Counter(waiters)
    started = threading.Event()

    def body(k: int) -> str:
        if computed() == 1:
            started.set()
            wait(joined.reached, "every waiter to wait")
            raise error("the owner stops")
        return f"value {k}"

    f = caller_of(route, cache, body)
    owner_result: list[Any] = []

    def owner() -> None:
        try:
            owner_result.append(f(5))
        except BaseException as exc:
            owner_result.append(exc)

    first = threading.Thread(target=owner)
    first.start()
    wait(started, "the owner's computation")

    def waiter(i: int) -> Any:
        with watching_waits(joined):
            return f(5)

    results = run_threads(waiter, waiters)
    first.join(JOIN)
    assert isinstance(owner_result[0], error)
    assert results == ["value 5"] * waiters
    assert computed.n == 2


def test_an_owner_past_lock_timeout_is_replaced_by_the_next_caller(cache_for: Any) -> None:
    """By the cache's clock: the owner's computation moved it past lock_timeout."""
    clock = FakeClock()
    cache = cache_for("lean", clock)
    started, go = threading.Event(), threading.Event()
    computed = Counter()

    @cached(cache=cache, lock_timeout=10)
    def f(k: int) -> str:
        n = computed()
        if n == 1:
            clock.advance(11)
            started.set()
            wait(go, "the test to release the owner")
        return f"computation {n}"

    owner_result: list[str] = []
    owner = threading.Thread(target=lambda: owner_result.append(f(1)))
    owner.start()
    wait(started, "the owner's computation")
    assert f(1) == "computation 2"  # took over at once: the owner is still running
    go.set()
    owner.join(JOIN)
    assert owner_result == ["computation 1"]
    assert f(1) == "computation 2"  # the first value stored stays: the late one is not stored


def test_a_waiter_takes_over_after_waiting_lock_timeout(cache_for: Any) -> None:
    """In real time: the owner hangs; every waiter ends up with the taker's value."""
    cache = cache_for("lean")
    started, go = threading.Event(), threading.Event()
    computed = Counter()
    waiters = 3

    @cached(cache=cache, lock_timeout=0.3)
    def f(k: int) -> str:
        n = computed()
        if n == 1:
            started.set()
            wait(go, "the test to release the owner")
        return f"computation {n}"

    owner = threading.Thread(target=f, args=(1,))
    owner.start()
    try:
        wait(started, "the owner's computation")
        results = run_threads(lambda i: f(1), waiters)
    finally:
        go.set()
        owner.join(JOIN)
    assert results == ["computation 2"] * waiters
    assert computed.n == 2


def test_waiting_tasks_take_over_after_waiting_lock_timeout(cache_for: Any) -> None:
    cache = cache_for("lean")
    computed = Counter()
    waiters = 3

    async def main() -> list[str]:
        never = asyncio.Event()

        @cached(cache=cache, lock_timeout=0.3)
        async def f(k: int) -> str:
            n = computed()
            if n == 1:
                await never.wait()  # the owner hangs
            return f"computation {n}"

        owner = asyncio.create_task(f(1))
        await asyncio.sleep(0)  # the owner claims the key and starts computing
        try:
            return list(await asyncio.wait_for(asyncio.gather(*(f(1) for _ in range(waiters))), BOUND))
        finally:
            owner.cancel()

    assert asyncio.run(main()) == ["computation 2"] * waiters
    assert computed.n == 2


# -- invalidation during a flight ----------------------------------------------------------------


@pytest.mark.parametrize("route", ["lean", "general", "direct"])
def test_a_caller_after_an_invalidation_never_joins_the_flight_before_it(route: str, cache_for: Any) -> None:
    cache = cache_for(route)
    source = {"price": 1}
    started, go = threading.Event(), threading.Event()
    computed = Counter()

    def body(k: int) -> int:
        seen = source["price"]
        if computed() == 1:
            started.set()
            wait(go, "the test to release the owner")
        return seen

    f = caller_of(route, cache, body, tags=["price"])
    owner_result: list[int] = []
    early_result: list[int] = []
    joined = threading.Event()
    owner = threading.Thread(target=lambda: owner_result.append(f(1)))
    owner.start()
    wait(started, "the owner's computation")

    def early() -> None:  # joins before the invalidation
        with watching_waits(joined.set):
            early_result.append(f(1))

    early_thread = threading.Thread(target=early)
    early_thread.start()
    wait(joined, "a caller to join the owner's computation")
    source["price"] = 2
    cache.invalidate(tags=["price"])
    late_result: list[int] = []
    late = threading.Thread(target=lambda: late_result.append(f(1)))
    late.start()
    late.join(BOUND)  # it computes on its own: it does not wait for the owner, still running
    assert not late.is_alive(), "the caller after the invalidation waited for the computation before it"
    assert late_result == [2]
    go.set()
    owner.join(JOIN)
    early_thread.join(JOIN)
    assert owner_result == [1]  # the owner's own caller gets what it computed
    assert early_result == [2]  # its waiter is not served the invalidated value
    assert f(1) == 2
    assert cache.stats().stale_sets >= 1  # the owner's value was not stored


def test_an_unrelated_invalidation_does_not_split_the_flight(cache_for: Any) -> None:
    cache = cache_for("lean")
    started, go = threading.Event(), threading.Event()
    computed = Counter()

    @cached(cache=cache, tags=["item:{k}"])
    def f(k: int) -> int:
        computed()
        started.set()
        wait(go, "the test to release the owner")
        return k

    owner = threading.Thread(target=f, args=(1,))
    owner.start()
    wait(started, "the owner's computation")
    cache.invalidate(tags=["item:2"])  # another item
    joined = threading.Event()

    def later() -> int:
        with watching_waits(lambda: (joined.set(), go.set())):
            return f(1)

    results = run_threads(lambda i: later(), 1)
    owner.join(JOIN)
    assert results == [1] and computed.n == 1 and joined.is_set()


# -- recursion -----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["lean", "shared", "general", "direct"])
def test_a_computation_calling_itself_with_the_same_key_computes_again(route: str, cache_for: Any) -> None:
    cache = cache_for(route)
    depth: list[int] = []
    f: Callable[[int], Any]

    def body(k: int) -> int:
        depth.append(k)
        if len(depth) == 1:
            return int(f(k)) + 1  # the same key, from inside its own computation
        return 10

    f = caller_of(route, cache, body, lock_timeout=30)
    results = run_threads(lambda i: f(4), 1)  # bounded: waiting for itself would hang 30 s
    assert results == [11] and len(depth) == 2


def test_an_async_computation_awaiting_itself_with_the_same_key_computes_again(cache_for: Any) -> None:
    cache = cache_for("lean")
    depth: list[int] = []

    @cached(cache=cache)
    async def f(k: int) -> int:
        depth.append(k)
        if len(depth) == 1:
            return await f(k) + 1
        return 10

    assert asyncio.run(asyncio.wait_for(f(4), BOUND)) == 11


# -- what does not coalesce, forks ---------------------------------------------------------------


@pytest.mark.parametrize("route", ["lean", "general", "direct"])
def test_ttl_0_still_runs_on_every_call(route: str, cache_for: Any) -> None:
    """ttl=0 means "do not store": concurrent calls are not shared either."""
    cache = cache_for(route)
    computed = Counter()

    def body(k: int) -> int:
        computed()
        time.sleep(0.05)
        return k

    f = caller_of(route, cache, body, ttl=0)
    assert run_threads(lambda i: f(3), 8) == [3] * 8
    assert computed.n == 8


def test_a_forked_child_does_not_wait_for_the_parents_computations(cache_for: Any) -> None:
    cache = cache_for("lean")
    started, go = threading.Event(), threading.Event()

    @cached(cache=cache)
    def f(k: int) -> str:
        if not started.is_set():
            started.set()
            wait(go, "the test to release the parent's computation")
            return "parent"
        return "child"

    owner = threading.Thread(target=f, args=(1,))
    owner.start()
    try:
        wait(started, "the parent's computation")
        assert _binding(f).flights.marks  # type: ignore[union-attr]  # the key is in flight here
        # In the child only this thread exists: the owner's computation never lands there.
        assert in_child(lambda: f(1), timeout=BOUND) == "child"
    finally:
        go.set()
        owner.join(JOIN)


# -- options -------------------------------------------------------------------------------------


def test_lock_options_are_checked_at_decoration_time(cache_for: Any) -> None:
    memory_only = cache_for("lean")
    with pytest.raises(ConfigurationError, match="Redis tier, not available yet"):
        cached(lock="cluster")
    for bad in ("process", "Host", 1, True):
        with pytest.raises(ConfigurationError, match="lock= takes None"):
            cached(lock=bad)  # type: ignore[arg-type]
    for timeout in (0, -1, float("nan"), float("inf"), True, "30", None):
        with pytest.raises(ConfigurationError, match="lock_timeout= must be"):
            cached(lock_timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"beside the disk tier.*DiskTier"):

        @cached(cache=memory_only, lock="host")
        def f(k: int) -> int:
            return k

    with pytest.raises(ConfigurationError, match="beside the disk tier"):
        memory_only.get_or_compute("k", lambda: 1, lock="host")
    with pytest.raises(ConfigurationError, match="lock_timeout= must be"):
        memory_only.get_or_compute("k", lambda: 1, lock_timeout=0)
    assert memory_only.get_or_compute("k", lambda: 1, lock_timeout=5) == 1


def test_lock_host_on_a_default_cache_without_disk_fails_at_the_first_call() -> None:
    configure(tiers="memory")

    @cached(lock="host")
    def f(k: int) -> int:
        return k

    with pytest.raises(ConfigurationError, match='lock="host" leases keys'):
        f(1)


def test_single_flight_off_is_only_the_benchmarks_switch(cache_for: Any) -> None:
    """With the switch off (for the benchmark's comparison), misses no longer coalesce."""
    cache = cache_for("lean")
    flight_module.ENABLED = False
    try:

        @cached(cache=cache)
        def f(k: int) -> int:
            return k

        assert f(1) == 1
    finally:
        flight_module.ENABLED = True
    assert _binding(f).flights is None
