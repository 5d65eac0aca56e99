"""The one compute flow: its sync and async drivers, async tiers, and the fast path's miss.

(a) The same table of scenarios runs over a sync function on the sync driver (the general
path), the same function on its generated fast path, and an async twin on the async
driver; results, counters and the stored entries (memory and disk) must be the same.
(b) The async driver awaits a tier's ``aget``/``aset``/``adelete``; the sync one calls
``get``/``set``/``delete``.
(c) The fast path's memory-only miss (``miss_begin``/``miss_end``) stores what the general
flow stores: the same tags, ttl and ``seq``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import cacheplug.drivers
from cacheplug import Cache, DiskTier, Entry, MemoryTier, cached
from cacheplug import invalidation as inv
from cacheplug.envelope import MISS
from tests.conftest import FakeClock

TTL = 60.0


class Boom(Exception):
    """What the cached function raises for ``a == 13``."""


@dataclass
class World:
    """One cache over memory + disk, a cached ``f(a: int, b: str)`` and a way to call it.

    ``mode``: ``"general"`` (a sync function, every call on the general path: the sync
    driver), ``"fast"`` (the same, on its generated fast path) or ``"async"`` (an async
    function: the async driver).
    """

    mode: str
    cache: Cache
    disk: DiskTier
    clock: FakeClock
    calls: list[tuple[int, str]] = field(default_factory=list)
    during: list[Callable[[], None]] = field(default_factory=list)
    outcomes: list[Any] = field(default_factory=list)
    f: Any = None

    def call(self, a: int, b: str) -> Any:
        """Call ``f(a, b)`` the world's way; record the result (or the exception's type) and
        whether a computation is still capturing afterwards, in the caller's context."""
        if self.mode == "async":
            outcome = asyncio.run(self._acall(a, b))
        else:
            if self.mode == "general":
                self.cache.unbind_fast_paths()  # the next call takes the general path
            try:
                result: Any = self.f(a, b)
            except Boom:
                result = Boom
            outcome = (result, inv.CAPTURE.get() is None, len(inv.ACTIVE))
        self.outcomes.append(outcome)
        return outcome[0]

    async def _acall(self, a: int, b: str) -> Any:
        try:
            result: Any = await self.f(a, b)
        except Boom:
            result = Boom
        return (result, inv.CAPTURE.get() is None, len(inv.ACTIVE))

    def refresh(self, a: int, b: str) -> Any:
        result = asyncio.run(self.f.arefresh(a, b)) if self.mode == "async" else self.f.refresh(a, b)
        self.outcomes.append(("refreshed", result))
        return result

    def observation(self) -> dict[str, Any]:
        """Everything the two drivers must agree on."""
        stats = self.cache.stats()
        binding = self.f._self_core.binding(self.cache)
        memory = {k: _entry(e, self.clock) for k, e in binding.shelf.items()}
        disk = {}
        for key in sorted(self.disk.keys()):
            found = self.disk.get(key)
            if found is not MISS:
                assert found.incarnation == self.cache.versions.incarnation
                disk[key] = _entry(found, self.clock)
        counters = {k: stats[k] for k in ("hits", "misses", "tier_hits", "stale_sets", "entries")}
        return {
            "outcomes": self.outcomes,
            "calls": self.calls,
            "counters": counters,
            "memory": memory,
            "disk": disk,
            "info": tuple(self.f.cache_info()),
        }


def _entry(entry: Entry, clock: FakeClock) -> tuple[Any, ...]:
    ttl = None if entry.expires is None else entry.expires - entry.created
    return (entry.value, entry.tags, ttl, entry.created - clock(), entry.seq)


def _define(world: World, cache_if: Callable[[Any], bool] | None) -> None:
    calls, during = world.calls, world.during
    # version= gives both colours one stored key (their code differs) and keeps the closure
    # over these lists from making the function memory-only.
    options: dict[str, Any] = dict(
        cache=world.cache, ttl=TTL, tags=["item:{a}"], version="1", cache_if=cache_if
    )
    if world.mode == "async":

        @cached(**options)
        async def f(a: int, b: str) -> tuple[int, str, int]:
            calls.append((a, b))
            for action in during:
                action()
            if a == 13:
                raise Boom(a)
            return (a, b, len(calls))

    else:

        @cached(**options)
        def f(a: int, b: str) -> tuple[int, str, int]:
            calls.append((a, b))
            for action in during:
                action()
            if a == 13:
                raise Boom(a)
            return (a, b, len(calls))

    world.f = f


# -- the scenarios --------------------------------------------------------------------------


def _memory_hit(world: World) -> None:
    first = world.call(1, "x")
    assert world.call(1, "x") == first and len(world.calls) == 1


def _disk_hit_promoted(world: World) -> None:
    first = world.call(1, "x")
    assert world.cache.memory is not None
    world.cache.memory.clear()  # as in a new process: only the disk holds it
    assert world.call(1, "x") == first  # from disk, promoted to memory...
    assert world.call(1, "x") == first  # ...and served from memory
    assert len(world.calls) == 1


def _miss_stored_to_both(world: World) -> None:
    world.call(1, "x")
    world.call(2, "y")


def _refused_by_cache_if(world: World) -> None:
    world.call(1, "x")
    world.call(1, "x")
    assert len(world.calls) == 2


def _function_raises(world: World) -> None:
    assert world.call(13, "x") is Boom
    assert world.call(13, "x") is Boom
    assert world.call(1, "x") == (1, "x", 3)


def _refresh_replaces(world: World) -> None:
    world.call(1, "x")
    assert world.refresh(1, "x") == (1, "x", 2)
    assert world.call(1, "x") == (1, "x", 2)
    assert len(world.calls) == 2


def _invalidated_during_compute(world: World) -> None:
    world.during.append(lambda: world.cache.invalidate(tags=["item:1"]))
    assert world.call(1, "x") == (1, "x", 1)  # the caller gets it, the cache does not keep it
    world.during.clear()
    assert world.call(1, "x") == (1, "x", 2)
    assert world.call(1, "x") == (1, "x", 2)


@dataclass(frozen=True)
class Scenario:
    name: str
    run: Callable[[World], None]
    cache_if: Callable[[Any], bool] | None = None
    expect: Callable[[dict[str, Any]], None] = lambda seen: None


def _expect_stored(seen: dict[str, Any]) -> None:
    assert len(seen["memory"]) == 2 and len(seen["disk"]) == 2


def _expect_nothing_stored(seen: dict[str, Any]) -> None:
    assert seen["memory"] == {} and seen["disk"] == {}


def _expect_failures_not_stored(seen: dict[str, Any]) -> None:
    assert list(seen["memory"]) == [(1, "x")] and len(seen["disk"]) == 1
    # The failed computations stopped capturing: nothing is left capturing afterwards.
    assert all(captured_none and active == 0 for _, captured_none, active in seen["outcomes"])


def _expect_refreshed(seen: dict[str, Any]) -> None:
    (memory,) = seen["memory"].values()
    (disk,) = seen["disk"].values()
    assert memory[0] == disk[0] == (1, "x", 2)


def _expect_stale_set(seen: dict[str, Any]) -> None:
    assert seen["counters"]["stale_sets"] == 1
    (memory,) = seen["memory"].values()
    assert memory[0] == (1, "x", 2) and memory[4] == 1  # the second computation, after the bump


def _expect_disk_hit(seen: dict[str, Any]) -> None:
    assert seen["counters"]["tier_hits"]["disk"] == 1 and seen["counters"]["hits"] == 2


SCENARIOS = [
    Scenario("hit in memory", _memory_hit),
    Scenario("hit on disk, promoted to memory", _disk_hit_promoted, expect=_expect_disk_hit),
    Scenario("miss computed and stored to both", _miss_stored_to_both, expect=_expect_stored),
    Scenario(
        "cache_if refuses", _refused_by_cache_if, cache_if=lambda v: False, expect=_expect_nothing_stored
    ),
    Scenario("the function raises", _function_raises, expect=_expect_failures_not_stored),
    Scenario("refresh replaces the stored value", _refresh_replaces, expect=_expect_refreshed),
    Scenario("invalidated during the computation", _invalidated_during_compute, expect=_expect_stale_set),
]


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[[str, Scenario], World]]:
    opened: list[Any] = []

    def make(mode: str, scenario: Scenario) -> World:
        disk = DiskTier(tmp_path / mode)
        clock = FakeClock()
        cache = Cache([MemoryTier(), disk], clock=clock)
        opened.extend([cache, disk])
        world = World(mode, cache, disk, clock)
        _define(world, scenario.cache_if)
        return world

    yield make
    for thing in opened:
        thing.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_sync_and_async_drivers_agree(
    scenario: Scenario, make_world: Callable[[str, Scenario], World], monkeypatch: pytest.MonkeyPatch
) -> None:
    general_calls: list[Any] = []
    original = cacheplug.drivers._Core.call

    def counting_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        general_calls.append(args[1])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cacheplug.drivers._Core, "call", counting_call)
    seen = {}
    for mode in ("general", "fast", "async"):
        world = make_world(mode, scenario)
        before = len(general_calls)
        scenario.run(world)
        general = len(general_calls) - before
        if mode == "general":
            assert general == len(world.outcomes) - sum(o[0] == "refreshed" for o in world.outcomes)
        elif mode == "fast":
            assert general == 1, "only the first call binds the fast path through the general path"
        seen[mode] = world.observation()
    scenario.expect(seen["general"])
    assert seen["fast"] == seen["general"]
    assert seen["async"] == seen["general"]


# -- (b) an async tier's methods are awaited ----------------------------------------------


class AsyncDisk:
    """A real tier with native async methods: a DiskTier, run in a worker thread when awaited.

    Records which of its methods were used.
    """

    name = "async-disk"
    shared = True

    def __init__(self, disk: DiskTier) -> None:
        self.disk = disk
        self.used: list[str] = []

    def versions(self) -> Any:
        return self.disk.versions()

    def get(self, key: str) -> Entry | Any:
        self.used.append("get")
        return self.disk.get(key)

    def set(self, key: str, entry: Entry, expire: float | None = None) -> None:
        self.used.append("set")
        self.disk.set(key, entry, expire)

    def delete(self, key: str) -> bool:
        self.used.append("delete")
        return self.disk.delete(key)

    def clear(self) -> None:
        self.disk.clear()

    def close(self) -> None:
        self.disk.close()

    async def aget(self, key: str) -> Entry | Any:
        self.used.append("aget")
        return await asyncio.to_thread(self.disk.get, key)

    async def aset(self, key: str, entry: Entry, expire: float | None = None) -> None:
        self.used.append("aset")
        await asyncio.to_thread(self.disk.set, key, entry, expire)

    async def adelete(self, key: str) -> bool:
        self.used.append("adelete")
        return await asyncio.to_thread(self.disk.delete, key)


def test_the_async_driver_awaits_an_async_tier_and_the_sync_one_calls_it(
    clock: FakeClock, disk_dir: Path
) -> None:
    tier = AsyncDisk(DiskTier(disk_dir))
    calls: list[str] = []
    with Cache([MemoryTier(), tier], clock=clock) as cache:
        assert cache.memory is not None

        @cached(cache=cache, tags=["item:{a}"])
        async def fetch(a: int, b: str) -> str:
            calls.append("fetch")
            return b * a

        @cached(cache=cache, tags=["item:{a}"])
        def compute(a: int, b: str) -> str:
            calls.append("compute")
            return b * a

        async def async_calls() -> None:
            assert await fetch(2, "x") == "xx"  # miss: aget, then aset
            cache.memory.clear()
            assert await fetch(2, "x") == "xx"  # disk hit: aget
            cache.invalidate(tags=["item:2"])
            assert await fetch(2, "x") == "xx"  # stale on disk: aget, adelete, then aset

        asyncio.run(async_calls())
        assert calls == ["fetch", "fetch"]
        assert tier.used == ["aget", "aset", "aget", "aget", "adelete", "aset"]

        tier.used.clear()
        assert compute(3, "y") == "yyy"  # miss: get, then set
        cache.memory.clear()
        assert compute(3, "y") == "yyy"  # disk hit
        cache.invalidate(tags=["item:3"])
        assert compute(3, "y") == "yyy"  # stale on disk
        assert calls[2:] == ["compute", "compute"]
        assert tier.used == ["get", "set", "get", "get", "delete", "set"]
    tier.close()


# -- (c) the fast path's memory-only miss stores what the general flow stores --------------


@dataclass(frozen=True)
class MissCase:
    name: str
    options: dict[str, Any]
    before: Callable[[Cache], None] = lambda cache: None
    captures: bool = False
    lean: str = ""  # the inlined memory-only miss ("inline", or "lean_end" when it hands over)


MISS_CASES = [
    MissCase("untagged, default ttl", {}, lean="inline"),
    MissCase("untagged, a ttl", {"ttl": 30}, lean="inline"),
    MissCase("untagged, after the epoch moved", {}, lambda c: c.invalidate(tags=["x"]), lean="inline"),
    MissCase("untagged, captured dependency", {}, captures=True, lean="lean_end"),
    MissCase("tag templates and a ttl", {"tags": ["item:{a}", "name:{b}"], "ttl": 30}),
    MissCase("tags from a callable", {"tags": lambda a, b: [f"t:{a}{b}"], "ttl": 5}),
    MissCase("cache_if accepts", {"cache_if": lambda v: True, "ttl": 10}),
    MissCase(
        "after invalidations moved the epoch", {"tags": ["item:{a}"]}, lambda c: c.invalidate(tags=["x"])
    ),
    MissCase("captured dependency", {"tags": ["item:{a}"]}, captures=True),
]


def _stored_by(
    general: bool, case: MissCase, monkeypatch: pytest.MonkeyPatch
) -> tuple[tuple[Any, ...], list[str]]:
    """Store ``f(1, "x")`` by a miss on the fast path (or on the general path); return the
    entry's value, tags, ttl, ``seq`` and creation time, and the paths the call took."""
    paths: list[str] = []
    core_type = cacheplug.drivers._Core
    with monkeypatch.context() as patched:
        # Before decoration: the generated fast path holds the bound ``miss_begin`` it was built with.
        for name in ("call", "miss_begin", "lean_end"):
            original = getattr(core_type, name)

            def spy(self: Any, *args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
                paths.append(_name)
                return _original(self, *args, **kw)

            patched.setattr(core_type, name, spy)
        clock = FakeClock()
        with Cache([MemoryTier()], clock=clock, default_ttl=120) as cache:

            @cached(cache=cache, tags=["inner:{a}"])
            def inner(a: int) -> int:
                return a

            @cached(cache=cache, **case.options)
            def f(a: int, b: str) -> tuple[int, str]:
                if case.captures:
                    inner(a)
                return (a, b)

            core = f._self_core
            f(0, "bind")  # the first call binds the fast path (through the general path)
            case.before(cache)
            if general:
                cache.unbind_fast_paths()
            paths.clear()
            assert f(1, "x") == (1, "x")
            entry = core.binding(cache).shelf[(1, "x")]
            ttl = None if entry.expires is None else entry.expires - entry.created
            stored = (entry.value, entry.tags, ttl, entry.seq, entry.created - clock(), cache.epoch[0])
    return stored, paths


@pytest.mark.parametrize("case", MISS_CASES, ids=[c.name for c in MISS_CASES])
def test_the_fast_path_miss_stores_what_the_general_flow_stores(
    case: MissCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, fast_paths = _stored_by(False, case, monkeypatch)
    general, general_paths = _stored_by(True, case, monkeypatch)
    if case.lean == "inline":
        assert fast_paths == [], "the inlined memory-only miss was not taken"
    elif case.lean:
        # (the inner function's own miss may show up: it has tag templates)
        assert fast_paths[-1] == case.lean and "call" not in fast_paths, "the inlined miss did not hand over"
    else:
        assert fast_paths[0] == "miss_begin" and "call" not in fast_paths, "the fast-path miss was not taken"
    assert "call" in general_paths, "the general flow was not taken"
    assert fast == general
    assert fast[2] == case.options.get("ttl", 120)
    if case.captures:
        assert "inner:1" in fast[1]


# -- no stale set when an invalidation could not be recorded --------------------------------

NOBODY = 65534


def test_a_computation_racing_an_invalidation_that_failed_closed_is_not_served() -> None:
    """As ``nobody`` over a read-only version store (root ignores permission bits)."""
    import os
    import shutil
    import tempfile

    from cacheplug import InvalidationError
    from cacheplug.versions import HostVersions
    from tests.versions_support import in_child

    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    base = tempfile.mkdtemp(prefix="cacheplug-flow-ro-", dir="/tmp")
    os.chown(base, NOBODY, NOBODY)

    def body() -> None:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        directory = os.path.join(base, "versions")
        writer = HostVersions(directory)
        writer.bump(["a"])
        writer.close()
        for folder in (directory, os.path.join(directory, "journal")):
            os.chmod(folder, 0o500)
        store = HostVersions(directory)
        assert not store.writable
        clock = FakeClock()
        calls: list[int] = []
        with Cache([MemoryTier()], clock=clock, versions=store) as cache:

            @cached(cache=cache, tags=["item:{a}"], version="1")
            def f(a: int, b: str) -> int:
                calls.append(a)
                clock.advance(1)  # the computation reads item 1 here...
                if len(calls) == 1:
                    with pytest.raises(InvalidationError):
                        cache.invalidate(tags=["item:1"])  # ...which is written meanwhile
                clock.advance(1)
                return len(calls)

            assert f(1, "x") == 1
            clock.advance(1)
            # The invalidation failed closed: nothing read before it may be served.
            assert f(1, "x") == 2, "the value computed across the failed invalidation was served"
        store.close()

    try:
        assert in_child(body) == ""
    finally:
        shutil.rmtree(base, ignore_errors=True)
