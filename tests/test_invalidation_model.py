"""A Hypothesis state machine holds cacheplug to a model: a dict with TTLs, tags and dependencies.

The model knows, for every key, the value stored and what it depends on (its tags, its key,
its function, what it read while computing). Invalidations remove every model entry that
depends on what they name; the clock is a fake one both share. Each step checks the cache
against the model: a call returns the model's value when the model has one (a hit), and
computes otherwise -- never an invalidated or expired value, never a needless recomputation.

Eviction from a small memory tier is the one thing the model does not predict: once the
memory tier of a memory-only cache evicted, every model entry *may* be gone (the cache may
recompute it) but may still never come back stale. With a disk tier under it nothing is lost.

Run against three tier configurations, 2,000 examples each, with a brand-new ``Cache`` over
the same directory (another process, as far as the data is concerned) as one of the steps.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import cacheplug
from cacheplug import Cache, DiskTier, MemoryTier, batch, cached

from .conftest import FakeClock
from .invalidation_support import KINDS

EXAMPLES = int(os.environ.get("CACHEPLUG_MODEL_EXAMPLES", "2000"))
STEPS = 10
MAX_ENTRIES = 16
MISSING = "<missing>"  # survives pickling through the disk tier

Marker = tuple[Any, ...]
XS = st.integers(0, 2)
KEYS = st.integers(0, 3)
FUNCTIONS = st.sampled_from(["inner", "outer", "dash"])
USER_TAGS = ["item:0", "item:1", "item:2", "page:0", "page:1", "page:2", "red", "blue", "cfg", "item"]
TTLS = {"inner": 4.0, "outer": 10.0, "dash": None}
_NAMESPACES = itertools.count()


@dataclass
class Stored:
    value: Any
    expires: float | None
    deps: frozenset[Marker]
    maybe_gone: bool = False  # a memory-only eviction may have dropped it


@dataclass
class Model:
    entries: dict[Any, Stored] = field(default_factory=dict)

    def fresh(self, ident: Any, now: float) -> Stored | None:
        found = self.entries.get(ident)
        if found is None or (found.expires is not None and found.expires <= now):
            return None
        return found

    def bump(self, markers: set[Marker]) -> None:
        for ident in [i for i, s in self.entries.items() if s.deps & markers]:
            del self.entries[ident]


def tag_markers(tags: list[str]) -> set[Marker]:
    """What invalidating user ``tags`` bumps: the tags, and the function-wide families they fall in."""
    out: set[Marker] = set()
    for tag in tags:
        out.add(("tag", tag))
        if tag.startswith("item:"):
            out.add(("family", "item:"))
    return out


class CacheMachine(RuleBasedStateMachine):
    def __init__(self, kind: str, disks: list[DiskTier]) -> None:
        super().__init__()
        self.kind = kind
        self.disks = disks
        self.opened = 0
        self.namespace = f"m{next(_NAMESPACES)}"
        self.clock = FakeClock()
        self.model = Model()
        self.tokens = itertools.count(1)
        self.log: list[tuple[str, int, int]] = []
        self.cache = self._open()
        self.evictions = 0
        self.functions = self._define()

    # -- the system under test ------------------------------------------------------------------

    def _open(self) -> Cache:
        # Each new cache gets a new memory tier and the other of two disk tiers opened over the
        # directory (another connection, as another process would have): opening a diskcache
        # per example would cost more than the example itself.
        tiers: list[Any] = []
        if self.kind != "disk":
            tiers.append(MemoryTier(max_entries=MAX_ENTRIES))
        if self.kind != "memory":
            tiers.append(self.disks[self.opened % len(self.disks)])
        self.opened += 1
        cache = Cache(tiers, clock=self.clock, namespace=self.namespace)
        cacheplug.configure(cache)  # the functions use the default cache
        return cache

    def _close(self) -> None:
        self.cache.close()

    def teardown(self) -> None:
        self._close()

    def _define(self) -> dict[str, Any]:
        log, tokens = self.log, self.tokens

        def computed(name: str, x: int) -> int:
            token = next(tokens)
            log.append((name, x, token))
            return token

        # version=: these close over the model's counters (unkeyable), which would keep them
        # memory-only; the model checks the shared tiers too.
        @cached(ttl=TTLS["inner"], tags=["item:{x}"], version="1")
        def inner(x: int) -> int:
            return computed("inner", x)

        @cached(ttl=TTLS["outer"], tags=["page:{x}"], version="1")
        def outer(x: int) -> tuple[int, int, Any]:
            # Reads another cached function and a direct key: both become dependencies.
            got_inner = inner(x)
            got_key = cacheplug.get_cache().get(f"k{x}", MISSING)
            return computed("outer", x), got_inner, got_key

        @cached(ttl=TTLS["dash"], depends_on=[inner, "cfg"], version="1")
        def dash(x: int) -> int:
            return computed("dash", x)

        @cached(ttl=None)
        def filler(n: int) -> int:
            return n

        return {"inner": inner, "outer": outer, "dash": dash, "filler": filler}

    # -- helpers ----------------------------------------------------------------------------------

    def _evicted_since(self) -> bool:
        if self.kind != "memory":
            return False
        assert self.cache.memory is not None
        now = self.cache.memory.evictions
        moved = now != self.evictions
        self.evictions = now
        if moved:
            for stored in self.model.entries.values():
                stored.maybe_gone = True
        return moved

    def _deps(self, name: str, x: int) -> set[Marker]:
        deps: set[Marker] = {("ns",), ("fn", name), ("key", (name, x))}
        if name == "inner":
            deps.add(("tag", f"item:{x}"))
        elif name == "outer":
            deps.add(("tag", f"page:{x}"))
        else:
            deps |= {("fn", "inner"), ("fa", "inner"), ("family", "item:"), ("tag", "cfg")}
        return deps

    def _expires(self, ttl: float | None) -> float | None:
        return None if ttl is None else self.clock() + ttl

    def _check_read(self, ident: Any, got: Any, computed_token: int | None, what: str) -> Stored | None:
        """Check one read against the model; return the model entry it now corresponds to."""
        expected = self.model.fresh(ident, self.clock())
        if computed_token is not None:
            assert got == computed_token, f"{what}: returned {got!r}, computed {computed_token!r}"
            assert expected is None or expected.maybe_gone, (
                f"{what}: recomputed although the model holds a fresh {expected!r}"
            )
            return None  # the caller records the new entry
        assert expected is not None, f"{what}: served {got!r} but the model has no fresh value"
        assert got == expected.value, f"{what}: served {got!r}, the model's fresh value is {expected.value!r}"
        expected.maybe_gone = False  # it was there: still there until the next eviction
        return expected

    # -- rules --------------------------------------------------------------------------------------

    @rule(k=KEYS, ttl=st.sampled_from([None, 1.0, 5.0]), tags=st.sets(st.sampled_from(["red", "blue"])))
    def set_key(self, k: int, ttl: float | None, tags: set[str]) -> None:
        token = next(self.tokens)
        self.cache.set(f"k{k}", token, ttl=ttl, tags=sorted(tags))
        deps = {("ns",), ("key", ("k", k))} | {("tag", t) for t in tags}
        self.model.entries[("k", k)] = Stored(token, self._expires(ttl), frozenset(deps))
        self._evicted_since()

    @rule(k=KEYS)
    def get_key(self, k: int) -> None:
        got = self.cache.get(f"k{k}", MISSING)
        self._evicted_since()
        expected = self.model.fresh(("k", k), self.clock())
        if got is MISSING:
            assert expected is None or expected.maybe_gone, f"get k{k}: missed a fresh {expected!r}"
            self.model.entries.pop(("k", k), None)
        else:
            self._check_read(("k", k), got, None, f"get k{k}")

    @rule(name=FUNCTIONS, x=XS, by_keyword=st.booleans())
    def call(self, name: str, x: int, by_keyword: bool) -> None:
        fn = self.functions[name]
        del self.log[:]
        got = fn(x=x) if by_keyword else fn(x)
        evicted = self._evicted_since()
        made = {(n, i): token for n, i, token in self.log}
        assert len(made) == len(self.log), f"computed twice in one call: {self.log}"
        if evicted:
            for stored in self.model.entries.values():
                stored.maybe_gone = True
        if name != "outer":
            if self._check_read((name, x), got, made.get((name, x)), f"{name}({x})") is None:
                deps = self._deps(name, x)
                self.model.entries[(name, x)] = Stored(got, self._expires(TTLS[name]), frozenset(deps))
            return
        own, got_inner, got_key = got
        if (("outer", x)) not in made:
            assert not made, f"outer({x}) was a hit but computed {made}"
            self._check_read(("outer", x), got, None, f"outer({x})")
            return
        self._check_read(("outer", x), own, made[("outer", x)], f"outer({x})")
        # The computation read inner(x) and k{x}: check those reads, then record the new entry.
        deps = self._deps("outer", x)
        inner_entry = self._check_read(
            ("inner", x), got_inner, made.get(("inner", x)), f"inner({x}) in outer"
        )
        if inner_entry is None:
            inner_deps = frozenset(self._deps("inner", x))
            inner_entry = Stored(got_inner, self._expires(TTLS["inner"]), inner_deps)
            self.model.entries[("inner", x)] = inner_entry
        deps |= inner_entry.deps
        key_entry = self.model.fresh(("k", x), self.clock())
        if got_key is MISSING:
            assert key_entry is None or key_entry.maybe_gone, f"outer({x}) missed a fresh k{x}"
            self.model.entries.pop(("k", x), None)
        else:
            key_entry = self._check_read(("k", x), got_key, None, f"k{x} in outer")
            assert key_entry is not None
            deps |= key_entry.deps
        self.model.entries[("outer", x)] = Stored(got, self._expires(TTLS["outer"]), frozenset(deps))

    @rule(tags=st.lists(st.sampled_from(USER_TAGS), min_size=1, max_size=2), how=st.integers(0, 3))
    def invalidate_tags(self, tags: list[str], how: int) -> None:
        if how == 0:
            cacheplug.invalidate(tags=tags)
        elif how == 1:
            self.cache.invalidate(tags=tags)
        elif how == 2:
            asyncio.run(cacheplug.ainvalidate(tags=tags))
        else:
            with batch():
                for tag in tags:
                    cacheplug.invalidate(tags=[tag])
        self.model.bump(tag_markers(tags))

    @rule(which=st.one_of(st.tuples(st.just("k"), KEYS), st.tuples(FUNCTIONS, XS)), by_call=st.booleans())
    def invalidate_key(self, which: tuple[str, int], by_call: bool) -> None:
        name, x = which
        if name == "k":
            self.cache.invalidate(keys=[f"k{x}"])
            self.model.bump({("key", ("k", x))})
        elif by_call:
            self.functions[name].invalidate(x)  # by arguments: the function-wide "any entry" tag too
            self.model.bump({("key", (name, x)), ("fa", name)})
        else:
            cacheplug.invalidate(keys=[self.functions[name].cache_key(x)])
            self.model.bump({("key", (name, x))})

    @rule(what=st.sampled_from(["inner", "outer", "dash", "cfg", "all"]))
    def invalidate_dependency(self, what: str) -> None:
        if what == "cfg":
            self.cache.invalidate(tags=["cfg"])
            self.model.bump({("tag", "cfg")})
        elif what == "all":
            self.cache.clear()
            self.model.bump({("ns",)})
        else:
            self.functions[what].cache_clear()
            self.model.bump({("fn", what), ("fa", what)})

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0, 6.0]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(count=st.integers(4, 12))
    def evict(self, count: int) -> None:
        base = next(self.tokens) * 100
        for n in range(count):
            self.functions["filler"](base + n)
        self._evicted_since()

    @precondition(lambda self: self.kind != "memory")
    @rule()
    def reopen(self) -> None:
        """A brand-new cache (new memory tier, new connection) over the same directory."""
        self._close()
        self.cache = self._open()
        self.evictions = 0

    @precondition(lambda self: self.kind == "memory")
    @rule()
    def reopen_memory(self) -> None:
        """A brand-new memory-only cache starts empty."""
        self._close()
        self.cache = self._open()
        self.evictions = 0
        self.model.entries.clear()

    @invariant()
    def nothing_refused_without_a_race(self) -> None:
        # Single-threaded: a store can only be refused when an invalidation raced it.
        assert self.cache.stats()["stale_sets"] == 0


SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_cache_agrees_with_the_model(kind: str, tmp_path: Path) -> None:
    disks = [DiskTier(tmp_path / "disk"), DiskTier(tmp_path / "disk")]
    try:
        run_state_machine_as_test(lambda: CacheMachine(kind, disks), settings=SETTINGS)
    finally:
        for disk in disks:
            disk.close()
