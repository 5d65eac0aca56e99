"""The opt-in debounce window: bursts coalesce, staleness lasts until the window closes."""

from __future__ import annotations

import threading

import pytest

from cacheplug import Cache, ConfigurationError, MemoryTier, cached, signals
from cacheplug.invalidation import Debouncer


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


def _debounce_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cacheplug-debounce"]


def test_the_window_thread_starts_at_the_first_invalidation_and_close_joins_it() -> None:
    before = _debounce_threads()
    cache = Cache([MemoryTier()], debounce=3600)
    debouncer = cache.invalidator.debouncer
    assert debouncer is not None and debouncer.worker is None, "started lazily"
    cache.invalidate(tags=["a"])
    cache.invalidate(tags=["b"])
    worker = debouncer.worker
    assert worker is not None and worker.is_alive()
    assert _debounce_threads() == [*before, worker], "one thread for every window, not one per burst"
    cache.close()
    assert not worker.is_alive(), "close() stops and joins the thread"
    assert _debounce_threads() == before


def test_close_waits_for_a_window_being_applied_in_the_background() -> None:
    """The worker is in the middle of applying when close() is called: close() returns after it."""
    entered, release = threading.Event(), threading.Event()
    applied: list[set[str]] = []

    def slow_apply(tags: set[str], keys: set[str]) -> None:
        entered.set()
        assert release.wait(10)
        applied.append(tags)

    debouncer = Debouncer(0.001, slow_apply)
    debouncer.add({"t"}, set())
    assert entered.wait(10)
    worker = debouncer.worker
    assert worker is not None
    closing = threading.Thread(target=debouncer.close)
    closing.start()
    closing.join(0.05)
    assert closing.is_alive(), "close() is waiting for the worker"
    release.set()
    closing.join(10)
    assert not closing.is_alive() and not worker.is_alive() and applied == [{"t"}]


def test_an_invalidation_after_close_is_applied_at_once_without_a_thread() -> None:
    applied: list[set[str]] = []
    debouncer = Debouncer(3600, lambda tags, keys: applied.append(tags))
    debouncer.close()
    debouncer.add({"late"}, set())
    assert applied == [{"late"}] and debouncer.worker is None and not debouncer.pending


def test_a_failed_background_apply_is_kept_and_retried_at_the_next_window() -> None:
    attempts: list[set[str]] = []
    done = threading.Event()

    def flaky(tags: set[str], keys: set[str]) -> None:
        attempts.append(set(tags))
        if len(attempts) == 1:
            raise OSError("disk full")
        done.set()

    debouncer = Debouncer(0.001, flaky)
    debouncer.add({"t"}, set())
    assert done.wait(10)
    assert attempts == [{"t"}, {"t"}] and not debouncer.pending
    debouncer.close()
