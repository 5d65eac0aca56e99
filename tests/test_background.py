"""The background pool: bounded, one job per key, owned and stopped on close."""

from __future__ import annotations

import asyncio
import threading

import pytest

from cacheplug import Cache, MemoryTier
from cacheplug.cache.background import Background


def test_no_thread_starts_until_work_is_submitted() -> None:
    pool = Background()
    assert pool._threads == []
    pool.close()


def test_a_key_runs_once_at_a_time() -> None:
    pool = Background(workers=2)
    gate, ran = threading.Event(), []
    assert pool.submit("k", lambda: (gate.wait(5), ran.append(1)))
    assert not pool.submit("k", lambda: ran.append(2))  # already queued or running
    assert pool.busy("k")
    gate.set()
    assert pool.wait(5)
    assert ran == [1] and not pool.busy("k")
    assert pool.submit("k", lambda: ran.append(3))
    assert pool.wait(5)
    assert ran == [1, 3]
    pool.close()


def test_at_most_workers_threads_and_limit_waiting_jobs() -> None:
    pool = Background(workers=2, limit=3)
    gate = threading.Event()
    accepted = [pool.submit(i, lambda: gate.wait(5)) for i in range(10)]
    # 2 running (each thread took one) plus at most 3 waiting; how many the threads took
    # before the queue filled depends on scheduling, so count the refusals.
    assert len(pool._threads) == 2
    assert accepted.count(True) <= 5 and pool.dropped == accepted.count(False)
    gate.set()
    assert pool.wait(5)
    pool.close()


def test_a_failing_job_is_counted_and_reported_never_raised() -> None:
    seen: list[tuple[object, BaseException]] = []
    pool = Background(on_error=lambda key, exc: seen.append((key, exc)))
    pool.submit("bad", lambda: 1 / 0)
    assert pool.wait(5)
    assert pool.failed == 1 and isinstance(seen[0][1], ZeroDivisionError)
    pool.submit("good", lambda: None)
    assert pool.wait(5) and pool.done == 1
    pool.close()


def test_close_joins_threads_drops_waiting_work_and_refuses_more() -> None:
    pool = Background(workers=1)
    gate, ran = threading.Event(), []
    pool.submit("a", lambda: (gate.wait(5), ran.append("a")))
    pool.submit("b", lambda: ran.append("b"))
    threading.Timer(0.05, gate.set).start()
    pool.close()
    assert all(not t.is_alive() for t in pool._threads)
    assert "b" not in ran
    assert not pool.submit("c", lambda: None)


def test_tasks_run_once_per_key_and_are_awaited() -> None:
    async def main() -> list[int]:
        pool = Background()
        ran: list[int] = []

        async def job(n: int) -> None:
            await asyncio.sleep(0)
            ran.append(n)

        assert pool.asubmit("k", lambda: job(1))
        assert not pool.asubmit("k", lambda: job(2))
        await pool.aclose()
        assert not pool.asubmit("j", lambda: job(3))
        return ran

    assert asyncio.run(main()) == [1]


def test_a_cache_owns_its_pool_and_stops_it_on_close() -> None:
    cache = Cache(tiers=[MemoryTier(16)])
    cache.background.submit("x", lambda: None)
    assert cache.background.wait(5)
    cache.close()
    assert cache.background.closed
    with pytest.raises(ValueError):
        Background(workers=0)
