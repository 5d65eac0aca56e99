"""@cached on plain functions: options, helpers, errors and metadata."""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cacheplug import (
    Cache,
    CachedFunction,
    ConfigurationError,
    DiskTier,
    MemoryTier,
    cached,
    configure,
    get_cache,
)
from tests.conftest import FakeClock


class Counter:
    """Counts calls of a function under test."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    def __len__(self) -> int:
        return len(self.calls)


@pytest.fixture
def reopen(clock: FakeClock, disk_dir: Path) -> Iterator[Any]:
    """Open another cache over ``disk_dir`` with an empty memory tier (a 'new process' view)."""
    opened: list[tuple[Cache, DiskTier]] = []

    def make() -> Cache:
        disk = DiskTier(disk_dir)
        cache = Cache([MemoryTier(), disk], clock=clock)
        opened.append((cache, disk))
        return cache

    yield make
    for cache, disk in opened:
        cache.close()
        disk.close()


def _source_function(source: str, cache: Cache, counter: Counter, **options: Any) -> Any:
    """Define ``f`` from source text in a fixed module name and decorate it."""
    namespace: dict[str, Any] = {"__name__": "generated_mod", "counter": counter}
    exec(compile(source, "generated_mod.py", "exec"), namespace)
    return cached(cache=cache, **options)(namespace["f"])


# -- decorator forms ----------------------------------------------------------------------


def test_bare_decorator_caches_in_the_default_cache() -> None:
    counter = Counter()

    @cached
    def double(x: int) -> int:
        counter.calls.append(x)
        return 2 * x

    assert isinstance(double, CachedFunction)
    assert double(2) == 4
    assert double(2) == 4
    assert len(counter) == 1
    assert get_cache().stats()["hits"] == 1


def test_default_cache_is_looked_up_at_call_time(clock: FakeClock) -> None:
    counter = Counter()

    @cached
    def f(x: int) -> int:
        counter.calls.append(x)
        return x

    first = configure(cache=Cache([MemoryTier()], clock=clock))
    f(1)
    f(1)
    assert len(counter) == 1
    second = configure(cache=Cache([MemoryTier()], clock=clock))
    f(1)
    assert len(counter) == 2
    assert first.stats()["misses"] == 1 and second.stats()["misses"] == 1


def test_decorator_with_arguments(memory_cache: Cache) -> None:
    counter = Counter()

    @cached(60, cache=memory_cache)
    def f(x: int) -> int:
        counter.calls.append(x)
        return x

    f(1)
    f(1)
    assert len(counter) == 1


def test_explicit_cache_is_used_instead_of_the_default(memory_cache: Cache) -> None:
    @cached(cache=memory_cache)
    def f(x: int) -> int:
        return x

    f(1)
    f(1)
    assert memory_cache.stats()["misses"] == 1
    assert memory_cache.stats()["hits"] == 1
    default_stats = get_cache().stats()
    assert default_stats["hits"] == 0 and default_stats["misses"] == 0


# -- ttl ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [10, 10.0, dt.timedelta(seconds=10)])
def test_ttl_expires_in_memory_and_on_disk(tiered_cache: Cache, clock: FakeClock, ttl: Any) -> None:
    counter = Counter()

    @cached(ttl, cache=tiered_cache)
    def f(x: int) -> int:
        counter.calls.append(x)
        return len(counter)

    assert f(1) == 1
    clock.advance(9.9)
    assert f(1) == 1
    clock.advance(0.1)
    # Both tiers hold the entry; neither may serve it now.
    assert f(1) == 2
    assert len(counter) == 2


def test_disk_entry_expires_for_a_fresh_memory_tier(
    tiered_cache: Cache, clock: FakeClock, reopen: Any
) -> None:
    counter = Counter()

    def make(cache: Cache) -> Any:
        # version=: these functions close over test counters (unkeyable), which would keep them memory-only
        @cached(10, cache=cache, version="1")
        def f(x: int) -> int:
            counter.calls.append(x)
            return len(counter)

        return f

    make(tiered_cache)(1)
    clock.advance(5)
    assert make(reopen())(1) == 1  # served from disk
    clock.advance(5)
    assert make(reopen())(1) == 2  # expired on disk too
    assert len(counter) == 2


def test_ttl_zero_does_not_store(tiered_cache: Cache) -> None:
    counter = Counter()

    @cached(0, cache=tiered_cache)
    def f(x: int) -> int:
        counter.calls.append(x)
        return x

    f(1)
    f(1)
    assert len(counter) == 2
    assert f.cache_info().currsize == 0
    disk = tiered_cache.tiers[1]
    assert isinstance(disk, DiskTier)
    assert len(disk) == 0


def test_ttl_none_uses_the_cache_default_ttl(clock: FakeClock) -> None:
    counter = Counter()
    with Cache([MemoryTier()], clock=clock, default_ttl=5) as cache:

        @cached(cache=cache)
        def f(x: int) -> int:
            counter.calls.append(x)
            return x

        f(1)
        clock.advance(4.9)
        f(1)
        assert len(counter) == 1
        clock.advance(0.2)
        f(1)
        assert len(counter) == 2


def test_without_any_ttl_entries_never_expire(tiered_cache: Cache, clock: FakeClock) -> None:
    counter = Counter()

    @cached(cache=tiered_cache)
    def f(x: int) -> int:
        counter.calls.append(x)
        return x

    f(1)
    clock.advance(10 * 365 * 86400)
    f(1)
    assert len(counter) == 1


# -- key material -------------------------------------------------------------------------


def test_key_callable_chooses_the_key_material(memory_cache: Cache) -> None:
    counter = Counter()

    @cached(cache=memory_cache, key=lambda user_id, verbose: user_id)
    def f(user_id: int, verbose: bool) -> int:
        counter.calls.append(user_id)
        return user_id

    f(1, True)
    f(1, False)
    assert len(counter) == 1
    f(2, False)
    assert len(counter) == 2

    @cached(cache=memory_cache, key=lambda user_id, verbose: user_id)
    def g(user_id: int, verbose: bool) -> int:
        return -user_id

    # The function's identity is still part of the key.
    assert g(1, True) == -1
    assert f.cache_key(1, True) != g.cache_key(1, True)


def test_ignored_parameters_are_left_out_of_the_key(memory_cache: Cache) -> None:
    counter = Counter()

    @cached(cache=memory_cache, ignore=("log",))
    def f(x: int, log: object) -> int:
        counter.calls.append(x)
        return x

    f(1, object())
    f(1, object())
    assert len(counter) == 1


def test_namespace_separates_otherwise_identical_functions(tiered_cache: Cache) -> None:
    # Two function objects never share memory entries; identical ones share the disk tier's.
    counter = Counter()
    source = "def f(x):\n    counter.calls.append(x)\n    return x\n"
    plain = _source_function(source, tiered_cache, counter)
    spaced = _source_function(source, tiered_cache, counter, namespace="billing")
    same = _source_function(source, tiered_cache, counter)
    plain(1)
    same(1)
    assert len(counter) == 1
    spaced(1)
    assert len(counter) == 2
    assert "billing" in spaced.cache_key(1)
    assert plain.cache_key(1) != spaced.cache_key(1)


def test_explicit_version_replaces_the_fingerprint(tiered_cache: Cache) -> None:
    # Two function objects never share memory entries; the same version shares the disk's.
    counter = Counter()
    v1 = _source_function("def f(x):\n    return 1\n", tiered_cache, counter, version="7")
    v1_edited = _source_function("def f(x):\n    return 2\n", tiered_cache, counter, version="7")
    v2 = _source_function("def f(x):\n    return 1\n", tiered_cache, counter, version="8")
    assert v1.cache_key(1) == v1_edited.cache_key(1)
    assert "@7(" in v1.cache_key(1)
    assert v1.cache_key(1) != v2.cache_key(1)
    assert v1(1) == 1
    assert v1_edited(1) == 1  # same version: the stored result is served


def test_editing_the_body_never_serves_results_of_the_old_code(tiered_cache: Cache, reopen: Any) -> None:
    counter = Counter()
    old = "def f(x):\n    counter.calls.append(x)\n    return x + 1\n"
    moved = "\n\n\n\n# moved down\ndef f(x):\n    counter.calls.append(x)\n    return x + 1\n"
    edited = "def f(x):\n    counter.calls.append(x)\n    return x + 2\n"
    assert _source_function(old, tiered_cache, counter)(1) == 2
    assert _source_function(moved, reopen(), counter)(1) == 2
    assert len(counter) == 1  # only line numbers changed: the persisted result is reused
    assert _source_function(edited, reopen(), counter)(1) == 3
    assert len(counter) == 2


# -- storing decisions --------------------------------------------------------------------


def test_cache_if_false_returns_without_storing(memory_cache: Cache) -> None:
    counter = Counter()

    @cached(cache=memory_cache, cache_if=lambda result: result is not None)
    def find(x: int) -> int | None:
        counter.calls.append(x)
        return None if x < 0 else x

    assert find(-1) is None
    assert find(-1) is None
    assert len(counter) == 2
    find(1)
    find(1)
    assert len(counter) == 3


def test_copy_true_protects_cached_values_from_callers(memory_cache: Cache) -> None:
    @cached(cache=memory_cache, copy=True)
    def items(n: int) -> list[int]:
        return list(range(n))

    first = items(3)
    first.append(99)
    assert items(3) == [0, 1, 2]
    assert items(3) is not items(3)


def test_copy_false_returns_the_cached_object(memory_cache: Cache) -> None:
    @cached(cache=memory_cache)
    def items(n: int) -> list[int]:
        return list(range(n))

    assert items(3) is items(3)


def test_exceptions_propagate_unchanged_and_are_not_cached(tiered_cache: Cache) -> None:
    counter = Counter()
    error = ValueError("boom")

    @cached(cache=tiered_cache)
    def f(x: int) -> int:
        counter.calls.append(x)
        raise error

    for _ in range(2):
        with pytest.raises(ValueError) as info:
            f(1)
        assert info.value is error
    assert len(counter) == 2
    assert f.cache_info().currsize == 0


def test_wrong_arguments_raise_the_functions_own_typeerror(memory_cache: Cache) -> None:
    @cached(cache=memory_cache)
    def f(x: int) -> int:
        return x

    with pytest.raises(TypeError, match="argument"):
        f(1, 2, 3)  # type: ignore[call-arg]


# -- decoration-time errors ---------------------------------------------------------------


def test_generator_functions_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="generator"):

        @cached
        def gen() -> Iterator[int]:
            yield 1

    with pytest.raises(ConfigurationError, match="generator"):

        @cached(ttl=5)
        async def agen() -> Any:
            yield 1


def _plain(user_id: int, name: str = "") -> int:
    return user_id


@pytest.mark.parametrize(
    "options",
    [
        {"ttl": -1},
        {"ttl": dt.timedelta(seconds=-1)},
        {"ttl": "10"},
        {"ttl": float("nan")},
        {"ignore": ("nope",)},
        {"ignore": "user_id"},
        {"key": 42},
        {"tags": ["user:{nope}"]},
        {"tags": "user:{user_id}"},
        {"version": 1.5},
        {"cache": "default"},
        {"cache_if": True},
    ],
)
def test_bad_decorator_arguments_raise_configuration_error_at_decoration(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        cached(**options)(_plain)


def test_configuration_error_names_the_unknown_parameter() -> None:
    with pytest.raises(ConfigurationError, match="nope"):
        cached(ignore=("nope",))(_plain)
    with pytest.raises(ConfigurationError, match="nope"):
        cached(tags=["user:{nope}"])(_plain)


def test_valid_tag_templates_are_accepted() -> None:
    cached(tags=["user:{user_id}", "name:{name}"])(_plain)


# -- helpers ------------------------------------------------------------------------------


def test_cache_info_counts_hits_misses_and_current_size(tiered_cache: Cache) -> None:
    @cached(cache=tiered_cache)
    def f(x: int) -> int:
        return x

    f(1)
    f(1)
    f(2)
    f(1)
    info = f.cache_info()
    assert (info.hits, info.misses, info.currsize) == (2, 2, 2)
    f.cache_clear()
    assert f.cache_info().currsize == 0


def test_cache_clear_drops_entries_in_every_tier(tiered_cache: Cache, reopen: Any) -> None:
    counter = Counter()

    def make(cache: Cache) -> Any:
        @cached(cache=cache)
        def f(x: int) -> int:
            counter.calls.append(x)
            return x

        return f

    f = make(tiered_cache)
    f(1)
    f(2)
    f.cache_clear()
    f(1)
    assert len(counter) == 3
    make(reopen())(2)  # not on disk any more either
    assert len(counter) == 4


def test_cache_clear_leaves_other_functions_alone(memory_cache: Cache) -> None:
    counter = Counter()

    @cached(cache=memory_cache)
    def f(x: int) -> int:
        counter.calls.append(("f", x))
        return x

    @cached(cache=memory_cache)
    def g(x: int) -> int:
        counter.calls.append(("g", x))
        return x

    f(1)
    g(1)
    f.cache_clear()
    g(1)
    assert len(counter) == 2
    assert g.cache_info().currsize == 1


def test_invalidate_reports_whether_a_fresh_entry_existed(tiered_cache: Cache, reopen: Any) -> None:
    counter = Counter()

    def make(cache: Cache) -> Any:
        @cached(cache=cache, version="1")
        def f(x: int, y: int = 0) -> int:
            counter.calls.append(x)
            return x

        return f

    f = make(tiered_cache)
    assert f.invalidate(1) is False
    f(1)
    f(2)
    assert f.invalidate(1, y=0) is True
    assert f.invalidate(1) is False
    f(1)
    f(2)
    assert len(counter) == 3
    # The invalidation reached the disk tier too.
    assert make(reopen()).invalidate(2) is True


def test_invalidated_entry_is_not_served_from_disk(tiered_cache: Cache, reopen: Any) -> None:
    counter = Counter()

    def make(cache: Cache) -> Any:
        @cached(cache=cache)
        def f(x: int) -> int:
            counter.calls.append(x)
            return x

        return f

    make(tiered_cache)(1)
    make(tiered_cache).invalidate(1)
    make(reopen())(1)
    assert len(counter) == 2


def test_refresh_recomputes_stores_and_returns(memory_cache: Cache) -> None:
    counter = Counter()

    @cached(cache=memory_cache)
    def f(x: int) -> int:
        counter.calls.append(x)
        return len(counter)

    assert f(1) == 1
    assert f.refresh(1) == 2
    assert f(1) == 2
    assert len(counter) == 2


def test_cache_key_is_a_stable_string(memory_cache: Cache) -> None:
    @cached(cache=memory_cache)
    def f(x: int, name: str = "a") -> int:
        return x

    key = f.cache_key(1)
    assert isinstance(key, str)
    assert key == f.cache_key(1, "a") == f.cache_key(x=1)
    assert key != f.cache_key(2)
    assert f"{f.__wrapped__.__qualname__}" in key


def test_signature_name_doc_and_wrapped_are_preserved(memory_cache: Cache) -> None:
    def original(a: int, b: str = "x", *, c: float = 1.0) -> list[str]:
        """Docs of the original."""
        return [b] * a

    wrapped = cached(cache=memory_cache)(original)
    assert wrapped.__name__ == "original"
    assert wrapped.__qualname__ == original.__qualname__
    assert wrapped.__doc__ == "Docs of the original."
    assert wrapped.__module__ == original.__module__
    assert wrapped.__wrapped__ is original
    assert inspect.signature(wrapped) == inspect.signature(original)
    assert inspect.isfunction(wrapped.__wrapped__)
    assert wrapped(2, "y") == ["y", "y"]
