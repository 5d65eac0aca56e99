"""Every key part separates entries in every tier alike; closures; dropped functions leave nothing.

Issue 6, items 1 and 2: a ``version=`` bump, a redefinition, ``importlib.reload``,
``ignore=``, ``typed=``, ``key=`` and the closure's cells each separate entries in a
memory-only, a memory+disk and a disk-only cache; distinct function objects never share
memory entries, and decorating fresh closures does not leak.
"""

from __future__ import annotations

import gc
import importlib
import logging
import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from cacheplug import Cache, DiskTier, MemoryTier, cached

KINDS = ["memory", "memory+disk", "disk"]


@pytest.fixture(params=KINDS)
def make_cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Cache]]:
    """Caches of one kind; with a disk tier, every one opens the same directory ('another process')."""
    opened: list[Any] = []

    def make() -> Cache:
        disk = lambda: DiskTier(tmp_path / "disk")  # noqa: E731
        tiers: list[Any] = {
            "memory": lambda: [MemoryTier()],
            "memory+disk": lambda: [MemoryTier(), disk()],
            "disk": lambda: [disk()],
        }[request.param]()
        cache = Cache(tiers)
        opened.append(cache)
        opened.extend(tiers)
        return cache

    yield make
    for thing in opened:
        thing.close()


def _define(source: str, cache: Cache, name: str = "f", **options: Any) -> Any:
    """Define ``name`` from source text in a fixed module and decorate it."""
    namespace: dict[str, Any] = {"__name__": "generated_keys_mod"}
    exec(compile(source, "generated_keys_mod.py", "exec"), namespace)
    return cached(cache=cache, **options)(namespace[name])


def test_version_bump_separates_entries_in_every_tier(make_cache: Callable[[], Cache]) -> None:
    cache = make_cache()
    source = "def f(x):\n    return ('v', x)\n"
    one = _define(source.replace("'v'", "'one'"), cache, version="1")
    two = _define(source.replace("'v'", "'two'"), cache, version="2")
    assert one(1) == ("one", 1)
    assert two(1) == ("two", 1)  # before the fix: ('one', 1) from the memory fast path
    assert two("s") == ("two", "s")
    assert one("s") == ("one", "s")


def test_redefined_function_never_serves_the_old_bodys_results(make_cache: Callable[[], Cache]) -> None:
    cache = make_cache()
    old = _define("def f(x):\n    return x + 1\n", cache)
    assert old(1) == 2
    new = _define("def f(x):\n    return x + 2\n", cache)
    assert new(1) == 3
    assert old(1) == 2


def test_reloaded_module_never_serves_the_old_bodys_results(
    make_cache: Callable[[], Cache], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = make_cache()
    package = tmp_path / "reload_pkg"
    package.mkdir()
    module = package / "cp_reloaded_mod.py"
    body = "from cacheplug import cached\nCACHE = None\n\ndef f(x):\n    return x * {factor}\n"
    module.write_text(body.format(factor=10))
    monkeypatch.syspath_prepend(str(package))
    monkeypatch.delitem(sys.modules, "cp_reloaded_mod", raising=False)
    mod = importlib.import_module("cp_reloaded_mod")
    try:
        first = cached(cache=cache)(mod.f)
        assert first(2) == 20
        module.write_text(body.format(factor=100))
        importlib.invalidate_caches()
        mod = importlib.reload(mod)
        second = cached(cache=cache)(mod.f)
        assert second(2) == 200
    finally:
        sys.modules.pop("cp_reloaded_mod", None)


def test_ignore_settings_never_share_entries(make_cache: Callable[[], Cache]) -> None:
    cache = make_cache()
    source = "def f(a, b):\n    return (a, b)\n"
    without_a = _define(source, cache, ignore=("a",))
    without_b = _define(source, cache, ignore=("b",))
    assert without_a(1, 2) == (1, 2)  # keyed by b=2
    assert without_b(2, 9) == (2, 9)  # keyed by a=2: before the fix, (1, 2) from disk
    assert without_a.cache_key(1, 2) != without_b.cache_key(2, 1)


def test_typed_settings_never_share_entries(make_cache: Callable[[], Cache]) -> None:
    cache = make_cache()
    source = "def f(x):\n    return type(x).__name__\n"
    untyped = _define(source, cache, typed=False)
    typed = _define(source, cache)
    assert untyped(True) == "bool"  # untyped: stored under the key of 1
    assert typed(1) == "int"
    assert untyped(1) == "bool"  # untyped: True and 1 are one entry


def test_key_function_change_never_shares_entries(make_cache: Callable[[], Cache]) -> None:
    cache = make_cache()
    source = "def f(x):\n    return x * 10\n"
    by_value = _define(source, cache, key=lambda x: x)
    by_parity = _define(source, cache, key=lambda x: x % 2)
    assert by_value(1) == 10
    assert by_parity(3) == 30  # same key material (1), another key function
    assert by_parity(5) == 30  # by_parity's own entry for parity 1


def test_default_keys_keep_their_text() -> None:
    with Cache([MemoryTier()]) as cache:
        f = _define("def f(a, b):\n    return a\n", cache)
        assert f.cache_key(1, "x").startswith("|fn:generated_keys_mod.f@")
        assert f.cache_key(1, "x").endswith("(i1,s1:x)")
        assert "~" not in f.cache_key(1, "x")


# -- closures -------------------------------------------------------------------------------


def test_closures_of_one_factory_never_share_entries(make_cache: Callable[[], Cache]) -> None:
    cache = make_cache()

    def make(n: int) -> Any:
        return cached(cache=cache)(lambda x: x * n)

    assert make(2)(5) == 10
    assert make(3)(5) == 15
    assert make(2)(5) == 10


# Computations counted by a module global: globals are not closure cells, so counting them
# leaves the closures below keyable (a counter in a cell would keep them memory-only).
_COMPUTED: list[tuple[int, int]] = []


@pytest.mark.parametrize("kind", ["disk", "memory+disk"])
def test_closures_over_keyable_values_share_the_shared_tiers(tmp_path: Path, kind: str) -> None:
    """Closures over an int and a dict join the shared key by value: another process's cache
    on the same directory serves them, and two factories' closures never share an entry."""
    _COMPUTED.clear()

    def make(cache: Cache, config: dict[str, int]) -> Any:
        @cached(cache=cache)
        def times(x: int) -> int:
            _COMPUTED.append((config["rate"], x))
            return x * config["rate"]

        return times

    # The second cache is another process's view of the same directory, with an empty memory tier.
    for _ in range(2):
        with closing(DiskTier(tmp_path / "d")) as disk:
            tiers: list[Any] = [disk] if kind == "disk" else [MemoryTier(), disk]
            with Cache(tiers) as cache:
                two, three = make(cache, {"rate": 2}), make(cache, {"rate": 3})
                assert two(5) == 10
                assert three(5) == 15
                assert two(5) == 10
                assert three(5) == 15
                assert make(cache, {"rate": 2})(5) == 10  # a fresh closure over an equal dict
    assert _COMPUTED == [(2, 5), (3, 5)]  # everything else was served by a shared tier


_GUARDED_CALLS: list[int] = []


@pytest.mark.parametrize("unkeyable", [threading.Lock, object], ids=["lock", "object"])
def test_closure_over_an_identity_object_stays_memory_only_unless_versioned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, unkeyable: Callable[[], Any]
) -> None:
    state = unkeyable()
    _GUARDED_CALLS.clear()  # a global, not a cell: a list's contents would join the key
    with closing(DiskTier(tmp_path / "d")) as disk, Cache([MemoryTier(), disk]) as cache:

        @cached(cache=cache)
        def guarded(n: int) -> int:
            _GUARDED_CALLS.append(n)
            return n * 2 if state is not None else 0

        with caplog.at_level(logging.WARNING, logger="cacheplug"):
            assert guarded(2) == 4
            assert guarded(2) == 4
            assert guarded(3) == 6
        assert _GUARDED_CALLS == [2, 3]  # memory still caches it
        assert len(disk) == 0  # never written to the shared tier
        warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warned) == 1
        message = warned[0].getMessage()
        assert "guarded" in message
        assert "key=" in message or "version=" in message

        # version=: the user says what identifies the function; the cells are ignored.
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="cacheplug"):

            @cached(cache=cache, version="1")
            def versioned(n: int) -> int:
                _GUARDED_CALLS.append(n)
                return n * 2 if state is not None else 0

            assert versioned(2) == 4
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(disk) == 1

    # Another process's cache on the same directory, memory empty: served from disk.
    _GUARDED_CALLS.clear()
    with closing(DiskTier(tmp_path / "d")) as disk, Cache([MemoryTier(), disk]) as cache:

        @cached(cache=cache, version="1")
        def versioned(n: int) -> int:  # the same function, in "another process"
            _GUARDED_CALLS.append(n)
            return n * 2 if state is not None else 0

        assert versioned(2) == 4
    assert _GUARDED_CALLS == []


class _Money:
    """A value object (it has its own ``__eq__``) without a stable key."""

    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Money) and other.cents == self.cents

    __hash__ = None  # type: ignore[assignment]


def test_closure_over_an_unkeyable_value_stays_memory_only_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    price = _Money(250)
    with closing(DiskTier(tmp_path / "d")) as disk, Cache([MemoryTier(), disk]) as cache:

        @cached(cache=cache)
        def total(n: int) -> int:
            return n * price.cents

        with caplog.at_level(logging.WARNING, logger="cacheplug"):
            assert total(2) == 500
            assert total(2) == 500
            assert total(3) == 750
        assert total.cache_info().hits == 1
        assert disk.keys() == []  # never written to the shared tier
        warned = [r for r in caplog.records if "total" in r.getMessage()]
        assert len(warned) == 1
        assert "key=" in warned[0].getMessage() and "version=" in warned[0].getMessage()

        # version= (or key=): the user says what identifies the function; cells are ignored.
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="cacheplug"):

            @cached(cache=cache, version="prices-1")
            def shared_total(n: int) -> int:
                return n * price.cents

            assert shared_total(2) == 500
        assert not caplog.records
        assert len(disk.keys()) == 1


def test_cells_empty_at_decoration_are_read_at_the_first_call(make_cache: Callable[[], Cache]) -> None:
    cache = make_cache()

    def make(step: int) -> Any:
        @cached(cache=cache)
        def walk(n: int) -> int:  # closes over itself (empty until the def completes) and step
            return 0 if n <= 0 else step + walk(n - 1)

        return walk

    assert make(2)(3) == 6
    assert make(5)(3) == 15

    class Base:
        def size(self) -> int:
            return 1

    def subclass(extra: int) -> Any:
        class Child(Base):
            @cached(cache=cache)
            def size(self) -> int:
                return super().size() + extra  # __class__ and extra

            def __cache_key__(self) -> int:
                return 0

        return Child

    assert subclass(1)().size() == 2
    assert subclass(7)().size() == 8


@pytest.mark.slow
def test_decorating_fresh_closures_does_not_leak() -> None:
    """5,000 closures decorated, called once and dropped leave <= 1 MB behind (53 MB before)."""
    with Cache([MemoryTier()]) as cache:

        def make(n: int) -> Any:
            return cached(cache=cache)(lambda x: x * n)

        for i in range(50):  # warm up: caches of the interpreter and of cacheplug
            assert make(i)(1) == i
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for i in range(5000):
                assert make(i)(2) == 2 * i
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        assert grown <= 1_000_000, f"{grown} bytes left behind"
        assert cache.stats().misses == 5050  # counts of dropped functions are kept
        assert len(cache.memory or ()) <= 64  # their shelves left the memory tier


# -- closures whose cells hold functions, lambdas and classes ---------------------------------------


def test_closures_over_helpers_of_one_factory_never_share_entries(make_cache: Callable[[], Cache]) -> None:
    """A cell holding a function is keyed by that function's own cells too, not by its name."""
    cache = make_cache()

    def make(n: int) -> Any:
        def scale(x: int) -> int:
            return x * n

        @cached(cache=cache)
        def f(x: int) -> int:
            return scale(x)

        return f

    def make_lambda(n: int) -> Any:
        scale = lambda x: x * n  # noqa: E731

        @cached(cache=cache)
        def g(x: int) -> int:
            return scale(x)

        return g

    assert (make(2)(5), make(3)(5)) == (10, 15)
    assert (make_lambda(2)(5), make_lambda(3)(5)) == (10, 15)


def test_version_keeps_a_factorys_keyable_cells_in_the_key(make_cache: Callable[[], Cache]) -> None:
    """version= speaks for the code, not for what each closure closes over."""
    cache = make_cache()

    def make(n: int) -> Any:
        @cached(cache=cache, version="1")
        def f(x: int) -> int:
            return x * n

        return f

    assert (make(2)(5), make(3)(5)) == (10, 15)


def test_a_closure_over_a_class_made_by_a_factory_stays_memory_only(tmp_path: Path) -> None:
    disk = DiskTier(tmp_path / "disk")

    def make(n: int) -> Any:
        class Scale:
            factor = n

        @cached(cache=Cache([MemoryTier(), disk]))
        def f(x: int) -> int:
            return x * Scale.factor

        return f

    assert (make(2)(5), make(3)(5)) == (10, 15)
    assert len(disk) == 0


def test_editing_a_function_under_another_decorator_changes_its_key(tmp_path: Path) -> None:
    """``@cached`` over a ``functools.wraps`` wrapper: the wrapped body is fingerprinted too."""
    directory = tmp_path / "disk"
    results = []
    for body in ("return x * 2", "return x * 3"):
        namespace: dict[str, Any] = {}
        exec(
            "import functools\n"
            "def logged(fn):\n"
            "    @functools.wraps(fn)\n"
            "    def inner(*args, **kwargs):\n"
            "        return fn(*args, **kwargs)\n"
            "    return inner\n"
            f"def price(x):\n    {body}\n",
            namespace,
        )
        with closing(DiskTier(directory)) as disk, Cache([MemoryTier(), disk]) as cache:
            price = cached(cache=cache)(namespace["logged"](namespace["price"]))
            results.append(price(10))
    assert results == [20, 30]  # a deploy that edits the body never serves the old results
