"""Usage learning (``Cache(learn=True)``): hit counts per entry, hot keys in bounded memory,
refresh-ahead so hot keys never miss, and a default hit path that does not change.

Ticks are driven by the test (``cache.learner.tick()`` then ``cache.background.wait()``) on a
fake clock; the learner's own ticker thread runs too, and a tick it adds does only what the
test's would (its decisions depend on the cache's clock alone).
"""

from __future__ import annotations

import asyncio
import dis
import gc
import os
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import cacheplug
from cacheplug import Cache, ConfigurationError, DiskTier, MemoryTier, cached
from cacheplug.hotkeys import HotKeys
from tests.conftest import FakeClock

WAIT = 10.0
TTL = 10.0


@pytest.fixture
def cache(clock: FakeClock) -> Iterator[Cache]:
    made = Cache([MemoryTier()], clock=clock, learn=True)
    yield made
    made.close()


def tick(cache: Cache) -> int:
    assert cache.learner is not None
    started = cache.learner.tick()
    assert cache.background.wait(WAIT)
    return started


# -- refresh-ahead ---------------------------------------------------------------------------


class Repo:
    """A method keyed without ``self``: its key cannot be turned back into the call."""

    def __init__(self) -> None:
        self.computed: list[int] = []

    @cached(ttl=TTL, ignore=("self",))
    def load(self, item: int) -> int:
        self.computed.append(item)
        return item


def _sync_page(cache: Cache, computed: list[int]) -> Callable[[int], int]:
    @cached(cache=cache, ttl=TTL)
    def page(item: int) -> int:
        computed.append(item)
        return item

    return page


def _general_path_page(cache: Cache, computed: list[int]) -> Callable[[int], int]:
    @cached(cache=cache, ttl=TTL)
    def page(item: int, *, lang: str = "en") -> int:  # keyword-only: the general path
        computed.append(item)
        return item

    return lambda item: page(item, lang="fr")


def _method_page(cache: Cache, computed: list[int]) -> Callable[[int], int]:
    cacheplug.configure(cache=cache)
    repo = Repo()
    repo.computed = computed
    return repo.load


def _async_page(cache: Cache, computed: list[int]) -> Callable[[int], int]:
    @cached(cache=cache, ttl=TTL)
    async def page(item: int) -> int:
        await asyncio.sleep(0)
        computed.append(item)
        return item

    return lambda item: asyncio.run(page(item))


@pytest.mark.parametrize("make", [_sync_page, _general_path_page, _method_page, _async_page])
def test_refresh_ahead_keeps_a_hot_key_hitting_over_ten_ttl_periods_while_a_cold_key_expires(
    cache: Cache, clock: FakeClock, make: Callable[[Cache, list[int]], Callable[[int], int]]
) -> None:
    computed: list[int] = []
    page = make(cache, computed)
    assert page(1) == 1 and page(2) == 2  # the hot key and the cold one, computed once each
    assert computed == [1, 2]
    hot_computed = []
    for _second in range(int(10 * TTL)):  # 10 TTL periods, a tick per second
        clock.advance(1)
        before = len(computed)
        for _ in range(3):
            assert page(1) == 1
        assert computed[before:] == [], "a call of the hot key computed: it missed"
        tick(cache)
        hot_computed += computed[before:]
    # The hot key was recomputed in the background once per lifetime of its entry (refreshed
    # 2 s before expiry: twice the tick period), never by a caller.
    assert 100 / TTL <= hot_computed.count(1) <= 100 / (TTL - 2) + 1
    assert cache.learner is not None and cache.learner.refreshes == hot_computed.count(1)
    # The cold key was never refreshed: it expired, and its next call computes.
    assert 2 not in hot_computed
    assert page(2) == 2 and computed[-1] == 2


def test_an_invalidated_hot_key_is_not_refreshed_ahead(cache: Cache, clock: FakeClock) -> None:
    computed: list[int] = []

    @cached(cache=cache, ttl=TTL, tags=["item:{item}"])
    def page(item: int) -> int:
        computed.append(item)
        return item

    for _ in range(5):
        page(1)
    tick(cache)
    cache.invalidate(tags=["item:1"])
    clock.advance(TTL - 1)  # within the lead: it would be refreshed, were it fresh
    assert tick(cache) == 0 and computed == [1]
    assert page(1) == 1 and computed == [1, 1]  # its next caller computes, as always


def test_a_key_whose_arguments_cannot_be_told_is_not_refreshed(cache: Cache, clock: FakeClock) -> None:
    computed: list[Any] = []

    @cached(cache=cache, ttl=TTL, key=lambda item: f"item-{item}")
    def page(item: int) -> int:
        computed.append(item)
        return item

    for _ in range(5):
        page(1)  # key= functions take the general path: their arguments are kept
    clock.advance(TTL - 1)
    assert tick(cache) == 1


# -- the hit path ----------------------------------------------------------------------------


def _counts_hits(function: Any) -> bool:
    """Whether the generated ``__call__`` of ``function`` writes ``entry.hits``."""
    code = type(function).__call__.__code__
    return any(i.opname == "STORE_ATTR" and i.argval == "hits" for i in dis.get_instructions(code))


def test_the_fast_path_counts_hits_only_when_the_cache_learns(clock: FakeClock) -> None:
    plain, learning = Cache([MemoryTier()], clock=clock), Cache([MemoryTier()], clock=clock, learn=True)

    @cached(cache=plain)
    def f(x: int) -> int:
        return x

    @cached(cache=learning)
    def g(x: int) -> int:
        return x

    for _ in range(4):
        assert f(1) == 1 and g(1) == 1
    assert not _counts_hits(f)  # the default hit path is generated without it
    assert _counts_hits(g)
    (entry_f,) = f._self_core.binding(plain).shelf.values()
    (entry_g,) = g._self_core.binding(learning).shelf.values()
    assert entry_f.hits == 0 and entry_g.hits == 3
    plain.close()
    learning.close()


def test_a_function_moving_between_caches_takes_the_matching_fast_path(clock: FakeClock) -> None:
    plain, learning = Cache([MemoryTier()], clock=clock), Cache([MemoryTier()], clock=clock, learn=True)

    @cached
    def f(x: int) -> int:
        return x * 2

    for cache, counts in ((learning, True), (plain, False), (learning, True)):
        cacheplug.configure(cache=cache)
        for _ in range(3):
            assert f(5) == 10
        assert _counts_hits(f) is counts
        (entry,) = f._self_core.binding(cache).shelf.values()
        assert (entry.hits >= 2) is counts and (counts or entry.hits == 0)
    plain.close()
    learning.close()


def test_the_general_path_counts_hits_when_the_cache_learns(cache: Cache) -> None:
    @cached(cache=cache)
    def f(x: int, *, y: int = 0) -> int:
        return x + y

    for _ in range(4):
        f(1, y=2)
    (entry,) = f._self_core.binding(cache).shelf.values()
    assert entry.hits == 3


# -- bounded memory --------------------------------------------------------------------------


def test_memory_stays_bounded_with_100000_distinct_keys_seen(clock: FakeClock) -> None:
    cache = Cache([MemoryTier(max_entries=1000)], clock=clock, learn=True)

    @cached(cache=cache, ttl=3600)
    def page(item: int) -> int:
        return item

    @cached(cache=cache, ttl=3600)
    def tagged(item: int, *, lang: str = "en") -> int:  # the general path: arguments are kept
        return item

    learner = cache.learner
    assert learner is not None
    counters = learner.keys.counters
    binding = tagged._self_core.binding(cache)
    assert binding.calls is not None
    sizes = []
    try:
        for chunk in range(100):
            if chunk == 80:  # traced from here on (tracing every call would take long)
                tracemalloc.start()
            for k in range(chunk * 1000, (chunk + 1) * 1000):
                page(k), page(k)  # a miss, then a hit: every key is seen by the learner
                if k % 5 == 0:  # 20,000 keys through the general path, whose arguments are kept
                    tagged(k, lang="fr"), tagged(k, lang="fr")
                page(-1)  # one hot key throughout
            clock.advance(1)
            tick(cache)
            assert len(binding.calls) <= 1000
            if chunk in (84, 99):
                gc.collect()
                sizes.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert len(learner.keys) <= learner.keys.capacity
    assert learner.keys.counters == counters  # the sketch never grows
    assert len(cache.memory or ()) <= 1000
    # 18,000 more distinct keys cost nothing that lasts: no dict of the keys seen (keeping
    # them would take over 1 MB).
    assert sizes[1] - sizes[0] < 256 * 1024, sizes
    hottest = learner.keys.hot()[0]
    assert hottest[0][1] == (-1,)
    cache.close()


# -- the knobs -------------------------------------------------------------------------------


def test_learning_is_off_by_default_and_cacheplug_learn_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Cache([MemoryTier()]).learner is None
    monkeypatch.setenv("CACHEPLUG_LEARN", "true")
    learning = Cache([MemoryTier()])
    assert learning.learner is not None
    assert Cache([MemoryTier()], learn=False).learner is None  # the argument first
    learning.close()
    monkeypatch.setenv("CACHEPLUG_LEARN", "perhaps")
    with pytest.raises(ConfigurationError, match="CACHEPLUG_LEARN='perhaps'"):
        Cache([MemoryTier()])


def test_learning_refuses_garbage_and_a_cache_without_memory(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"learn=\.\.\.\) takes True or False"):
        Cache([MemoryTier()], learn="yes")  # type: ignore[arg-type]
    disk = DiskTier(tmp_path / "disk")
    with pytest.raises(ConfigurationError, match="this cache has none"):
        Cache([disk], learn=True)
    disk.close()


def test_closing_the_cache_stops_the_learner_thread(clock: FakeClock) -> None:
    cache = Cache([MemoryTier()], clock=clock, learn=True)
    learner = cache.learner
    assert learner is not None and learner._thread is not None and learner._thread.is_alive()
    cache.close()
    assert not learner._thread.is_alive()


# -- the algorithm ---------------------------------------------------------------------------


def test_hot_keys_keep_the_heaviest_keys_within_capacity() -> None:
    keys: HotKeys[int] = HotKeys(capacity=10, width=512, depth=4)
    for rank in range(1, 2001):  # Zipf-like: key r is hit about 2000 / r times
        keys.add(rank, 2000 / rank)
    keys.settle()
    assert len(keys) == 10
    assert {k for k, _ in keys.hot()} == set(range(1, 11))
    assert keys.score(1) == pytest.approx(2000.0)


def test_the_sketch_never_underestimates() -> None:
    keys: HotKeys[int] = HotKeys(capacity=4, width=64, depth=3)
    for k in range(1000):
        keys.add(k, k % 7 + 1)
    for k in range(1000):
        assert keys.score(k) >= k % 7 + 1 - 1e-9


def test_scores_halve_every_half_life_and_cold_keys_leave() -> None:
    keys: HotKeys[str] = HotKeys(capacity=8, half_life=10.0, floor=0.5)
    keys.add("a", 8)
    keys.settle()
    keys.advance(10)
    assert keys.score("a") == pytest.approx(4)
    keys.add("a", 4)
    keys.advance(20)
    assert keys.score("a") == pytest.approx(4)
    keys.advance(1_000_000)  # far past the rescaling point: still exact, then gone
    keys.add("b", 3)
    assert keys.score("b") == pytest.approx(3)
    assert [k for k, _ in keys.hot()] == ["b"]


def test_hot_keys_refuse_garbage() -> None:
    with pytest.raises(ValueError, match="capacity"):
        HotKeys(capacity=0)
    with pytest.raises(ValueError, match="half_life"):
        HotKeys(half_life=0)


def test_configure_builds_a_learning_default_cache() -> None:
    cache = cacheplug.configure(tiers="memory", learn=True)
    assert cache.learner is not None
    assert cacheplug.configure(tiers="memory").learner is None


def test_a_forked_child_learns_with_a_ticker_of_its_own(clock: FakeClock) -> None:
    cache = Cache([MemoryTier()], clock=clock, learn=True)
    pid = os.fork()
    if pid == 0:  # the child: its learner's thread must be its own, and alive
        learner = cache.learner
        ok = learner is not None and learner._thread is not None and learner._thread.is_alive()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    cache.close()
