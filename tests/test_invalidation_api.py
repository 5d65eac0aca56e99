"""The invalidation API: tags, invalidate(), dependencies, capture, write rules, signals, batches.

Every test drives real caches (memory, memory + disk, disk) and checks behaviour through calls:
a cached function counts its computations, so "stale" means "the next call computes again".
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cacheplug
from cacheplug import (
    Cache,
    ConfigurationError,
    DiskTier,
    InvalidationError,
    InvalidationRule,
    MemoryTier,
    batch,
    cached,
    signals,
)

from .invalidation_support import (
    KINDS,
    Calls,
    CountingMemoryTier,
    FaultyTier,
    make_cache,
)
from .tier_doubles import CountingTier, wait

__all__ = ["make_cache"]  # the fixture is used by name


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def cache(make_cache: Callable[..., Cache], kind: str) -> Cache:
    return make_cache(kind)


@pytest.fixture
def received() -> Iterator[list[tuple[Any, dict[str, Any]]]]:
    """Every ``invalidated`` signal sent during the test: (sender, kwargs)."""
    log: list[tuple[Any, dict[str, Any]]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        log.append((sender, kwargs))

    signals.invalidated.connect(receiver, weak=False)
    yield log
    signals.invalidated.disconnect(receiver)


class User:
    def __init__(self, user_id: int, org_id: int) -> None:
        self.user_id = user_id
        self.org_id = org_id

    def __cache_key__(self) -> tuple[int, int]:
        return (self.user_id, self.org_id)


# -- tags --------------------------------------------------------------------------------------


def test_tag_templates_format_arguments_with_attribute_access(cache: Cache) -> None:
    calls = Calls()

    # version=: these functions close over test counters (unkeyable), which would keep them memory-only
    @cached(cache=cache, tags=["user:{user_id}", "org:{user.org_id}"], version="1")
    def profile(user_id: int, user: User) -> int:
        return calls.hit(user_id)

    alice, bob, carol = User(1, 10), User(2, 10), User(3, 20)
    for u in (alice, bob, carol):
        assert profile(u.user_id, u) == 1
        assert profile(u.user_id, u) == 1

    cacheplug.invalidate(tags=["org:10"])
    assert profile(1, alice) == 2
    assert profile(2, bob) == 2
    assert profile(3, carol) == 1  # org 20 untouched

    cache.invalidate(tags=["user:3"])
    assert profile(3, carol) == 2
    assert profile(1, alice) == 2


def test_callable_tags_receive_the_call_arguments(cache: Cache) -> None:
    calls = Calls()
    seen: list[tuple[Any, ...]] = []

    def tags_of(a: int, b: int = 0) -> list[str]:
        seen.append((a, b))
        return [f"a:{a}", f"b:{b}"]

    @cached(cache=cache, tags=tags_of, version="1")
    def f(a: int, b: int = 0) -> int:
        return calls.hit((a, b))

    assert f(1, 2) == f(1, b=2) == 1
    assert f(3) == 1
    assert (1, 2) in seen and (3, 0) in seen
    cache.invalidate(tags=["b:2"])
    assert f(1, 2) == 2
    assert f(3) == 1
    cache.invalidate(tags=["a:3"])
    assert f(3) == 2


@pytest.mark.parametrize("template", ["user:{uid}", "org:{usr.org_id}", "x:{user_id}:{missing[0]}"])
def test_template_naming_an_unknown_parameter_is_refused_at_decoration(template: str) -> None:
    def profile(user_id: int, user: User) -> int:
        return user_id

    with pytest.raises(ConfigurationError, match="not a parameter"):
        cached(tags=[template])(profile)


# -- invalidate(tags=..., keys=...) --------------------------------------------------------------


def _invalidate_module(cache: Cache, tags: list[str], keys: list[str]) -> None:
    cacheplug.invalidate(tags=tags, keys=keys)


def _invalidate_method(cache: Cache, tags: list[str], keys: list[str]) -> None:
    cache.invalidate(tags=tags, keys=keys)


def _ainvalidate_module(cache: Cache, tags: list[str], keys: list[str]) -> None:
    asyncio.run(cacheplug.ainvalidate(tags=tags, keys=keys))


def _ainvalidate_method(cache: Cache, tags: list[str], keys: list[str]) -> None:
    asyncio.run(cache.ainvalidate(tags=tags, keys=keys))


INVALIDATORS = [_invalidate_module, _invalidate_method, _ainvalidate_module, _ainvalidate_method]


@pytest.mark.parametrize("invalidate", INVALIDATORS, ids=lambda f: f.__name__.strip("_"))
def test_invalidate_by_tag_and_by_key_makes_entries_stale_in_every_tier(
    make_cache: Callable[..., Cache], kind: str, tmp_path: Path, invalidate: Callable[..., None]
) -> None:
    cache = make_cache(kind)
    calls = Calls()

    @cached(cache=cache, tags=["item:{i}"], version="1")
    def item(i: int) -> tuple[int, int]:
        return i, calls.hit(i)

    for i in range(4):
        item(i)
    cache.set("direct", "old", tags=["item:2"])
    cache.set("plain", "old")

    invalidate(cache, ["item:0"], [item.cache_key(1), "plain"])
    assert [item(i)[1] for i in range(4)] == [2, 2, 1, 1]
    assert cache.get("plain") is None
    assert cache.get("direct") == "old"

    invalidate(cache, ["item:2"], [])
    assert cache.get("direct") is None
    assert item(2) == (2, 2)

    if kind != "memory":
        # A brand-new cache over the same directory (another process, say) agrees, and an
        # invalidation through one cache reaches what the other holds in its memory tier.
        reader = make_cache("memory+disk", tmp_path / "disk")
        assert reader.get("direct") is None and reader.get("plain") is None
        cache.set("later", "old", tags=["item:3"])
        assert reader.get("later") == "old"
        invalidate(cache, ["item:3"], [])
        assert reader.get("later") is None


def test_module_invalidate_reaches_every_open_cache(make_cache: Callable[..., Cache], tmp_path: Path) -> None:
    first = make_cache("memory")
    second = make_cache("memory+disk", tmp_path / "a")
    third = make_cache("disk", tmp_path / "b")
    for c in (first, second, third):
        c.set("k", 1, tags=["t"])
        c.set("other", 1, tags=["u"])
    cacheplug.invalidate(tags=["t"])
    assert [c.get("k") for c in (first, second, third)] == [None, None, None]
    assert [c.get("other") for c in (first, second, third)] == [1, 1, 1]
    cacheplug.invalidate(keys=["other"])
    assert [c.get("other") for c in (first, second, third)] == [None, None, None]


# -- depends_on ----------------------------------------------------------------------------------


def _profile_and_dashboard(cache: Cache, calls: Calls, tags: Any) -> tuple[Any, Any]:
    @cached(cache=cache, tags=tags, version="1")
    def profile(user_id: int) -> int:
        return calls.hit(("profile", user_id))

    @cached(cache=cache, depends_on=[profile], version="1")
    def dashboard(user_id: int) -> int:
        return calls.hit(("dashboard", user_id))

    return profile, dashboard


def test_depends_on_function_goes_stale_on_its_cache_clear(cache: Cache) -> None:
    calls = Calls()
    profile, dashboard = _profile_and_dashboard(cache, calls, ["user:{user_id}"])
    assert dashboard(1) == dashboard(1) == 1
    profile.cache_clear()
    assert dashboard(1) == 2
    assert dashboard(1) == 2


def test_depends_on_function_goes_stale_when_any_entry_is_invalidated_by_arguments(cache: Cache) -> None:
    calls = Calls()
    profile, dashboard = _profile_and_dashboard(cache, calls, ["user:{user_id}"])
    assert dashboard(1) == 1
    assert dashboard(2) == 1
    profile.invalidate(99)  # an entry that was never even computed
    assert dashboard(1) == 2
    assert dashboard(2) == 2


def test_depends_on_function_goes_stale_on_a_tag_its_templates_can_produce(cache: Cache) -> None:
    calls = Calls()
    _, dashboard = _profile_and_dashboard(cache, calls, ["user:{user_id}", "static"])
    assert dashboard(1) == 1
    cacheplug.invalidate(tags=["org:1"])  # a tag profile can never carry
    assert dashboard(1) == 1
    cacheplug.invalidate(tags=["user:7"])
    assert dashboard(1) == 2
    cacheplug.invalidate(tags=["static"])
    assert dashboard(1) == 3


def test_depends_on_function_with_callable_tags_goes_stale_on_any_tag(cache: Cache) -> None:
    calls = Calls()
    _, dashboard = _profile_and_dashboard(cache, calls, lambda user_id: [f"u{user_id}"])
    assert dashboard(1) == 1
    cache.invalidate(tags=["anything-at-all"])
    assert dashboard(1) == 2


def test_depends_on_tag_string(cache: Cache) -> None:
    calls = Calls()

    @cached(cache=cache, depends_on=["settings"], version="1")
    def page(i: int) -> int:
        return calls.hit(i)

    assert page(1) == page(1) == 1
    cache.invalidate(tags=["other"])
    assert page(1) == 1
    cache.invalidate(tags=["settings"])
    assert page(1) == 2


# -- automatic capture ------------------------------------------------------------------------------


def _outer_inner(cache: Cache, calls: Calls) -> tuple[Any, Any]:
    @cached(cache=cache, tags=["item:{i}"], version="1")
    def inner(i: int) -> int:
        return calls.hit(("inner", i))

    @cached(cache=cache, version="1")
    def outer(i: int) -> tuple[int, int]:
        return calls.hit(("outer", i)), inner(i)

    return inner, outer


@pytest.mark.parametrize("how", ["args", "tag", "cache_clear", "key"])
def test_outer_entry_goes_stale_when_the_inner_entry_it_read_is_invalidated(cache: Cache, how: str) -> None:
    calls = Calls()
    inner, outer = _outer_inner(cache, calls)
    assert outer(1) == (1, 1)
    assert outer(2) == (1, 1)
    assert outer(1) == (1, 1)
    if how == "args":
        inner.invalidate(1)
    elif how == "tag":
        cacheplug.invalidate(tags=["item:1"])
    elif how == "key":
        cacheplug.invalidate(keys=[inner.cache_key(1)])
    else:
        inner.cache_clear()
    assert outer(1) == (2, 2)
    assert outer(2) == ((2, 2) if how == "cache_clear" else (1, 1))


def test_outer_entry_captures_inner_hits_as_well_as_computations(cache: Cache) -> None:
    calls = Calls()
    inner, outer = _outer_inner(cache, calls)
    assert inner(5) == 1  # cached before outer reads it: outer's read is a hit
    assert outer(5) == (1, 1)
    cache.invalidate(tags=["item:5"])
    assert outer(5) == (2, 2)


def test_capture_is_transitive_to_depth_three(cache: Cache) -> None:
    calls = Calls()

    @cached(cache=cache, tags=["c:{i}"], version="1")
    def c(i: int) -> int:
        return calls.hit(("c", i))

    @cached(cache=cache)
    def b(i: int) -> int:
        return c(i) * 10

    @cached(cache=cache, version="1")
    def a(i: int) -> tuple[int, int]:
        return calls.hit(("a", i)), b(i)

    assert a(1) == a(1) == (1, 10)
    c.invalidate(1)
    assert a(1) == (2, 20)
    cache.invalidate(tags=["c:1"])
    assert a(1) == (3, 30)
    assert a(1) == (3, 30)


def test_capture_of_direct_get_reads(cache: Cache) -> None:
    calls = Calls()
    cache.set("config", "v1", tags=["config"])

    @cached(cache=cache, version="1")
    def render(i: int) -> tuple[int, Any]:
        return calls.hit(i), cache.get("config")

    assert render(1) == render(1) == (1, "v1")
    cache.invalidate(keys=["config"])
    assert render(1) == (2, None)


def test_async_capture(cache: Cache) -> None:
    calls = Calls()

    @cached(cache=cache, tags=["item:{i}"], version="1")
    async def inner(i: int) -> int:
        await asyncio.sleep(0)
        return calls.hit(("inner", i))

    @cached(cache=cache, version="1")
    async def outer(i: int) -> tuple[int, int]:
        return calls.hit(("outer", i)), await inner(i)

    async def scenario() -> None:
        assert await outer(1) == (1, 1)
        assert await outer(1) == (1, 1)
        await inner.ainvalidate(1)
        assert await outer(1) == (2, 2)
        await cacheplug.ainvalidate(tags=["item:1"])
        assert await outer(1) == (3, 3)

    asyncio.run(scenario())


def test_concurrent_tasks_do_not_share_captures(cache: Cache) -> None:
    calls = Calls()

    @cached(cache=cache, tags=["item:{i}"], version="1")
    async def inner(i: int) -> int:
        return calls.hit(("inner", i))

    @cached(cache=cache, version="1")
    async def outer(i: int, gate: int) -> int:
        await inner(i)
        await gates[gate].wait()  # the other task runs its whole computation meanwhile
        return calls.hit(("outer", i))

    gates: dict[int, asyncio.Event] = {}

    async def scenario() -> None:
        gates[0], gates[1] = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(outer(1, 0))
        await asyncio.sleep(0)
        second = asyncio.create_task(outer(2, 1))
        await asyncio.sleep(0)
        gates[1].set()
        await second
        gates[0].set()
        await first
        cache.invalidate(tags=["item:2"])  # only outer(2, 1) read inner(2)
        assert await outer(1, 0) == 1
        assert await outer(2, 1) == 2

    asyncio.run(scenario())


def test_one_threads_computation_never_picks_up_another_threads_reads(cache: Cache) -> None:
    calls = Calls()
    started, other_done = threading.Event(), threading.Event()

    @cached(cache=cache, tags=["item:{i}"], version="1")
    def inner(i: int) -> int:
        return calls.hit(("inner", i))

    @cached(cache=cache, version="1")
    def slow(i: int) -> int:
        started.set()
        wait(other_done, "the other thread's reads")
        return calls.hit(("slow", i))

    @cached(cache=cache, version="1")
    def other(i: int) -> int:
        return inner(i) + calls.hit(("other", i))

    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(slow(1)))
    worker.start()
    wait(started, "slow to start")
    inner(7)  # a hit or computation in this thread, while slow(1) computes in the other
    other(8)
    other_done.set()
    worker.join(30)
    assert result == [1]
    cache.invalidate(tags=["item:7", "item:8"])
    assert slow(1) == 1  # still a hit: slow(1) never depended on inner(7) or inner(8)
    assert other(8) == 4  # recomputed: inner(8) -> 2, plus other(8)'s second computation -> 2


def test_asyncio_to_thread_reads_are_captured(cache: Cache) -> None:
    calls = Calls()

    @cached(cache=cache, tags=["item:{i}"], version="1")
    def inner(i: int) -> int:
        return calls.hit(("inner", i))

    @cached(cache=cache, version="1")
    async def outer(i: int) -> tuple[int, int]:
        return calls.hit(("outer", i)), await asyncio.to_thread(inner, i)

    async def scenario() -> None:
        assert await outer(1) == (1, 1)
        assert await outer(1) == (1, 1)
        inner.invalidate(1)
        assert await outer(1) == (2, 2)

    asyncio.run(scenario())


def test_copy_context_run_in_another_thread_is_captured(cache: Cache) -> None:
    calls = Calls()

    @cached(cache=cache, tags=["item:{i}"], version="1")
    def inner(i: int) -> int:
        return calls.hit(("inner", i))

    @cached(cache=cache, version="1")
    def outer(i: int) -> tuple[int, int]:
        context = contextvars.copy_context()
        got: list[int] = []
        worker = threading.Thread(target=lambda: got.append(context.run(inner, i)))
        worker.start()
        worker.join(30)
        return calls.hit(("outer", i)), got[0]

    assert outer(1) == outer(1) == (1, 1)
    cache.invalidate(tags=["item:1"])
    assert outer(1) == (2, 2)


def test_recursive_function_depends_on_every_level(cache: Cache) -> None:
    calls = Calls()

    @cached(cache=cache, version="1")
    def fib(n: int) -> int:
        calls.hit(n)
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    assert fib(10) == 55
    assert calls.total == 11
    assert fib(10) == 55
    assert calls.total == 11
    fib.invalidate(1)
    assert fib(10) == 55
    assert calls[10] == 2 and calls[1] == 2
    assert calls[0] == 1  # fib(0) was not invalidated: served from the cache
    fib.invalidate(0)
    fib(10)
    assert calls[10] == 3


# -- write rules -------------------------------------------------------------------------------------


def test_invalidate_by_write_invalidates_entity_and_row_tags(cache: Cache) -> None:
    for key, tags in {"all": ["user"], "row": ["user:42"], "other": ["user:43"], "org": ["org:42"]}.items():
        cache.set(key, 1, tags=tags)
    cacheplug.invalidate_by_write("user", 42)
    assert {k: cache.get(k) for k in ("all", "row", "other", "org")} == {
        "all": None,
        "row": None,
        "other": 1,
        "org": 1,
    }
    cache.set("all", 1, tags=["user"])
    cache.set("org", 1, tags=["org:42"])
    cache.invalidate_by_write("user")  # a write of the whole table: every row's entries too
    assert {k: cache.get(k) for k in ("all", "other", "org")} == {"all": None, "other": None, "org": 1}


def test_write_rules_with_templates_and_callables(make_cache: Callable[..., Cache], tmp_path: Path) -> None:
    first = make_cache("memory+disk", tmp_path / "first")
    second = make_cache("memory")
    cacheplug.add_rule(InvalidationRule("user", tags=["dashboard:{id}", "leaderboard"]))
    first.add_rule(InvalidationRule("user", tags=lambda id: [f"team:{id % 10}"]))
    for c in (first, second):
        for key, tag in {
            "dash": "dashboard:42",
            "board": "leaderboard",
            "team": "team:2",
            "x": "dash:1",
        }.items():
            c.set(key, 1, tags=[tag])

    cacheplug.invalidate_by_write("user", 42)
    assert {k: first.get(k) for k in ("dash", "board", "team", "x")} == {
        "dash": None,
        "board": None,
        "team": None,
        "x": 1,
    }
    # The callable rule was registered on ``first`` only.
    assert {k: second.get(k) for k in ("dash", "board", "team", "x")} == {
        "dash": None,
        "board": None,
        "team": 1,
        "x": 1,
    }


def test_rule_template_may_only_name_id() -> None:
    with pytest.raises(ConfigurationError):
        InvalidationRule("user", tags=["dashboard:{pk}"])
    with pytest.raises(ConfigurationError):
        InvalidationRule("user", tags=["dashboard:{id}:{org}"])
    assert InvalidationRule("user", tags=["dashboard:{id}"]).tags_for(3) == ["dashboard:3"]


# -- signals --------------------------------------------------------------------------------------------


def test_written_signal_invalidates_on_every_open_cache(
    make_cache: Callable[..., Cache], tmp_path: Path
) -> None:
    caches = [
        make_cache("memory"),
        make_cache("memory+disk", tmp_path / "a"),
        make_cache("disk", tmp_path / "b"),
    ]
    cacheplug.add_rule(InvalidationRule("user", tags=["dashboard:{id}"]))
    for c in caches:
        c.set("row", 1, tags=["user:42"])
        c.set("dash", 1, tags=["dashboard:42"])
        c.set("other", 1, tags=["user:41"])
    signals.written.send(object(), entity="user", id=42)
    for c in caches:
        assert (c.get("row"), c.get("dash"), c.get("other")) == (None, None, 1)


def test_invalidated_signal_is_sent_after_each_invalidation_with_frozensets(
    cache: Cache, received: list[tuple[Any, dict[str, Any]]]
) -> None:
    cache.set("k", 1)
    cache.set("t", 1, tags=["a"])
    applied_before_signal: list[bool] = []

    def check(sender: Any, **kwargs: Any) -> None:
        applied_before_signal.append(cache.get("k") is None and cache.get("t") is None)

    signals.invalidated.connect(check, weak=False)
    try:
        cache.invalidate(tags=["a", "b"], keys=["k"])
    finally:
        signals.invalidated.disconnect(check)
    assert applied_before_signal == [True]
    assert len(received) == 1
    sender, kwargs = received[0]
    assert sender is cache
    assert set(kwargs) >= {"tags", "keys"}
    assert type(kwargs["tags"]) is frozenset and type(kwargs["keys"]) is frozenset
    assert kwargs["tags"] == frozenset({"a", "b"})
    assert kwargs["keys"] in (frozenset({"k"}), frozenset({cache.user_key("k")}))
    cache.invalidate(tags=["c"])
    assert len(received) == 2 and received[1][1]["tags"] == frozenset({"c"})


# -- batches ---------------------------------------------------------------------------------------------


def test_batch_applies_nothing_inside_and_one_coalesced_invalidation_at_exit(
    make_cache: Callable[..., Cache], kind: str, tmp_path: Path, received: list[tuple[Any, dict[str, Any]]]
) -> None:
    cache = make_cache(kind)
    other = make_cache("memory")
    calls = Calls()

    @cached(cache=cache, tags=["item:{i}"], version="1")
    def item(i: int) -> int:
        return calls.hit(i)

    for i in range(4):
        item(i)
    cache.set("k", "v")
    other.set("o", "v", tags=["item:1"])
    epochs = (cache.epoch[0], other.epoch[0])

    with batch():
        cacheplug.invalidate(tags=["item:0"])
        cache.invalidate(tags=["item:1"])
        cacheplug.invalidate(tags=["item:1"])
        cache.invalidate(keys=["k"])
        item.invalidate(2)
        cacheplug.invalidate_by_write("item", 3)
        # Nothing applied yet: every value is still served, no signal went out.
        assert [item(i) for i in range(4)] == [1, 1, 1, 1]
        assert cache.get("k") == "v" and other.get("o") == "v"
        assert (cache.epoch[0], other.epoch[0]) == epochs
        assert received == []

    assert [item(i) for i in range(4)] == [2, 2, 2, 2]
    assert cache.get("k") is None and other.get("o") is None
    assert cache.epoch[0] == epochs[0] + 1  # one invalidation recorded for the whole block
    by_sender: dict[int, list[dict[str, Any]]] = {}
    for sender, kwargs in received:
        by_sender.setdefault(id(sender), []).append(kwargs)
    assert sorted(by_sender) == sorted({id(cache), id(other)})
    assert all(len(signals_of) == 1 for signals_of in by_sender.values())
    tags = by_sender[id(cache)][0]["tags"]
    assert {"item:0", "item:1", "item", "item:3"} <= tags


def test_batch_applies_on_exception_and_nested_blocks_fold_into_the_outermost(cache: Cache) -> None:
    cache.set("a", 1, tags=["a"])
    cache.set("b", 1, tags=["b"])
    epoch = cache.epoch[0]
    with pytest.raises(RuntimeError, match="boom"), batch():
        with batch():
            cache.invalidate(tags=["a"])
        assert cache.get("a") == 1  # the inner block's exit applied nothing
        cache.invalidate(tags=["b"])
        raise RuntimeError("boom")
    assert cache.get("a") is None and cache.get("b") is None
    assert cache.epoch[0] == epoch + 1


def test_batch_in_one_thread_does_not_capture_another_threads_invalidations(cache: Cache) -> None:
    cache.set("mine", 1, tags=["mine"])
    cache.set("theirs", 1, tags=["theirs"])
    inside, done = threading.Event(), threading.Event()
    seen: list[Any] = []

    def batching() -> None:
        with batch():
            cache.invalidate(tags=["mine"])
            inside.set()
            wait(done, "the other thread's invalidation")
            seen.append(cache.get("theirs"))  # applied immediately, though we are batching

    worker = threading.Thread(target=batching)
    worker.start()
    wait(inside, "the batch to start")
    cache.invalidate(tags=["theirs"])
    assert cache.get("theirs") is None
    assert cache.get("mine") == 1  # the other thread's batch is still pending
    done.set()
    worker.join(30)
    assert seen == [None]
    assert cache.get("mine") is None


# -- fail closed on writes, open on reads -------------------------------------------------------------


def test_invalidation_that_cannot_be_recorded_raises(
    make_cache: Callable[..., Cache], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = make_cache("memory+disk")
    calls = Calls()

    @cached(cache=cache, tags=["item:{i}"])
    def item(i: int) -> int:
        return calls.hit(i)

    item(1)
    journal = cache.versions._journal  # type: ignore[attr-defined]

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(journal, "set", disk_full)
    epoch = cache.epoch[0]
    with pytest.raises(InvalidationError):
        cache.invalidate(tags=["item:1"])
    with pytest.raises(InvalidationError):
        cacheplug.invalidate(tags=["item:1"])
    with pytest.raises(InvalidationError):
        item.cache_clear()
    with pytest.raises(InvalidationError), batch():
        cache.invalidate(tags=["item:1"])
    assert cache.epoch[0] == epoch
    monkeypatch.undo()
    cache.invalidate(tags=["item:1"])
    assert item(1) == 2


def test_invalidation_blocked_by_a_locked_journal_raises_instead_of_hanging(
    make_cache: Callable[..., Cache], tmp_path: Path
) -> None:
    cache = make_cache("memory+disk")
    cache.set("k", 1, tags=["t"])
    store = cache.versions
    # The journal's SQLite lock timeout is 10 s; a short one keeps the test fast. The
    # invalidation runs in a new thread so that it opens a connection with that timeout.
    store._journal._timeout = 0.2  # type: ignore[attr-defined]
    locker = sqlite3.connect(os.path.join(store.directory, "journal", "journal.db"), isolation_level=None)  # type: ignore[attr-defined]
    outcome: list[BaseException | None] = []

    def invalidate() -> None:
        try:
            cache.invalidate(tags=["t"])
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    try:
        locker.execute("BEGIN IMMEDIATE")
        epoch = cache.epoch[0]
        worker = threading.Thread(target=invalidate, daemon=True)
        worker.start()
        worker.join(10)
        hung = worker.is_alive()
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    worker.join(30)
    assert not hung, "invalidate() kept waiting for the locked journal instead of failing closed"
    assert len(outcome) == 1 and isinstance(outcome[0], InvalidationError)
    assert cache.epoch[0] == epoch
    cache.invalidate(tags=["t"])
    assert cache.get("k") is None


def test_reads_meeting_a_tier_fault_are_computed(clock: Any) -> None:
    faulty = FaultyTier()
    cache = Cache([MemoryTier(), faulty], clock=clock)
    calls = Calls()

    @cached(cache=cache, tags=["item:{i}"], version="1")
    def item(i: int) -> int:
        return calls.hit(i)

    assert item(1) == 1
    assert item(1) == 1  # served from memory; the faulty tier never blocks a call
    cache.invalidate(tags=["item:1"])
    assert item(1) == 2
    assert faulty.attempts >= 3
    assert sum(cache.stats()["faults"].values()) >= 3
    only_faulty = Cache([FaultyTier()], clock=clock)
    assert only_faulty.get_or_compute("k", lambda: "computed") == "computed"
    assert only_faulty.get("k") is None


def test_a_call_whose_disk_store_meets_a_locked_database_still_returns(
    make_cache: Callable[..., Cache], tmp_path: Path
) -> None:
    cache = make_cache("memory+disk", disk_timeout=0.2)
    calls = Calls()

    @cached(cache=cache, version="1")
    def item(i: int) -> int:
        return calls.hit(i)

    locker = sqlite3.connect(str(tmp_path / "disk" / "entries" / "cache.db"), isolation_level=None)
    result: list[int] = []
    try:
        locker.execute("BEGIN IMMEDIATE")
        worker = threading.Thread(target=lambda: result.append(item(1)), daemon=True)
        worker.start()
        worker.join(10)
        hung = worker.is_alive()
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    worker.join(30)
    assert not hung, "a call waited forever for the disk tier's lock instead of counting a fault"
    assert result == [1]
    assert cache.stats()["faults"]


# -- cost ---------------------------------------------------------------------------------------------------


def test_invalidation_touches_no_entry_whatever_the_number_carrying_the_tag(tmp_path: Path) -> None:
    memory = CountingMemoryTier(max_entries=50_000)
    disk = CountingTier(DiskTier(tmp_path / "disk"))
    cache = Cache([memory, disk])
    try:

        @cached(cache=cache, tags=["bulk", "row:{i}"])
        def row(i: int) -> int:
            return i

        for i in range(10_000):
            row(i)
        cache.set("lonely", 1, tags=["lonely"])
        journal = cache.versions._journal  # type: ignore[attr-defined]
        writes: list[Any] = []
        real_set = journal.set

        def counting_set(key: Any, *args: Any, **kwargs: Any) -> Any:
            writes.append(key)
            return real_set(key, *args, **kwargs)

        journal.set = counting_set
        try:
            for tag in ("bulk", "lonely"):
                memory.reset()
                disk.reset()
                writes.clear()
                cache.invalidate(tags=[tag])
                assert sum(memory.calls.values()) == 0, memory.calls
                assert sum(disk.calls.values()) == 0, disk.calls
                assert len(writes) == 1, writes  # one journal record per invalidation
        finally:
            del journal.set
        assert len(memory) >= 10_000  # nothing was scanned or removed eagerly...
        assert cache.get("lonely") is None  # ...yet everything is stale
        assert row(5) == 5 and cache.stats()["misses"] >= 10_001
    finally:
        cache.close()
        disk.close()
