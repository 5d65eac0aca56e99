"""Forced interleavings of computations and invalidations: no stale value is ever stored as fresh.

Each scenario pins one interleaving with events (no sleeps) and runs it 1,000 times:

(a) a fill racing an invalidation: the computation reads the source of truth, the truth
    changes and is invalidated while it computes, then it finishes;
(b) the invalidation lands after the computation ended, while its tags are attached and the
    entry is being stored -- before the no-stale-set check (through a middleware on the
    ``set`` operation) or after it, during the write to a tier;
(c) a dependency is invalidated while the dependent computes (captured or ``depends_on``).

Every time, the racing caller gets its (old) value back, and the next call computes the new
one: the old value was stored in no tier as fresh. The count of refused stores proves that the
race was really run through the check each time (where the check is what stops it).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cacheplug
from cacheplug import Cache, DiskTier, MemoryTier, cached
from cacheplug.middleware import Op

from .invalidation_support import KINDS
from .tier_doubles import Gate, GatedTier, wait

RUNS = 1000


class GatedMemoryTier(MemoryTier):
    """A memory tier that can stop a store in the middle of putting an entry."""

    gate: Gate

    def put(self, shelf: Any, fkey: Any, entry: Any) -> None:
        self.gate.check(("put", fkey))
        super().put(shelf, fkey, entry)


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[Callable[..., Cache]]:
    """``opened(kind, middleware=(), gate=None, gated=())``: a cache, closed with its tiers after the test."""
    made: list[tuple[Cache, list[Any]]] = []

    def factory(
        kind: str, middleware: Any = (), gate: Gate | None = None, gated: tuple[str, ...] = ()
    ) -> Cache:
        tiers: list[Any] = []
        if kind != "disk":
            memory = GatedMemoryTier() if "memory" in gated else MemoryTier()
            if gate is not None:
                memory.gate = gate
            tiers.append(memory)
        if kind != "memory":
            disk = DiskTier(tmp_path / "disk")
            tiers.append(GatedTier(disk, gate) if "disk" in gated and gate is not None else disk)
        cache = Cache(tiers, middleware=middleware)
        made.append((cache, tiers))
        return cache

    yield factory
    for cache, tiers in made:
        cache.close()
        for tier in tiers:
            tier.close()


def invalidator(cache: Cache, fn: Any, i: int, run: int) -> None:
    """Invalidate what ``fn(i)`` was computed from, one of several ways."""
    how = run % 4
    if how == 0:
        cache.invalidate(tags=[f"item:{i}"])
    elif how == 1:
        cacheplug.invalidate(tags=[f"item:{i}"])
    elif how == 2:
        fn.invalidate(i)
    else:
        cacheplug.invalidate_by_write("item", i)


def race(call: Callable[[], Any], gate: Gate, change: Callable[[], None]) -> Any:
    """Run ``call`` in a thread; when it reaches the gate, ``change()`` the world, then let it finish."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(call())
        except BaseException as exc:
            errors.append(exc)
            gate.reached.set()

    worker = threading.Thread(target=target)
    worker.start()
    try:
        wait(gate.reached, "the computation to reach the gate")
        if not errors:
            change()
    finally:
        gate.release.set()
        worker.join(30)
    assert not worker.is_alive()
    if errors:
        raise errors[0]
    return result[0]


# -- (a) a fill racing an invalidation ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_fill_racing_an_invalidation_is_returned_but_never_stored(
    opened: Callable[..., Cache], kind: str
) -> None:
    cache = opened(kind)
    gate = Gate()
    truth: dict[int, int] = {}

    @cached(cache=cache, tags=["item:{i}"])
    def item(i: int) -> int:
        value = truth[i]
        gate.check(("compute", i))
        return value

    stale_sets = cache.stats()["stale_sets"]
    for run in range(RUNS):
        i = run
        truth[i] = 0
        gate.arm(("compute", i))

        def change(i: int = i, run: int = run) -> None:
            truth[i] = 1
            invalidator(cache, item, i, run)

        assert race(lambda i=i: item(i), gate, change) == 0  # the caller gets what it computed
        assert item(i) == 1, f"run {run}: the value computed before the invalidation was stored"
        assert item(i) == 1
    assert cache.stats()["stale_sets"] - stale_sets == RUNS


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_async_fill_racing_an_invalidation_is_returned_but_never_stored(
    opened: Callable[..., Cache], kind: str
) -> None:
    cache = opened(kind)
    truth: dict[int, int] = {}
    gates: dict[int, tuple[asyncio.Event, asyncio.Event]] = {}

    @cached(cache=cache, tags=["item:{i}"])
    async def item(i: int) -> int:
        value = truth[i]
        gate = gates.pop(i, None)
        if gate is not None:
            gate[0].set()
            await gate[1].wait()
        return value

    async def scenario() -> None:
        for run in range(RUNS):
            i = run
            truth[i] = 0
            reached, release = gates[i] = (asyncio.Event(), asyncio.Event())
            task = asyncio.create_task(item(i))
            await asyncio.wait_for(reached.wait(), 30)
            truth[i] = 1
            if run % 3 == 0:
                await cache.ainvalidate(tags=[f"item:{i}"])
            elif run % 3 == 1:
                await cacheplug.ainvalidate(tags=[f"item:{i}"])
            else:
                await item.ainvalidate(i)
            release.set()
            assert await asyncio.wait_for(task, 30) == 0
            assert await item(i) == 1, f"run {run}: the value computed before the invalidation was stored"

    stale_sets = cache.stats()["stale_sets"]
    asyncio.run(scenario())
    assert cache.stats()["stale_sets"] - stale_sets == RUNS


# -- (b) the invalidation lands while the entry is being stored ----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_invalidation_between_computation_end_and_store(opened: Callable[..., Cache], kind: str) -> None:
    gate = Gate()

    def before_store(op: Op, call_next: Callable[[Op], Any]) -> Any:
        if op.kind == "set":
            # The computation has ended and its tags are attached; the store has not begun.
            gate.check(("store", op.key))
        return call_next(op)

    cache = opened(kind, middleware=[before_store])
    truth: dict[int, int] = {}

    @cached(cache=cache, tags=lambda i: [f"item:{i}", f"group:{i % 7}"])
    def item(i: int) -> int:
        return truth[i]

    stale_sets = cache.stats()["stale_sets"]
    for run in range(RUNS):
        i = run
        truth[i] = 0
        gate.arm(("store", item.cache_key(i)))

        def change(i: int = i, run: int = run) -> None:
            truth[i] = 1
            if run % 2:
                invalidator(cache, item, i, run // 2)
            else:
                cache.invalidate(tags=[f"group:{i % 7}"])

        assert race(lambda i=i: item(i), gate, change) == 0
        assert item(i) == 1, f"run {run}: the value computed before the invalidation was stored"
    assert cache.stats()["stale_sets"] - stale_sets == RUNS


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "gated"),
    [("memory", "memory"), ("memory+disk", "memory"), ("memory+disk", "disk"), ("disk", "disk")],
)
def test_invalidation_during_the_write_to_a_tier(opened: Callable[..., Cache], kind: str, gated: str) -> None:
    """The store passed the no-stale-set check, then the invalidation lands mid-write: never served."""
    gate = Gate()
    cache = opened(kind, gate=gate, gated=(gated,))
    truth: dict[int, int] = {}

    @cached(cache=cache, tags=["item:{i}"])
    def item(i: int) -> int:
        return truth[i]

    for run in range(RUNS):
        i = run
        truth[i] = 0
        gate.arm(("put", (i,)) if gated == "memory" else ("set", item.cache_key(i)))

        def change(i: int = i, run: int = run) -> None:
            truth[i] = 1
            invalidator(cache, item, i, run)

        assert race(lambda i=i: item(i), gate, change) == 0
        if kind != "memory":
            # What reached the disk tier is stale for any cache reading it (another process's too).
            found = cache.tiers[-1].get(item.cache_key(i))
            assert found is cacheplug.MISS or not cache.live(found, time.time()), f"run {run}: fresh on disk"
        assert item(i) == 1, f"run {run}: an entry written across the invalidation was served"


# -- (c) a dependency invalidated while the dependent computes ------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_captured_dependency_invalidated_while_the_dependent_computes(
    opened: Callable[..., Cache], kind: str
) -> None:
    cache = opened(kind)
    gate = Gate()
    truth: dict[int, int] = {}

    @cached(cache=cache, tags=["item:{i}"])
    def inner(i: int) -> int:
        return truth[i]

    @cached(cache=cache)
    def outer(i: int) -> int:
        value = inner(i)  # read (and captured) before the dependency is invalidated
        gate.check(("outer", i))
        return value * 10

    stale_sets = cache.stats()["stale_sets"]
    for run in range(RUNS):
        i = run
        truth[i] = 0
        if run % 2:
            inner(i)  # half the runs read the dependency as a hit, half compute it inside outer
        gate.arm(("outer", i))

        def change(i: int = i, run: int = run) -> None:
            truth[i] = 1
            how = run % 3
            if how == 0:
                inner.invalidate(i)
            elif how == 1:
                cacheplug.invalidate(tags=[f"item:{i}"])
            else:
                cacheplug.invalidate(keys=[inner.cache_key(i)])

        assert race(lambda i=i: outer(i), gate, change) == 0
        assert outer(i) == 10, f"run {run}: the dependent computed from the old dependency was stored"
    assert cache.stats()["stale_sets"] - stale_sets == RUNS


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_declared_dependency_invalidated_while_the_dependent_computes(
    opened: Callable[..., Cache], kind: str
) -> None:
    cache = opened(kind)
    gate = Gate()
    truth = {"profiles": 0}

    @cached(cache=cache, tags=["user:{user_id}"])
    def profile(user_id: int) -> int:
        return truth["profiles"]

    @cached(cache=cache, depends_on=[profile])
    def dashboard(i: int) -> int:
        value = truth["profiles"]
        gate.check(("dashboard", i))
        return value

    stale_sets = cache.stats()["stale_sets"]
    for run in range(RUNS):
        i = run
        gate.arm(("dashboard", i))
        before = truth["profiles"]

        def change(run: int = run) -> None:
            truth["profiles"] += 1
            how = run % 3
            if how == 0:
                profile.invalidate(run)  # any entry of profile, by its arguments
            elif how == 1:
                cacheplug.invalidate(tags=[f"user:{run}"])  # a tag profile's template produces
            else:
                profile.cache_clear()

        assert race(lambda i=i: dashboard(i), gate, change) == before
        assert dashboard(i) == before + 1, (
            f"run {run}: the dependent computed before the invalidation was stored"
        )
    assert cache.stats()["stale_sets"] - stale_sets == RUNS


class _PausingMirror(dict[str, int]):
    """A version mirror that stops a chosen bump of a tag in the middle of recording it."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag
        self.armed = False
        self.paused, self.go = threading.Event(), threading.Event()

    def _maybe_pause(self, tag: str) -> None:
        if self.armed and tag == self.tag and threading.current_thread().name == "second-bump":
            self.armed = False
            self.paused.set()
            self.go.wait(10)

    def pop(self, tag: str, *default: Any) -> Any:
        found = super().pop(tag, *default)
        self._maybe_pause(tag)  # where the old code took the tag out to re-insert it
        return found

    def __setitem__(self, tag: str, version: int) -> None:
        self._maybe_pause(tag)
        super().__setitem__(tag, version)


def test_a_second_invalidation_in_flight_never_unhides_what_the_first_invalidated() -> None:
    """The stale read the threaded stress test caught under load: a fill that computed before an
    invalidation of its tag was stored as fresh while another invalidation of the same tag was
    half recorded (the tag briefly missing from the mirror), and served to a reader that began
    after the first invalidation returned."""
    with Cache([MemoryTier()]) as cache:
        mirror = _PausingMirror("item:41")
        cache.versions.mirror = mirror
        truth = [78]
        read, finish = threading.Event(), threading.Event()
        got: list[int] = []

        def compute() -> int:
            value = truth[0]
            read.set()
            finish.wait(10)
            return value

        filler = threading.Thread(
            target=lambda: got.append(cache.get_or_compute("page:41", compute, tags=["item:41"]))
        )
        filler.start()
        assert read.wait(10)
        truth[0] = 79
        cache.invalidate(tags=["item:41"])  # returned: every read from now on must see >= 79
        announced = truth[0]

        def second() -> None:
            truth[0] = 80
            cache.invalidate(tags=["item:41"])

        mirror.armed = True
        bumper = threading.Thread(target=second, name="second-bump")
        bumper.start()
        try:
            assert mirror.paused.wait(10)
            finish.set()
            filler.join(10)
            assert got == [78]  # the racing caller gets its own (old) value back
            served = cache.get_or_compute("page:41", lambda: truth[0], tags=["item:41"])
            assert served >= announced, f"served {served} after {announced} was invalidated"
        finally:
            mirror.go.set()
            bumper.join(10)
