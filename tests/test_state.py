"""``cacheplug.state.reset()``: the process-global state forgotten in one call."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import cacheplug
from cacheplug import Cache, DiskTier, InvalidationRule, MemoryTier, cached, configure, get_cache, state
from cacheplug.cache import open_caches
from cacheplug.versions import host_versions


def test_reset_closes_the_default_cache_cacheplug_built() -> None:
    built = get_cache()
    state.reset()
    assert built.closed
    assert get_cache() is not built


def test_reset_forgets_but_does_not_close_a_default_the_user_gave() -> None:
    mine = Cache([MemoryTier()])
    configure(cache=mine)
    state.reset()
    assert not mine.closed and get_cache() is not mine
    mine.close()


def test_reset_forgets_open_user_caches_without_closing_them() -> None:
    mine = Cache([MemoryTier()])
    mine.set("k", 1, tags=["t"])
    state.reset()
    assert mine not in open_caches() and not mine.closed
    cacheplug.invalidate(tags=["t"])  # reaches the open caches only: no longer this one
    assert mine.get("k") == 1
    mine.invalidate(tags=["t"])  # used directly, it still works
    assert mine.get("k") is None
    mine.close()


def test_reset_clears_the_global_write_rules(memory_cache: Cache) -> None:
    cacheplug.add_rule(InvalidationRule("user", tags=["dashboard:{id}"]))
    assert "dashboard:1" in memory_cache.write_tags("user", 1)
    state.reset()
    assert memory_cache.write_tags("user", 1) == ["user", "user:1"]


def test_reset_unbinds_fast_paths_from_the_old_default() -> None:
    old = configure(cache=Cache([MemoryTier()]))
    computed: list[int] = []

    @cached
    def f(x: int) -> int:
        computed.append(x)
        return x

    assert f(1) == f(1) == 1 and computed == [1]  # the second call: the fast path's hit in `old`
    state.reset()
    configure(cache=Cache([MemoryTier()]))
    assert f(1) == 1 and computed == [1, 1], "served from the new default, not the old one's shelf"
    old.close()


def test_reset_forgets_the_host_version_stores(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path / "disk")
    try:
        before = tier.versions()
        assert host_versions(str(tmp_path / "disk" / "versions")) is before
        state.reset()
        after = tier.versions()  # what a tier opened after reset() gets
        assert after is not before
        after.close()
    finally:
        tier.close()


def test_reset_gives_the_one_time_warnings_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHEPLUG_TTL", "30")
    with pytest.warns(RuntimeWarning, match="CACHEPLUG_TTL"):
        cached(lambda x: x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached(lambda x: x)  # once only
    state.reset()
    with pytest.warns(RuntimeWarning, match="CACHEPLUG_TTL"):
        cached(lambda x: x)


def test_reset_keeps_the_registry_of_live_functions() -> None:
    @cached
    def kept(x: int) -> int:
        return x

    state.reset()
    assert [f.function for f in cacheplug.cached_functions() if f.name == kept.__qualname__] == [kept]


def test_restore_puts_back_what_the_snapshot_saw_and_forgets_the_rest() -> None:
    before_default = configure(tiers="memory")
    before_cache = Cache([MemoryTier()])
    rule = InvalidationRule("user", tags=["dashboard:{id}"])
    cacheplug.add_rule(rule)
    saved = state.snapshot()

    configure(cache=Cache([MemoryTier()]))  # replaces the default: pinned, so not closed
    assert not before_default.closed
    later_cache = Cache([MemoryTier()])
    cacheplug.add_rule(InvalidationRule("order"))
    built_later = configure(tiers="memory")
    state.restore(saved)

    assert get_cache() is before_default and not before_default.closed
    assert built_later.closed, "a default cacheplug built after the snapshot is closed"
    assert before_cache in open_caches() and later_cache not in open_caches()
    assert [rule] == state.RULES
    assert not state.pinned(before_default)
    configure(tiers="memory")  # no longer pinned: replacing it closes it again
    assert before_default.closed
    before_cache.close()
    later_cache.close()


def test_restore_does_not_put_back_a_default_closed_since() -> None:
    default = configure(tiers="memory")
    saved = state.snapshot()
    default.close()
    state.restore(saved)
    assert get_cache() is not default and not get_cache().closed


def test_nested_snapshots_pin_until_the_outer_restore() -> None:
    default = configure(tiers="memory")
    outer = state.snapshot()
    inner = state.snapshot()
    state.restore(inner)
    assert state.pinned(default)
    configure(tiers="memory")
    assert not default.closed
    state.restore(outer)
    assert get_cache() is default and not state.pinned(default)
