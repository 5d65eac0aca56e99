"""What middleware and signals see (issue 7, finding 2), and which operations build an ``Op``.

Middleware and ``signals.invalidated`` receive the user's keys and tags; the stored key and
cacheplug's internal (NUL-prefixed) tags travel in separate fields. Once ``call_next``
returns, the op carries its outcome, the tier that answered and the duration. A middleware
that declares the kinds it observes is left out of the others: hits stay on the generated
fast path, and a kind no middleware observes builds no ``Op`` at all.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cacheplug.cache.naming
from cacheplug import Cache, ConfigurationError, DiskTier, MemoryTier, Op, cached, signals
from cacheplug.middleware import KINDS
from tests.conftest import FakeClock


class Recorder:
    """A middleware recording every op it is given, optionally for some kinds only."""

    def __init__(self, observes: Any = None) -> None:
        self.ops: list[Op] = []
        if observes is not None:
            self.observes = observes

    def __call__(self, op: Op, call_next: Callable[[Op], Any]) -> Any:
        self.ops.append(op)
        return call_next(op)

    def of(self, kind: str) -> list[Op]:
        return [op for op in self.ops if op.kind == kind]

    def kinds(self) -> list[str]:
        return [op.kind for op in self.ops]


@pytest.fixture
def invalidated() -> Iterator[list[dict[str, Any]]]:
    """What ``signals.invalidated`` sends, one dict of keyword arguments per invalidation."""
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    signals.invalidated.connect(receiver)
    yield received
    signals.invalidated.disconnect(receiver)


def _internal(tags: frozenset[str]) -> bool:
    return bool(tags) and all(t.startswith("\x00") for t in tags)


# -- the user's names, and cacheplug's in separate fields -----------------------------------


@pytest.mark.parametrize("namespace", ["", "app"])
def test_direct_ops_carry_the_users_key_and_tags(clock: FakeClock, namespace: str) -> None:
    recorder = Recorder()
    with Cache([MemoryTier()], clock=clock, middleware=[recorder], namespace=namespace) as cache:
        cache.set("k", 1, tags=["user:1"])
        assert cache.get("k") == 1
        (set_op,) = recorder.of("set")
        (get_op,) = recorder.of("get")
        recorder.ops.clear()
        assert cache.get_or_compute("k2", lambda: 2, tags=["user:2"]) == 2
        assert recorder.kinds() == ["get", "compute", "set"]
    for op in (set_op, get_op):
        assert op.key == "k"
        assert op.stored_key == f"{namespace}|k:k"
        assert op.function is None
    for op in recorder.ops:
        assert op.key == "k2" and op.stored_key == f"{namespace}|k:k2" and op.function is None
    assert recorder.of("set")[0].tags == {"user:2"}
    assert set_op.tags == {"user:1"}
    assert _internal(set_op.internal_tags), set_op.internal_tags
    assert f"\x00ns:{namespace}" in set_op.internal_tags
    assert get_op.tags == frozenset()


def test_function_ops_carry_the_call_key_and_only_the_users_tags(clock: FakeClock) -> None:
    recorder = Recorder()
    with Cache([MemoryTier()], clock=clock, middleware=[recorder]) as cache:

        @cached(cache=cache, tags=["user:{a}"])
        def f(a: int, b: str) -> str:
            return b * a

        f(2, "x")
        key = f.cache_key(2, "x")
        assert [op.kind for op in recorder.ops] == ["get", "compute", "set"]
        for op in recorder.ops:
            assert op.key == op.stored_key == key  # a function call's key is its cache_key()
            assert op.function is not None and op.function.endswith(".f")
        (set_op,) = recorder.of("set")
        assert set_op.tags == {"user:2"}
        assert _internal(set_op.internal_tags)


def test_invalidate_ops_and_the_signal_carry_the_users_tags_and_keys(
    clock: FakeClock, invalidated: list[dict[str, Any]]
) -> None:
    recorder = Recorder()
    with Cache([MemoryTier()], clock=clock, middleware=[recorder]) as cache:

        @cached(cache=cache)
        def f(a: int, b: str) -> str:
            return b * a

        cache.set("k", 1)
        f(1, "x")
        recorder.ops.clear()

        cache.invalidate(tags=["user:1"], keys=["k"])
        (op,) = recorder.of("invalidate")
        assert op.tags == {"user:1"} and op.keys == {"k"}
        assert op.key is None and op.internal_tags == frozenset()
        assert invalidated[-1] == {"tags": frozenset({"user:1"}), "keys": frozenset({"k"})}

        assert cache.delete("k") is False  # invalidated above
        assert invalidated[-1] == {"tags": frozenset(), "keys": frozenset({"k"})}

        assert f.invalidate(1, "x") is True
        op = recorder.of("invalidate")[-1]
        assert op.tags == frozenset() and op.keys == {f.cache_key(1, "x")}
        assert _internal(op.internal_tags)  # the function's own tag
        assert invalidated[-1] == {"tags": frozenset(), "keys": frozenset({f.cache_key(1, "x")})}

        cache.clear()
        assert invalidated[-1] == {"tags": frozenset(), "keys": frozenset()}
    for sent in invalidated:
        assert not any(t.startswith("\x00") for t in sent["tags"])
        assert not any(k.startswith("|k:") for k in sent["keys"])  # never a direct key's stored form


# -- how the operation went ------------------------------------------------------------------


def test_ops_record_outcome_tier_and_duration(clock: FakeClock, disk_dir: Path) -> None:
    recorder = Recorder()
    disk = DiskTier(disk_dir)
    with Cache([MemoryTier(), disk], clock=clock, middleware=[recorder]) as cache:
        assert cache.memory is not None
        assert cache.get("absent") is None
        cache.set("k", 1)
        assert cache.get("k") == 1
        cache.memory.clear()
        assert cache.get("k") == 1  # from disk

        @cached(cache=cache)
        def f(a: int, b: str) -> str:
            if a < 0:
                raise ValueError(a)
            return b * a

        assert f(2, "x") == "xx"
        with pytest.raises(ValueError):
            f(-1, "x")
        cache.invalidate(tags=["t"])
    gets = [(op.key, op.outcome, op.tier) for op in recorder.of("get")]
    assert gets == [
        ("absent", "miss", None),
        ("k", "hit", "memory"),
        ("k", "hit", "disk"),
        (f.cache_key(2, "x"), "miss", None),
        (f.cache_key(-1, "x"), "miss", None),
    ]
    assert [op.outcome for op in recorder.of("compute")] == ["miss", "error"]
    for op in recorder.ops:
        assert op.duration is not None and op.duration > 0, op
    disk.close()


def test_async_compute_ops_record_their_outcome(clock: FakeClock) -> None:
    recorder = Recorder(observes={"compute"})
    with Cache([MemoryTier()], clock=clock, middleware=[recorder]) as cache:

        @cached(cache=cache)
        async def f(a: int, b: str) -> str:
            if a < 0:
                raise ValueError(a)
            return b * a

        async def calls() -> None:
            assert await f(2, "x") == "xx"
            with pytest.raises(ValueError):
                await f(-1, "x")

        asyncio.run(calls())
    assert [op.outcome for op in recorder.ops] == ["miss", "error"]
    assert all(op.duration is not None and op.duration > 0 for op in recorder.ops)


class Settled:
    """A sync middleware recording each op's outcome once its result is ready (awaited or not)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, bool]] = []
        self.returned: list[tuple[str, str]] = []

    def __call__(self, op: Op, call_next: Callable[[Op], Any]) -> Any:
        result = call_next(op)
        self.returned.append((op.kind, type(result).__name__))
        if inspect.isawaitable(result):
            return self._later(op, result)
        self._record(op)
        return result

    async def _later(self, op: Op, result: Any) -> Any:
        try:
            return await result
        finally:
            self._record(op)

    def _record(self, op: Op) -> None:
        self.seen.append((op.kind, op.outcome, op.duration is not None and op.duration > 0))


def test_async_calls_settle_every_op_once_its_result_is_awaited(clock: FakeClock) -> None:
    settled = Settled()
    with Cache([MemoryTier()], clock=clock, middleware=[settled]) as cache:

        @cached(cache=cache)
        async def f(a: int, b: str) -> str:
            return b * a

        async def calls() -> None:
            assert await f(2, "x") == "xx"
            assert await f(2, "x") == "xx"

        asyncio.run(calls())
    assert settled.seen == [
        ("get", "miss", True),
        ("compute", "miss", True),
        ("set", None, True),
        ("get", "hit", True),
    ]


def test_an_async_get_returns_an_entry_or_miss_to_middleware(clock: FakeClock) -> None:
    settled = Settled()
    with Cache([MemoryTier()], clock=clock, middleware=[settled]) as cache:

        @cached(cache=cache)
        async def f(a: int, b: str) -> str:
            return b * a

        async def calls() -> None:
            await f(2, "x")
            await f(2, "x")

        asyncio.run(calls())
    gets = [name for kind, name in settled.returned if kind == "get"]
    assert gets == ["_Miss", "Entry"]


# -- which kinds a middleware observes ---------------------------------------------------------


def test_a_miss_only_middleware_leaves_hits_on_the_fast_path(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(observes={"compute", "set", "invalidate"})
    with Cache([MemoryTier()], clock=clock, middleware=[recorder]) as cache:

        @cached(cache=cache)
        def f(a: int, b: str) -> str:
            return b * a

        assert f(2, "x") == "xx"
        assert recorder.kinds() == ["compute", "set"]
        assert f._self_core.bound is not None, "the fast path is bound despite the middleware"

        def forbidden(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the coordinator was consulted on a fast-path hit")

        monkeypatch.setattr(cache, "lookup", forbidden)
        monkeypatch.setattr(cache.tiering, "find", forbidden)
        assert f(2, "x") == "xx"
        assert f.cache_info().hits == 1
        assert recorder.kinds() == ["compute", "set"]
        monkeypatch.undo()
        cache.invalidate(tags=["t"])
        assert recorder.kinds() == ["compute", "set", "invalidate"]


@pytest.mark.parametrize("observes", [{"set"}, {"invalidate"}, {"get", "compute"}, set()])
def test_a_kind_no_middleware_observes_builds_no_op(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, observes: set[str]
) -> None:
    built: list[str] = []
    describe = cacheplug.cache.naming.Names.describe

    def counting(self: Any, kind: str, *args: Any, **kwargs: Any) -> Op:
        built.append(kind)
        return describe(self, kind, *args, **kwargs)

    monkeypatch.setattr(cacheplug.cache.naming.Names, "describe", counting)
    recorder = Recorder(observes=observes)
    with Cache([MemoryTier()], clock=clock, middleware=[recorder]) as cache:

        @cached(cache=cache)
        def f(a: int, b: str) -> str:
            return b * a

        f(2, "x")
        f(2, "x")
        cache.set("k", 1)
        cache.get("k")
        cache.get_or_compute("other", lambda: 2)
        cache.invalidate(tags=["t"])
    assert set(built) == observes
    assert built == recorder.kinds()  # an op is built exactly for each op a middleware sees


def test_a_plain_callable_observes_every_kind(clock: FakeClock) -> None:
    seen: list[str] = []

    def plain(op: Op, call_next: Callable[[Op], Any]) -> Any:
        seen.append(op.kind)
        return call_next(op)

    with Cache([MemoryTier()], clock=clock, middleware=[plain]) as cache:

        @cached(cache=cache)
        def f(a: int, b: str) -> str:
            return b * a

        f(2, "x")
        f(2, "x")
        cache.invalidate(tags=["t"])
    assert seen == ["get", "compute", "set", "get", "invalidate"]
    assert set(seen) == set(KINDS)


@pytest.mark.parametrize("observes", [{"compute", "gets"}, "compute", 42, ["hit"]])
def test_observes_with_an_unknown_kind_or_a_string_is_refused(clock: FakeClock, observes: Any) -> None:
    with pytest.raises(ConfigurationError):
        Cache([MemoryTier()], clock=clock, middleware=[Recorder(observes=observes)])


@pytest.mark.parametrize("namespace", ["", "app"])
def test_delete_removes_what_set_stored_under_any_user_key(clock: FakeClock, namespace: str) -> None:
    with Cache([MemoryTier()], clock=clock, namespace=namespace) as cache:
        for key in (f"{namespace}|fn:x", f"{namespace}|k:y"):
            cache.set(key, 1)
            assert cache.get(key) == 1
            assert cache.delete(key) is True
            assert cache.get(key) is None
