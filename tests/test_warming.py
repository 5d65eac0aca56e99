"""Warming: tasks, ``@cached(warm=...)``, priorities, bounded concurrency, failures and backoff,
per-user preloading and the scheduler thread. Real threads, a fake clock for every due time."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import cacheplug
from cacheplug import (
    Cache,
    ConfigurationError,
    MemoryTier,
    WarmingTask,
    cached,
    register_warming_task,
    start_warming,
    state,
    warm_for_user,
    warm_now,
    warming_tasks,
)
from cacheplug.warming.tasks import BACKOFF_BASE
from tests.conftest import FakeClock

WAIT = 10.0  # seconds: the longest a test waits for another thread


@pytest.fixture
def cache(clock: FakeClock) -> Iterator[Cache]:
    made = Cache([MemoryTier()], clock=clock)
    yield made
    made.close()


# -- @cached(warm=...) -----------------------------------------------------------------------


def test_warm_forms_true_tuples_dicts_and_a_callable_all_warm(cache: Cache) -> None:
    computed: list[Any] = []
    users = [3]

    @cached(cache=cache, ttl=60, warm=True)
    def home() -> str:
        computed.append("home")
        return "home"

    @cached(cache=cache, ttl=60, warm=[(1,), {"item": 2}, (3, "eur")])
    def price(item: int, currency: str = "usd") -> str:
        computed.append((item, currency))
        return f"{item} {currency}"

    @cached(cache=cache, ttl=60, warm=lambda: [(u,) for u in users])
    def profile(user: int) -> int:
        computed.append(("profile", user))
        return user

    assert computed == []  # decoration registers; nothing is computed
    report = warm_now()
    assert report.warmed == 5 and report.failed == 0
    assert sorted(map(str, computed)) == sorted(
        map(str, ["home", (1, "usd"), (2, "usd"), (3, "eur"), ("profile", 3)])
    )
    # Served from the cache now: no computation, hits counted.
    before = len(computed)
    assert price(1) == "1 usd" and price(3, "eur") == "3 eur" and home() == "home" and profile(3) == 3
    assert len(computed) == before
    assert price.cache_info().hits == 2


def test_a_callable_spec_is_called_at_each_warming_not_at_decoration(cache: Cache) -> None:
    asked: list[int] = []

    def which() -> list[tuple[int]]:
        asked.append(1)
        return [(len(asked),)]

    @cached(cache=cache, ttl=60, warm=which)
    def f(x: int) -> int:
        return x

    assert asked == []
    warm_now(force=True)
    warm_now(force=True)
    assert asked == [1, 1]
    assert f.cache_info().currsize == 2  # (1,) then (2,)


@pytest.mark.parametrize(
    ("warm", "message"),
    [
        ("abc", "got 'abc'"),
        (1, "got 1"),
        (None, "got None"),
        ({"x": 1}, "got {'x': 1}"),
        ([1, 2], "each call is a tuple or a dict"),
        ([(1, 2, 3)], "does not fit the signature"),
        ([{"nope": 1}], "does not fit the signature"),
        (True, "does not fit the signature"),  # x is required
    ],
)
def test_garbage_warm_raises_at_decoration(warm: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):

        @cached(warm=warm)
        def f(x: int) -> int:
            return x


def test_a_callable_returning_garbage_fails_the_task_at_run_time(cache: Cache) -> None:
    @cached(cache=cache, ttl=60, warm=lambda: "not a list")
    def f(x: int) -> int:
        return x

    report = warm_now()
    (stats,) = report.tasks
    assert report.failed == 1 and stats.failures == 1 and "must return a list" in (stats.last_error or "")


def test_a_decorated_function_that_is_dropped_leaves_warming_with_its_figures() -> None:
    cache = Cache([MemoryTier()])

    def make() -> Any:
        @cached(cache=cache, warm=True)
        def temporary() -> int:
            return 1

        return temporary

    f = make()
    warm_now()
    assert any(t.target is f for t in warming_tasks())
    assert len(state.WARMING_FIGURES) == 1
    del f
    gc.collect()
    assert not any(t.name.endswith("temporary") for t in warming_tasks())
    assert len(state.WARMING_FIGURES) == 0
    cache.close()


# -- WarmingTask -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "non-empty str"),
        ({"target": lambda: 1}, "must be a @cached function"),
        ({"priority": "high"}, "priority= must be an int"),
        ({"priority": True}, "priority= must be an int"),
        ({"interval": 0}, "interval= must be None or a number"),
        ({"interval": float("nan")}, "interval= must be None or a number"),
        ({"per_user": 1}, "per_user= takes True or False"),
        ({"args": [(1, 2)]}, "does not fit"),
    ],
)
def test_garbage_task_arguments_raise(cache: Cache, kwargs: dict[str, Any], message: str) -> None:
    @cached(cache=cache)
    def f(x: int) -> int:
        return x

    given = {"name": "t", "target": f, "args": [(1,)], **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        WarmingTask(**given)


def test_direct_tasks_need_a_key_and_compute_and_not_a_target(cache: Cache) -> None:
    @cached(cache=cache)
    def f() -> int:
        return 1

    with pytest.raises(ConfigurationError, match="needs target="):
        WarmingTask("t", key="k")
    with pytest.raises(ConfigurationError, match="not both"):
        WarmingTask("t", f, key="k", compute=lambda: 1)
    with pytest.raises(ConfigurationError, match="only per_user=True"):
        WarmingTask("t", key="user:{user_id}", compute=lambda: 1)
    with pytest.raises(ConfigurationError, match="only"):
        WarmingTask("t", key="user:{other}", compute=lambda user_id: 1, per_user=True)


def test_two_tasks_with_one_name_are_refused(cache: Cache) -> None:
    register_warming_task(WarmingTask("one", key="a", compute=lambda: 1, cache=cache))
    with pytest.raises(ConfigurationError, match="already registered"):
        register_warming_task(WarmingTask("one", key="b", compute=lambda: 2, cache=cache))
    with pytest.raises(ConfigurationError, match="takes a WarmingTask"):
        register_warming_task("one")  # type: ignore[arg-type]


def test_a_direct_task_stores_its_value_under_its_key(cache: Cache) -> None:
    register_warming_task(
        WarmingTask("settings", key="settings", compute=lambda: {"theme": "dark"}, cache=cache, tags=["cfg"])
    )
    assert warm_now().warmed == 1
    assert cache.get("settings") == {"theme": "dark"}
    cache.invalidate(tags=["cfg"])
    assert cache.get("settings") is None  # stored with its tags


# -- order and concurrency -------------------------------------------------------------------


def test_warming_order_follows_priority(cache: Cache) -> None:
    order: list[str] = []

    @cached(cache=cache, ttl=60)
    def page(name: str) -> str:
        order.append(name)
        return name

    for name, priority in (("low", 1), ("high", 10), ("mid", 5), ("also-mid", 5)):
        register_warming_task(WarmingTask(name, page, args=[(name,)], priority=priority))
    seen: list[tuple[int, int, str]] = []
    report = warm_now(lambda done, total, task: seen.append((done, total, task)), workers=1)
    assert order == ["high", "mid", "also-mid", "low"]  # equal priorities: registration order
    assert seen == [(1, 4, "high"), (2, 4, "mid"), (3, 4, "also-mid"), (4, 4, "low")]
    assert [t.name for t in report.tasks] == ["high", "mid", "also-mid", "low"]


def test_no_more_than_workers_computations_run_at_once(cache: Cache) -> None:
    workers, calls = 3, 9
    lock = threading.Lock()
    running, peak = [0], [0]
    barrier = threading.Barrier(workers, timeout=WAIT)

    @cached(cache=cache, ttl=60)
    def slow(i: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            barrier.wait()  # only ``workers`` calls can meet here; a fourth would wait alone
        finally:
            with lock:
                running[0] -= 1
        return i

    register_warming_task(WarmingTask("slow", slow, args=[(i,) for i in range(calls)]))
    report = warm_now(workers=workers)
    assert report.warmed == calls and report.failed == 0
    assert peak[0] == workers


# -- failures, backoff, figures --------------------------------------------------------------


def test_a_failing_task_stores_nothing_and_is_retried_with_backoff(cache: Cache, clock: FakeClock) -> None:
    attempts: list[float] = []
    healthy = [False]

    @cached(cache=cache, ttl=60)
    def report_of(day: int) -> str:
        attempts.append(clock())
        if not healthy[0]:
            raise RuntimeError("database down")
        return f"report {day}"

    task = register_warming_task(WarmingTask("reports", report_of, args=[(1,)]))
    first = warm_now()
    assert first.failed == 1 and first.warmed == 0
    assert report_of.cache_info().currsize == 0  # nothing stored
    stats = task.stats
    assert (stats.runs, stats.failures, stats.failed_in_row) == (1, 1, 1)
    assert stats.last_error == "RuntimeError('database down')"
    assert stats.next_due == clock() + BACKOFF_BASE

    assert warm_now().tasks == ()  # not due yet: nothing runs
    assert len(attempts) == 1
    clock.advance(1)
    warm_now()  # due: fails again, waits twice as long
    assert len(attempts) == 2 and task.stats.next_due == clock() + 2 * BACKOFF_BASE
    clock.advance(1)
    warm_now()
    assert len(attempts) == 2  # 1 s of the 2 s backoff: not due
    clock.advance(1)
    healthy[0] = True
    report = warm_now()
    assert report.warmed == 1 and len(attempts) == 3
    stats = task.stats
    assert (stats.runs, stats.warmed, stats.failures, stats.failed_in_row, stats.next_due) == (
        3,
        1,
        2,
        0,
        None,
    )
    assert report_of(1) == "report 1" and len(attempts) == 3  # served warm
    assert warm_now().tasks == ()  # done: a task without an interval runs once


def test_figures_count_runs_warmed_skipped_and_the_last_duration(cache: Cache, clock: FakeClock) -> None:
    @cached(cache=cache, ttl=100)
    def f(x: int) -> int:
        clock.advance(0.25)  # each computation takes a quarter of a second of the cache's clock
        return x

    task = register_warming_task(WarmingTask("f", f, args=[(1,), (2,)], interval=30))
    warm_now(workers=1)
    assert task.stats.warmed == 2 and task.stats.last_duration == 0.5
    clock.advance(30)  # due again; the entries have 70 s left, more than the interval: skipped
    warm_now()
    stats = task.stats
    assert (stats.runs, stats.warmed, stats.skipped, stats.last_duration) == (2, 2, 2, 0.0)
    clock.advance(45)  # 25 s left, less than the interval: recomputed before they expire
    warm_now(workers=1)
    stats = task.stats
    assert (stats.runs, stats.warmed, stats.skipped) == (3, 4, 2)
    assert stats.next_due == clock() + 30


def test_warm_now_skips_fresh_entries_unless_forced(cache: Cache) -> None:
    computed: list[int] = []

    @cached(cache=cache, ttl=60, warm=[(1,)])
    def f(x: int) -> int:
        computed.append(x)
        return x

    f(1)
    assert warm_now().skipped == 1 and computed == [1]
    assert warm_now(force=True).warmed == 1 and computed == [1, 1]


def test_async_cached_functions_are_warmed(cache: Cache) -> None:
    computed: list[int] = []

    @cached(cache=cache, ttl=60, warm=[(1,), (2,)])
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        computed.append(x)
        return x * 10

    assert warm_now().warmed == 2
    assert sorted(computed) == [1, 2]

    async def read() -> list[int]:
        return [await fetch(1), await fetch(2)]

    assert asyncio.run(read()) == [10, 20] and len(computed) == 2


# -- per user --------------------------------------------------------------------------------


def test_per_user_tasks_get_the_user_id_and_only_from_warm_for_user(cache: Cache) -> None:
    seen: list[tuple[int, str]] = []

    @cached(cache=cache, ttl=60)
    def inbox(user_id: int, folder: str = "inbox") -> str:
        seen.append((user_id, folder))
        return f"{user_id}/{folder}"

    register_warming_task(WarmingTask("inbox", inbox, args=[(), {"folder": "sent"}], per_user=True))
    register_warming_task(
        WarmingTask(
            "prefs", key="prefs:{user_id}", compute=lambda user_id: {"u": user_id}, per_user=True, cache=cache
        )
    )
    assert warm_now().tasks == () and seen == []  # per-user tasks need a user
    report = warm_for_user(42)
    assert report.warmed == 3
    assert sorted(seen) == [(42, "inbox"), (42, "sent")]
    assert inbox(42) == "42/inbox" and inbox(42, "sent") == "42/sent" and len(seen) == 2
    assert cache.get("prefs:42") == {"u": 42}
    assert warm_for_user(42).skipped == 3  # fresh already
    with pytest.raises(ConfigurationError, match="user_id is given by the warming"):
        WarmingTask("bad", inbox, args=[{"user_id": 1}], per_user=True)


# -- the scheduler ---------------------------------------------------------------------------


def test_start_warming_runs_the_due_tasks_on_its_thread_and_stop_joins_it(cache: Cache) -> None:
    ran = threading.Event()
    threads: list[str] = []

    @cached(cache=cache, ttl=60)
    def f() -> int:
        threads.append(threading.current_thread().name)
        ran.set()
        return 1

    register_warming_task(WarmingTask("f", f))
    scheduler = start_warming(interval=3600, cache=cache)
    assert ran.wait(WAIT)
    assert scheduler.running
    scheduler.stop()
    assert not scheduler.running and scheduler.runs == 1
    assert threads and threads[0].startswith("cacheplug-warming")
    assert f.cache_info().currsize == 1
    scheduler.stop()  # again: nothing


def test_closing_the_cache_stops_its_scheduler(cache: Cache) -> None:
    scheduler = start_warming(interval=3600, cache=cache)
    assert scheduler.running
    cache.close()
    assert not scheduler.running


def test_reset_stops_every_scheduler(cache: Cache) -> None:
    scheduler = start_warming(interval=3600, cache=cache)
    state.reset()
    assert not scheduler.running


def test_cacheplug_warming_false_starts_no_scheduler(cache: Cache, monkeypatch: pytest.MonkeyPatch) -> None:
    computed: list[int] = []

    @cached(cache=cache, warm=True)
    def f() -> int:
        computed.append(1)
        return 1

    monkeypatch.setenv("CACHEPLUG_WARMING", "false")
    before = threading.active_count()
    scheduler = start_warming(interval=0.01, cache=cache)
    assert not scheduler.running and threading.active_count() == before
    scheduler.stop()
    assert computed == [] and scheduler.runs == 0
    monkeypatch.setenv("CACHEPLUG_WARMING", "sometimes")
    with pytest.raises(ConfigurationError, match="CACHEPLUG_WARMING='sometimes'"):
        start_warming(cache=cache)


def test_start_warming_refuses_garbage(cache: Cache) -> None:
    for bad in (0, -1, float("inf"), "60", True):
        with pytest.raises(ConfigurationError, match="interval"):
            start_warming(interval=bad, cache=cache)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="workers"):
        warm_now(workers=0)


def test_the_public_names_are_exported() -> None:
    for name in (
        "WarmingTask",
        "WarmingStats",
        "WarmReport",
        "WarmingScheduler",
        "warm_now",
        "start_warming",
    ):
        assert name in cacheplug.__all__


def test_a_task_another_run_is_running_is_not_started_twice(cache: Cache) -> None:
    entered, release = threading.Event(), threading.Event()
    computed: list[int] = []

    @cached(cache=cache, ttl=60)
    def slow(x: int) -> int:
        computed.append(x)
        entered.set()
        assert release.wait(WAIT)
        return x

    register_warming_task(WarmingTask("slow", slow, args=[(1,)]))
    first: list[Any] = []
    runner = threading.Thread(target=lambda: first.append(warm_now()))
    runner.start()
    try:
        assert entered.wait(WAIT)
        assert warm_now(force=True).tasks == ()  # the first run holds it
    finally:
        release.set()
        runner.join(WAIT)
    assert first[0].warmed == 1 and computed == [1]
