"""Middleware: callables (op, call_next) around every cache operation, composed once."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from cacheplug import MISS, Cache, MemoryTier, Op, cached
from tests.conftest import FakeClock


class Recorder:
    """A middleware that records (kind, key, function) of every operation it sees."""

    def __init__(self, label: str = "", log: list[Any] | None = None) -> None:
        self.label = label
        self.ops: list[Op] = []
        self.log = log if log is not None else []

    def __call__(self, op: Op, call_next: Callable[[Op], Any]) -> Any:
        self.ops.append(op)
        self.log.append(f"{self.label}{op.kind}")
        return call_next(op)

    def kinds(self) -> list[str]:
        return [op.kind for op in self.ops]


def test_ops_describe_get_compute_set_with_key_and_function(clock: FakeClock) -> None:
    recorder = Recorder()
    with Cache([MemoryTier()], clock=clock, middleware=[recorder]) as cache:

        @cached(cache=cache)
        def lookup(x: int) -> int:
            return x * 2

        assert lookup(4) == 8
        assert recorder.kinds() == ["get", "compute", "set"]
        key = lookup.cache_key(4)
        assert all(op.key == key for op in recorder.ops)
        assert all(op.function is not None and op.function.endswith("lookup") for op in recorder.ops)
        assert recorder.ops[2].internal_tags  # a set carries the entry's tags (here only internal ones)

        recorder.ops.clear()
        assert lookup(4) == 8
        assert recorder.kinds() == ["get"]  # a hit goes through the chain too


def test_invalidate_op_is_seen(clock: FakeClock) -> None:
    recorder = Recorder()
    with Cache([MemoryTier()], clock=clock, middleware=[recorder]) as cache:

        @cached(cache=cache)
        def f(x: int) -> int:
            return x

        f(1)
        recorder.ops.clear()
        assert f.invalidate(1) is True
        invalidations = [op for op in recorder.ops if op.kind == "invalidate"]
        assert len(invalidations) == 1
        assert f.cache_key(1) in invalidations[0].keys
        recorder.ops.clear()
        cache.invalidate(tags=["user:1"])
        assert [op.kind for op in recorder.ops] == ["invalidate"]
        assert "user:1" in recorder.ops[0].tags


def test_direct_api_ops_have_no_function(clock: FakeClock) -> None:
    recorder = Recorder()
    with Cache([MemoryTier()], clock=clock, middleware=[recorder]) as cache:
        cache.set("k", 1)
        assert cache.get("k") == 1
        assert recorder.kinds() == ["set", "get"]
        assert all(op.function is None for op in recorder.ops)
        assert all(op.key is not None and op.key.endswith("k") for op in recorder.ops)


def test_middleware_can_alter_computed_results(clock: FakeClock) -> None:
    def tenfold(op: Op, call_next: Callable[[Op], Any]) -> Any:
        result = call_next(op)
        return result * 10 if op.kind == "compute" else result

    with Cache([MemoryTier()], clock=clock, middleware=[tenfold]) as cache:

        @cached(cache=cache)
        def f(x: int) -> int:
            return x

        assert f(2) == 20
        assert f(2) == 20  # the altered value is what was stored
        assert f.cache_info().hits == 1


def test_middleware_can_turn_reads_into_misses(clock: FakeClock) -> None:
    def bypass(op: Op, call_next: Callable[[Op], Any]) -> Any:
        return MISS if op.kind == "get" else call_next(op)

    calls: list[int] = []
    with Cache([MemoryTier()], clock=clock, middleware=[bypass]) as cache:

        @cached(cache=cache)
        def f(x: int) -> int:
            calls.append(x)
            return x

        f(1)
        f(1)
        assert calls == [1, 1]


def test_middleware_can_rewrite_the_op(clock: FakeClock) -> None:
    seen: list[str | None] = []

    def rename(op: Op, call_next: Callable[[Op], Any]) -> Any:
        return call_next(dataclasses.replace(op, function="renamed"))

    def observe(op: Op, call_next: Callable[[Op], Any]) -> Any:
        seen.append(op.function)
        return call_next(op)

    with Cache([MemoryTier()], clock=clock, middleware=[rename, observe]) as cache:

        @cached(cache=cache)
        def f(x: int) -> int:
            return x

        f(1)
    assert seen and set(seen) == {"renamed"}


def test_ops_are_immutable() -> None:
    op = Op("get", "k", "f")
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.kind = "set"  # type: ignore[misc]


def test_chain_runs_outermost_first_and_is_composed_once(clock: FakeClock) -> None:
    log: list[str] = []
    middleware: list[Any] = [Recorder("a:", log), Recorder("b:", log)]
    with Cache([MemoryTier()], clock=clock, middleware=middleware) as cache:
        late = Recorder("late:", log)
        middleware.append(late)  # after the cache was built: not part of its chain
        cache.set("k", 1)
        cache.get("k")
    assert log == ["a:set", "b:set", "a:get", "b:get"]
    assert late.ops == []


def test_without_middleware_hits_take_the_decorator_fast_path(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Cache([MemoryTier()], clock=clock) as cache:

        @cached(cache=cache)
        def f(a: int, b: str) -> str:
            return b * a

        assert f(2, "x") == "xx"

        def forbidden(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the coordinator was consulted on a fast-path hit")

        monkeypatch.setattr(cache, "lookup", forbidden)
        monkeypatch.setattr(cache.tiering, "find", forbidden)
        assert f(2, "x") == "xx"
        assert f.cache_info().hits == 1


def test_with_middleware_hits_go_through_the_coordinator(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    with Cache([MemoryTier()], clock=clock, middleware=[recorder]) as cache:

        @cached(cache=cache)
        def f(a: int, b: str) -> str:
            return b * a

        f(2, "x")
        recorder.ops.clear()
        f(2, "x")
        assert recorder.kinds() == ["get"]
