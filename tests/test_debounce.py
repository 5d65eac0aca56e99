"""The opt-in debounce window: bursts coalesce, staleness lasts until the window closes."""

from __future__ import annotations

import threading

import pytest

from cacheplug import Cache, ConfigurationError, MemoryTier, cached, signals


def test_debounced_invalidation_is_applied_on_flush_not_before() -> None:
    cache = Cache([MemoryTier()], debounce=3600)
    calls: list[int] = []

    @cached(cache=cache, tags=["item:{x}"])
    def f(x: int) -> int:
        calls.append(x)
        return len(calls)

    assert f(1) == 1
    cache.invalidate(tags=["item:1"])
    assert f(1) == 1, "inside the window the old value is still served (the documented trade-off)"
    assert cache.flush_invalidations() is True
    assert f(1) == 2
    assert cache.flush_invalidations() is False


def test_burst_coalesces_into_one_invalidation_and_one_signal() -> None:
    cache = Cache([MemoryTier()], debounce=3600)
    seen: list[tuple[frozenset[str], frozenset[str]]] = []

    def on_invalidated(sender: object, **kw: frozenset[str]) -> None:
        if sender is cache:
            seen.append((kw["tags"], kw["keys"]))

    signals.invalidated.connect(on_invalidated)
    try:
        for i in range(50):
            cache.invalidate(tags=[f"row:{i}", "table"])
        cache.flush_invalidations()
    finally:
        signals.invalidated.disconnect(on_invalidated)
    assert len(seen) == 1
    assert seen[0][0] == frozenset({"table", *(f"row:{i}" for i in range(50))})
    assert cache.stats()["invalidations"] == 1


def test_window_closes_by_itself() -> None:
    cache = Cache([MemoryTier()], debounce=0.01)
    applied = threading.Event()

    def on_invalidated(sender: object, **kw: object) -> None:
        if sender is cache:
            applied.set()

    signals.invalidated.connect(on_invalidated)
    try:
        cache.invalidate(tags=["x"])
        assert applied.wait(10), "the timer applies the pending invalidation"
    finally:
        signals.invalidated.disconnect(on_invalidated)


def test_close_flushes_pending_invalidations() -> None:
    tier = MemoryTier()
    cache = Cache([tier], debounce=3600)
    cache.set("k", 1, tags=["t"])
    cache.invalidate(tags=["t"])
    cache.close()
    other = Cache([tier])
    assert other.get("k") is None


@pytest.mark.parametrize("window", [0, -1, True, "1"])
def test_bad_debounce_window_is_refused(window: object) -> None:
    with pytest.raises(ConfigurationError, match="debounce"):
        Cache([MemoryTier()], debounce=window)  # type: ignore[arg-type]
