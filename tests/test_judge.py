"""One freshness judge, and the fast path is its only other copy.

Every case of the table puts an entry of ``f(1, "x")`` in the function's memory shelf (by a
real call, then by changing the world around it: the clock, invalidations, the version
store), then asks the judge (``cache.judge.verdict`` and ``cache.live``, on a detached
twin of the entry so that the question changes nothing) and makes the same call through
the generated fast path of ``@cached def f(a: int, b: str)``. They must agree: the verdict
is ``FRESH`` exactly when the call is a hit (the function is not called).
"""

from __future__ import annotations

import os
import shutil
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


def _define(world: World, captures: bool) -> None:
    calls = world.calls
    # Over two caches, the functions run in the current one (cacheplug.configure).
    cache = world.cache if world.other is None else None
    inner = None
    if captures:

        @cached(cache=cache, tags=["inner:{a}"])
        def inner(a: int) -> int:
            return a * 100

    @cached(cache=cache, ttl=TTL, tags=["item:{a}"])
    def f(a: int, b: str) -> tuple[int, str, int]:
        calls.append((a, b))
        extra = inner(a) if inner is not None else 0
        return (a, b, len(calls) + extra)

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


@dataclass(frozen=True)
class Case:
    name: str
    arrange: Callable[[World], None]
    expected: Verdict
    store: str = "local"  # "local", "host" (a HostVersions) or "rebuilt" (one with a floor)
    captures: bool = False
    shortcut: bool = False  # the fast path must accept it by the function's shortcut alone
    stored_elsewhere: bool = False  # stored through another cache over the same MemoryTier


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
]


@pytest.fixture
def make_world(tmp_path: Path, clock: FakeClock) -> Iterator[Callable[[Case], World]]:
    opened: list[Any] = []

    def make(case: Case) -> World:
        store: HostVersions | None = None
        if case.store == "host":
            store = HostVersions(str(tmp_path / "versions"))
        elif case.store == "rebuilt":
            store = _rebuilt_store(tmp_path / "versions")
        cache = Cache([MemoryTier()], clock=clock, versions=store)
        opened.extend([cache, *([store] if store is not None else [])])
        world = World(cache, clock, tmp_path, store)
        if case.stored_elsewhere:
            assert cache.memory is not None
            world.other = Cache([cache.memory], clock=clock)
            opened.append(world.other)
        _define(world, case.captures)
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
    assert cache.live(_twin(entry), now) is (verdict is Verdict.FRESH)

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the call left the generated fast path")

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
    assert hit is (verdict is Verdict.FRESH), (
        f"judge says {verdict}, the fast path {'hit' if hit else 'missed'}"
    )
    if hit:
        assert result == first
    if case.shortcut:
        assert rechecks == [], "the function's shortcut alone should have accepted the entry"


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
