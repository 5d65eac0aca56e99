"""One freshness judge, and the fast path is its only other copy.

Every case of the table puts an entry of ``f(1, "x")`` in the function's memory shelf (by a
real call, then by changing the world around it: the clock, invalidations, the version
store), then asks the judge (``cache.judge.verdict`` and ``cache.live``, on a detached
twin of the entry so that the question changes nothing) and makes the same call through
the generated fast path of ``@cached def f(a: int, b: str)``. They must agree: the verdict
is ``FRESH`` exactly when the call is a hit (the function is not called).

With freshness options (``stale_ttl=``, ``stale_if_error=``, ``early_refresh=``) the call
is served without computing exactly when the verdict is ``FRESH``, ``REFRESH`` or
``STALE``, and one background refresh follows exactly for ``REFRESH`` and ``STALE``; the
fast path serves alone what is fresh before its deadline (``refresh_from``). The XFetch
draw is scripted (``Cache(random=...)``) and the computation takes ``compute`` seconds of
the fake clock, so ``δ`` is known.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import cacheplug
from cacheplug import Cache, DiskTier, Entry, MemoryTier, cached
from cacheplug.cache.judge import Verdict
from cacheplug.versions import HostVersions, VersionsUnavailable
from tests.conftest import FakeClock

TTL = 60.0
ARGS = (1, "x")


@dataclass
class World:
    """A cache, its clock, the cached function ``f`` and the calls it made."""

    cache: Cache
    clock: FakeClock
    path: Path
    store: HostVersions | None = None
    calls: list[tuple[int, str]] = field(default_factory=list)
    background: list[tuple[int, str]] = field(default_factory=list)  # computed off the caller's thread
    f: Any = None
    inner: Any = None
    other: Cache | None = None  # another cache over the same MemoryTier (shared storage)

    @property
    def core(self) -> Any:
        return self.f._self_core

    def entry(self) -> Entry:
        """The entry of ``f(1, "x")`` in the function's memory shelf."""
        bound = self.core.bound
        assert bound is not None and bound[0] is self.cache, "the fast path is not bound to the cache"
        found: Entry = bound[1].shelf[ARGS]
        return found


def _define(world: World, case: Case) -> None:
    calls, background, clock = world.calls, world.background, world.clock
    captures, options, compute = case.captures, case.options, case.compute
    # Over two caches, the functions run in the current one (cacheplug.configure).
    cache = world.cache if world.other is None else None
    inner = None
    if captures:

        @cached(cache=cache, tags=["inner:{a}"])
        def inner(a: int) -> int:
            return a * 100

    @cached(cache=cache, ttl=TTL, tags=["item:{a}"], **options)
    def f(a: int, b: str) -> tuple[int, str, int]:
        main = threading.current_thread() is threading.main_thread()
        (calls if main else background).append((a, b))
        clock.advance(compute)
        extra = inner(a) if inner is not None else 0
        return (a, b, len(calls) + len(background) + extra)

    world.f, world.inner = f, inner


def _rebuilt_store(directory: Path) -> HostVersions:
    """A host store whose corrupt journal was rebuilt: it has a floor above every old entry."""
    store = HostVersions(str(directory))
    for i in range(5):
        store.bump([f"t{i}"])
    store.close()
    for suffix in ("-wal", "-shm"):
        (directory / "journal" / f"journal.db{suffix}").unlink(missing_ok=True)
    (directory / "journal" / "journal.db").write_bytes(os.urandom(8192))
    rebuilt = HostVersions(str(directory))
    assert rebuilt.floor > 5, rebuilt.floor
    return rebuilt


# -- what each case does to the world after f(1, "x") was stored ------------------------------


def _nothing(world: World) -> None:
    pass


def _at_deadline(world: World) -> None:
    world.clock.advance(TTL)


def _after_deadline(world: World) -> None:
    world.clock.advance(TTL + 0.001)


def _unrelated_tag(world: World) -> None:
    # The first epoch move after binding is judged entry by entry (the shortcut has not
    # looked at any invalidation yet); from the next one on, an invalidation outside f's
    # signature is accepted by the shortcut alone.
    world.cache.invalidate(tags=["unrelated:0"])
    assert world.f(*ARGS) and len(world.calls) == 1
    world.cache.invalidate(tags=["unrelated:1"])


def _sibling_tag(world: World) -> None:
    world.cache.invalidate(tags=["item:2"])  # f's tag family: the entry's own tags decide


def _own_tag(world: World) -> None:
    world.cache.invalidate(tags=["unrelated"])
    world.cache.invalidate(tags=["item:1"])


def _below_floor(world: World) -> None:
    store = world.store
    assert store is not None
    entry = world.entry()
    planted = Entry(entry.value, world.clock(), world.clock() + TTL, store.floor - 1, entry.tags)
    binding = world.core.bound[1]
    assert world.cache.memory is not None
    world.cache.memory.put(binding.shelf, ARGS, planted)


def _store_unreadable(world: World) -> None:
    store = world.store
    assert store is not None
    shutil.rmtree(store.directory)
    Path(store.directory).write_text("in the way")
    with pytest.raises(VersionsUnavailable):
        store.check()  # what the store's watcher does about once a second
    with pytest.raises(VersionsUnavailable):
        store.sync()


def _captured_dependency(world: World) -> None:
    tags = world.entry().tags
    assert "inner:1" in tags, "f(1, 'x') read inner(1): its entry carries inner's tags"
    world.cache.invalidate(tags=["inner:1"])  # outside f's signature (its own tag templates)


def _captured_dependency_after_priming(world: World) -> None:
    # As _unrelated_tag: from the second epoch move on, the function's shortcut decides.
    world.cache.invalidate(tags=["unrelated:0"])
    assert world.f(*ARGS) and len(world.calls) == 1
    _captured_dependency(world)


def _later(seconds: float, then: Callable[[World], None] = _nothing) -> Callable[[World], None]:
    """Do ``then``, then move the clock ``seconds`` past the entry's creation."""

    def arrange(world: World) -> None:
        then(world)
        world.clock.advance(seconds)

    return arrange


COMPUTE = 0.05  # seconds of the fake clock an early-refreshed computation takes: δ
AHEAD = 10 * COMPUTE  # refresh_from = expiry - 10·δ·β, β = 1
EARLY = {"early_refresh": True}
STALE_TTL = {"stale_ttl": 30.0}
STALE_IF_ERROR = {"stale_if_error": 30.0}
LATER, NOW = 0.0, 0.999999  # draws: -ln(1 - 0) = 0 (not yet), -ln(1e-6) ≈ 13.8 (recompute now)


@dataclass(frozen=True)
class Case:
    name: str
    arrange: Callable[[World], None]
    expected: Verdict
    store: str = "local"  # "local", "host" (a HostVersions) or "rebuilt" (one with a floor)
    captures: bool = False
    shortcut: bool = False  # the fast path must accept it by the function's shortcut alone
    stored_elsewhere: bool = False  # stored through another cache over the same MemoryTier
    options: dict[str, Any] = field(default_factory=dict)  # freshness options of f
    compute: float = 0.0  # fake seconds f takes
    draw: float = LATER  # what the cache's random source returns
    alone: bool = True  # a FRESH verdict is served by the fast path alone (before the deadline)


CASES = [
    Case("fresh", _nothing, Verdict.FRESH),
    Case("expired exactly at the deadline", _at_deadline, Verdict.EXPIRED),
    Case("expired after the deadline", _after_deadline, Verdict.EXPIRED),
    Case("epoch moved, an unrelated tag invalidated", _unrelated_tag, Verdict.FRESH, shortcut=True),
    Case("epoch moved, another tag of its family invalidated", _sibling_tag, Verdict.FRESH),
    Case("epoch moved, one of its tags invalidated", _own_tag, Verdict.INVALIDATED),
    Case("below the version store's floor", _below_floor, Verdict.INVALIDATED, store="rebuilt"),
    Case("version store unreadable", _store_unreadable, Verdict.UNKNOWN, store="host"),
    Case(
        "captured dependency outside the signature",
        _captured_dependency,
        Verdict.INVALIDATED,
        captures=True,
    ),
    Case(
        "captured dependency, after the shortcut was primed",
        _captured_dependency_after_priming,
        Verdict.INVALIDATED,
        captures=True,
    ),
    Case(
        "captured dependency stored through another cache over the memory tier",
        _captured_dependency_after_priming,
        Verdict.INVALIDATED,
        captures=True,
        stored_elsewhere=True,
    ),
    # -- freshness options: the judge's late verdicts --------------------------------------
    Case("early refresh, far from expiry", _later(1.0), Verdict.FRESH, options=EARLY, compute=COMPUTE),
    Case(
        "early refresh, past refresh_from, the draw says not yet",
        _later(TTL - AHEAD / 2),
        Verdict.FRESH,
        options=EARLY,
        compute=COMPUTE,
        alone=False,
    ),
    Case(
        "early refresh, past refresh_from, the draw says now",
        _later(TTL - AHEAD / 2),
        Verdict.REFRESH,
        options=EARLY,
        compute=COMPUTE,
        draw=NOW,
    ),
    Case(
        "early refresh, just before refresh_from, whatever the draw",
        _later(TTL - AHEAD - 0.01),
        Verdict.FRESH,
        options=EARLY,
        compute=COMPUTE,
        draw=NOW,
    ),
    Case(
        "early refresh, past refresh_from, one of its tags invalidated",
        _later(TTL - AHEAD / 2, _own_tag),
        Verdict.INVALIDATED,
        options=EARLY,
        compute=COMPUTE,
        draw=NOW,
    ),
    Case("early refresh, expired", _later(TTL), Verdict.EXPIRED, options=EARLY, compute=COMPUTE),
    Case("stale_ttl, before expiry", _later(TTL - 1), Verdict.FRESH, options=STALE_TTL),
    Case("stale_ttl, expired, within the window", _later(TTL + 1), Verdict.STALE, options=STALE_TTL),
    Case("stale_ttl, at the window's end", _later(TTL + 30), Verdict.EXPIRED, options=STALE_TTL),
    Case(
        "stale_ttl, within the window, one of its tags invalidated",
        _later(TTL + 1, _own_tag),
        Verdict.INVALIDATED,
        options=STALE_TTL,
    ),
    Case(
        "stale_ttl, within the window, version store unreadable",
        _later(TTL + 1, _store_unreadable),
        Verdict.UNKNOWN,
        store="host",
        options=STALE_TTL,
    ),
    Case("stale_if_error, within the window", _later(TTL + 1), Verdict.FALLBACK, options=STALE_IF_ERROR),
    Case(
        "stale_if_error, within the window, one of its tags invalidated",
        _later(TTL + 1, _own_tag),
        Verdict.INVALIDATED,
        options=STALE_IF_ERROR,
    ),
    Case("stale_if_error, after the window", _later(TTL + 31), Verdict.EXPIRED, options=STALE_IF_ERROR),
    Case(
        "stale_ttl and stale_if_error, after stale_ttl, within stale_if_error",
        _later(TTL + 10),
        Verdict.FALLBACK,
        options={"stale_ttl": 5.0, "stale_if_error": 30.0},
    ),
]

# Served without computing in the caller's thread; and followed by one background refresh.
SERVED = {Verdict.FRESH, Verdict.REFRESH, Verdict.STALE}
REFRESHED = {Verdict.REFRESH, Verdict.STALE}


@pytest.fixture
def make_world(tmp_path: Path, clock: FakeClock) -> Iterator[Callable[[Case], World]]:
    opened: list[Any] = []

    def make(case: Case) -> World:
        store: HostVersions | None = None
        if case.store == "host":
            store = HostVersions(str(tmp_path / "versions"))
        elif case.store == "rebuilt":
            store = _rebuilt_store(tmp_path / "versions")
        cache = Cache([MemoryTier()], clock=clock, versions=store, random=lambda: case.draw)
        opened.extend([cache, *([store] if store is not None else [])])
        world = World(cache, clock, tmp_path, store)
        if case.stored_elsewhere:
            assert cache.memory is not None
            world.other = Cache([cache.memory], clock=clock)
            opened.append(world.other)
        _define(world, case)
        return world

    yield make
    for thing in opened:
        thing.close()


def _twin(entry: Entry) -> Entry:
    """A detached copy the judge may update (``seq``) without changing the stored entry."""
    twin = entry.copy_for()
    twin.shelf, twin.fkey, twin.skey = entry.shelf, entry.fkey, entry.skey
    return twin


def _name(case: Any) -> str:
    return str(case.values[0].name if hasattr(case, "values") else case.name)


@pytest.mark.parametrize("case", CASES, ids=[_name(c) for c in CASES])
def test_the_judge_and_the_fast_path_agree(
    case: Case, make_world: Callable[[Case], World], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(case)
    cache = world.cache
    if world.other is not None:
        cacheplug.configure(world.other)
        first = world.f(*ARGS)  # stored through the other cache...
        cacheplug.configure(cache)
        if world.inner is not None:
            world.inner(ARGS[0])  # bound to this cache too: a recomputation of f stays on fast paths
    else:
        first = world.f(*ARGS)
    world.f(*ARGS)  # ...a hit: the fast path is bound to the cache from here on
    assert world.calls == [ARGS]
    case.arrange(world)
    if world.core.bound is None:
        world.f(9, "z")  # something sent the fast path through the general path: rebind it
    entry = world.entry()
    now = world.clock()

    verdict = cache.judge.verdict(_twin(entry), now)
    assert verdict is case.expected
    assert cache.live(_twin(entry), now) is (verdict in (Verdict.FRESH, Verdict.REFRESH))

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the call left the generated fast path")

    # Without freshness options every call stays on the fast path (a miss computes there);
    # with them, only a hit before the entry's deadline does.
    if not case.options or (verdict is Verdict.FRESH and case.alone):
        monkeypatch.setattr(cache, "lookup", forbidden)
        monkeypatch.setattr(cache.tiering, "find", forbidden)
    rechecks: list[Entry] = []
    recheck = cache.judge.recheck

    def counting_recheck(e: Entry) -> Verdict:
        rechecks.append(e)
        return recheck(e)

    monkeypatch.setattr(cache.judge, "recheck", counting_recheck)
    before = len(world.calls)
    result = world.f(*ARGS)
    hit = len(world.calls) == before
    assert hit is (verdict in SERVED), f"judge says {verdict}, the fast path {'hit' if hit else 'missed'}"
    if hit:
        assert result == first
    if case.shortcut:
        assert rechecks == [], "the function's shortcut alone should have accepted the entry"
    assert cache.background.wait(10)
    assert len(world.background) == (1 if verdict in REFRESHED else 0), world.background


def test_a_shared_tier_entry_of_another_incarnation_is_invalidated(clock: FakeClock, disk_dir: Path) -> None:
    """``verdict(shared=True)``: an entry judged against a store since rebuilt is not served."""
    disk = DiskTier(disk_dir)
    calls: list[int] = []
    with Cache([MemoryTier(), disk], clock=clock) as cache:

        @cached(cache=cache, ttl=TTL)
        def f(a: int, b: str) -> tuple[int, int]:
            calls.append(a)
            return (a, len(calls))

        assert f(*ARGS) == (1, 1)
        skey = f.cache_key(*ARGS)
        stored = disk.get(skey)
        assert stored.incarnation == cache.versions.incarnation
        assert cache.judge.verdict(stored, clock(), shared=True) is Verdict.FRESH

        foreign = stored.copy_for()
        foreign.incarnation = "a-store-rebuilt-since"
        disk.set(skey, foreign)
        read_back = disk.get(skey)
        assert cache.judge.verdict(read_back, clock(), shared=True) is Verdict.INVALIDATED
        # Memory entries are judged by this process's store only: no incarnation to compare.
        assert cache.judge.verdict(disk.get(skey), clock()) is Verdict.FRESH

        assert cache.memory is not None
        cache.memory.clear()  # the next call reads the disk row
        assert f(*ARGS) == (1, 2), "the foreign disk entry must not be served"
        assert disk.get(skey).incarnation == cache.versions.incarnation
    disk.close()
