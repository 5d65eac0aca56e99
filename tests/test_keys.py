"""Keys: stable across processes and hash seeds, typed, normalised, collision-free."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import os
import pathlib
import pickle
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cacheplug import (
    Cache,
    CacheKeys,
    CacheplugError,
    ConfigurationError,
    MemoryTier,
    UnkeyableArgumentError,
    cached,
)
from cacheplug.keys import encode, fast_key, fingerprint

ROOT = pathlib.Path(__file__).resolve().parent.parent


class Color(enum.Enum):
    RED = 1
    GREEN = 2


class Level(enum.IntEnum):
    LOW = 1


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: Any


class Keyed:
    """An argument type with its own key."""

    def __init__(self, ident: Any, noise: object = None) -> None:
        self.ident = ident
        self.noise = noise

    def __cache_key__(self) -> Any:
        return ("Keyed", self.ident)


def _probe(value: Any) -> Any:
    """The function whose call keys the cross-process test compares."""
    return value


# -- strategies ---------------------------------------------------------------------------

_hashable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.uuids(),
    st.decimals(allow_nan=False, places=3, min_value=-1000, max_value=1000),
    st.sampled_from([decimal.Decimal("NaN"), decimal.Decimal("1.0"), decimal.Decimal("1.00")]),
    st.datetimes(),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.sampled_from(list(Color) + list(Level)),
    st.sampled_from([int, str, Point, dt.datetime, Keyed]),
    st.builds(pathlib.PurePosixPath, st.text(alphabet="ab/.", max_size=6)),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    hashable_children = st.one_of(_hashable_scalars, st.tuples(_hashable_scalars, _hashable_scalars))
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(hashable_children, children, max_size=4),
        st.sets(hashable_children, max_size=4),
        st.frozensets(hashable_children, max_size=4),
        st.builds(Point, st.integers(), children),
        st.builds(Keyed, children),
    )


keyable = st.recursive(_hashable_scalars, _containers, max_leaves=12)

fast_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.integers(),
    st.floats(allow_nan=True),
    st.sampled_from([0.0, -0.0, math.nan, -math.nan, float("inf"), 1.0, 1, True, 0, False, "1", b"1"]),
    st.text(max_size=4),
    st.binary(max_size=4),
)


# -- stability across processes and hash seeds --------------------------------------------

_ENCODE_IN_CHILD = textwrap.dedent(
    """
    import json, pickle, sys
    from cacheplug import Cache, MemoryTier, cached
    from cacheplug.keys import encode
    import tests.test_keys as tk

    values = pickle.load(sys.stdin.buffer)
    probe = cached(cache=Cache([MemoryTier()]))(tk._probe)
    out = [[encode(v), probe.cache_key(v)] for v in values]
    json.dump(out, sys.stdout)
    """
)


def _keys_in_child(blob: bytes, seed: str) -> list[list[str]]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-c", _ENCODE_IN_CHILD],
        input=blob,
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    result: list[list[str]] = json.loads(done.stdout)
    return result


def test_keys_are_identical_in_processes_with_different_hash_seeds() -> None:
    """Hypothesis draws supported values; two children with different PYTHONHASHSEEDs key them alike."""
    values: list[Any] = []

    @settings(max_examples=300, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(keyable)
    def collect(value: Any) -> None:
        encode(value)  # every generated value must be keyable here already
        values.append(value)

    collect()
    assert len(values) > 100
    probe = cached(cache=Cache([MemoryTier()]))(_probe)
    here = [[encode(v), probe.cache_key(v)] for v in values]
    blob = pickle.dumps(values)
    first = _keys_in_child(blob, "1")
    second = _keys_in_child(blob, "2")
    assert first == here
    assert second == here


def test_fingerprint_of_set_constants_is_stable_across_hash_seeds(tmp_path: pathlib.Path) -> None:
    source = "def pick(x):\n    return x in {'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta'}\n"
    script = (
        "from cacheplug.keys import fingerprint\n"
        f"ns = {{}}\nexec(compile({source!r}, 'mod.py', 'exec'), ns)\n"
        "print(fingerprint(ns['pick']))\n"
    )
    prints = set()
    for seed in ("0", "1", "2", "3"):
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=60,
            check=True,
        )
        prints.add(done.stdout.strip())
    assert len(prints) == 1


# -- typed keys ---------------------------------------------------------------------------


def test_int_float_and_bool_arguments_are_three_entries(memory_cache: Cache) -> None:
    calls: list[Any] = []

    @cached(cache=memory_cache)
    def f(x: Any) -> str:
        calls.append(x)
        return type(x).__name__

    assert [f(1), f(1.0), f(True)] == ["int", "float", "bool"]
    assert [f(1), f(1.0), f(True)] == ["int", "float", "bool"]
    assert len(calls) == 3
    assert len({f.cache_key(1), f.cache_key(1.0), f.cache_key(True)}) == 3
    assert f.cache_info().currsize == 3


def test_typed_false_groups_equal_numbers(memory_cache: Cache) -> None:
    calls: list[Any] = []

    @cached(cache=memory_cache, typed=False)
    def f(x: Any) -> Any:
        calls.append(x)
        return x

    f(1)
    f(1.0)
    f(True)
    assert len(calls) == 1
    f(2.5)
    assert len(calls) == 2


@given(fast_values, fast_values)
@settings(max_examples=400, deadline=None)
def test_fast_key_and_string_key_group_values_identically(a: Any, b: Any) -> None:
    assert (fast_key((a,)) == fast_key((b,))) == (encode(a) == encode(b))
    assert (fast_key((a, "x")) == fast_key((b, "x"))) == (encode((a, "x")) == encode((b, "x")))


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (0.0, -0.0, False),
        (math.nan, float("nan"), True),
        (math.nan, -math.nan, True),
        (1, 1.0, False),
        (1, True, False),
        (0, False, False),
        (None, "None", False),
        ("1", b"1", False),
    ],
)
def test_tricky_equal_values_group_the_same_in_both_key_forms(a: Any, b: Any, same: bool) -> None:
    assert (fast_key((a,)) == fast_key((b,))) is same
    assert (encode(a) == encode(b)) is same


@given(
    st.one_of(
        fast_values, st.sampled_from([decimal.Decimal("1.0"), decimal.Decimal("1.00"), decimal.Decimal(1)])
    ),
    st.one_of(
        fast_values, st.sampled_from([decimal.Decimal("1.0"), decimal.Decimal("1.00"), decimal.Decimal(1)])
    ),
)
@settings(max_examples=150, deadline=None)
def test_memory_tier_shares_an_entry_exactly_when_string_keys_match(a: Any, b: Any) -> None:
    """Two calls hit one memory entry iff their shared-tier keys are equal (Decimals, -0.0, NaN)."""
    cache = Cache([MemoryTier()])
    calls: list[Any] = []

    def f(x: Any) -> int:
        calls.append(x)
        return len(calls)

    cf = cached(cache=cache)(f)
    try:
        cf(a)
        cf(b)
        shared_in_memory = len(calls) == 1
        assert shared_in_memory == (cf.cache_key(a) == cf.cache_key(b))
    finally:
        cache.close()


# -- binding to the signature -------------------------------------------------------------


def test_positional_keyword_and_default_forms_of_one_call_share_an_entry(memory_cache: Cache) -> None:
    calls = []

    @cached(cache=memory_cache)
    def f(a: int, b: int = 2) -> int:
        calls.append((a, b))
        return a + b

    assert {f(1), f(1, 2), f(1, b=2), f(b=2, a=1), f(a=1)} == {3}
    assert len(calls) == 1
    assert len({f.cache_key(1), f.cache_key(1, 2), f.cache_key(b=2, a=1), f.cache_key(a=1)}) == 1
    f(1, 3)
    assert len(calls) == 2


def test_var_keyword_order_does_not_matter(memory_cache: Cache) -> None:
    calls = []

    @cached(cache=memory_cache)
    def f(*args: int, **kwargs: int) -> int:
        calls.append(1)
        return sum(args) + sum(kwargs.values())

    f(1, x=1, y=2)
    f(1, y=2, x=1)
    assert len(calls) == 1
    f(1, 2, x=1)
    assert len(calls) == 2


# -- unkeyable arguments ------------------------------------------------------------------


def test_unkeyable_argument_raises_a_typeerror_naming_the_parameter(memory_cache: Cache) -> None:
    calls = []

    @cached(cache=memory_cache)
    def report(user_id: int, connection: object) -> int:
        calls.append(1)
        return user_id

    with pytest.raises(UnkeyableArgumentError) as info:
        report(1, object())
    err = info.value
    assert isinstance(err, CacheplugError)
    assert isinstance(err, TypeError)
    message = str(err)
    assert "connection" in message
    assert "__cache_key__" in message and "key=" in message and "ignore=" in message
    assert calls == []


def test_unkeyable_value_nested_in_a_container_names_the_parameter(memory_cache: Cache) -> None:
    @cached(cache=memory_cache)
    def f(items: list[Any]) -> int:
        return len(items)

    with pytest.raises(TypeError, match="items"):
        f([1, {"a": object()}])


# -- supported types ----------------------------------------------------------------------


def test_cache_key_method_decides_the_key(memory_cache: Cache) -> None:
    calls = []

    @cached(cache=memory_cache)
    def f(obj: Keyed) -> Any:
        calls.append(obj)
        return obj.ident

    f(Keyed(1, noise=object()))
    f(Keyed(1, noise=object()))
    assert len(calls) == 1
    f(Keyed(2))
    assert len(calls) == 2


def test_classes_are_keyed_by_module_and_qualified_name() -> None:
    class Outer:
        class Point:
            pass

    assert encode(int) == encode(int)
    assert encode(Point) != encode(Outer.Point)
    assert encode(int) != encode(float)
    assert "tests.test_keys" in encode(Point)
    # A class defining __cache_key__ as an instance method is keyed as a class, not called.
    assert encode(Keyed).startswith("c")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (Color.RED, Color.GREEN),
        (Level.LOW, 1),
        (Color.RED, 1),
        (Point(1, 2), Point(1, 3)),
        (Point(1, 2), (1, 2)),
        (dt.datetime(2024, 1, 1), dt.date(2024, 1, 1)),
        (dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, tzinfo=dt.UTC)),
        (dt.time(1, 2), dt.time(1, 3)),
        (dt.timedelta(seconds=1), dt.timedelta(seconds=2)),
        (uuid.UUID(int=1), uuid.UUID(int=2)),
        (uuid.UUID(int=1), str(uuid.UUID(int=1))),
        (decimal.Decimal("1.5"), 1.5),
        (decimal.Decimal("1"), decimal.Decimal("2")),
        (pathlib.PurePosixPath("a/b"), "a/b"),
        (pathlib.PurePosixPath("a/b"), pathlib.PurePosixPath("a/c")),
        ([1, 2], (1, 2)),
        ({1, 2}, frozenset({1, 2})),
        ({"a": 1}, [("a", 1)]),
        (b"ab", "ab"),
        (("a", "b"), ("a,b",)),
        (("a:1",), ("a", 1)),
    ],
)
def test_distinct_values_of_supported_types_get_distinct_keys(a: Any, b: Any) -> None:
    assert encode(a) != encode(b)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Color.RED,
        lambda: Point(1, (2, 3)),
        lambda: dt.datetime(2024, 5, 6, 7, 8, 9, 10),
        lambda: dt.date(2024, 5, 6),
        lambda: uuid.UUID(int=42),
        lambda: decimal.Decimal("3.14"),
        lambda: pathlib.PurePosixPath("x/y"),
        lambda: pathlib.Path("x/y"),
        lambda: {3, 1, 2},
        lambda: {"b": 1, "a": 2},
        lambda: Keyed(("a", 1)),
    ],
)
def test_equal_values_of_supported_types_share_one_entry(memory_cache: Cache, make: Any) -> None:
    calls = []

    @cached(cache=memory_cache)
    def f(value: Any) -> int:
        calls.append(value)
        return len(calls)

    assert f(make()) == f(make()) == 1


def test_dataclass_with_unkeyable_field_names_the_parameter() -> None:
    with pytest.raises(UnkeyableArgumentError, match="point"):
        encode(Point(1, object()), name="parameter 'point'")


# -- CacheKeys ----------------------------------------------------------------------------


def test_cachekeys_make_and_child() -> None:
    keys = CacheKeys("billing")
    assert keys.make("invoice", 42) == "billing:invoice:42"
    assert keys.child("eu").make("invoice", 42) == "billing:eu:invoice:42"
    assert keys.child("eu").child("fr").make(1) == "billing:eu:fr:1"


def test_cachekeys_escape_separators_inside_parts() -> None:
    keys = CacheKeys("billing")
    assert keys.make("a:b") != keys.make("a", "b")
    assert keys.make("a\\", "b") != keys.make("a\\:b")
    assert CacheKeys("a:b").make("c") != CacheKeys("a").make("b", "c")


def test_cachekeys_rejects_an_empty_namespace() -> None:
    with pytest.raises(ValueError):
        CacheKeys("")


@pytest.mark.parametrize(
    "build",
    [
        lambda: CacheKeys(""),
        lambda: CacheKeys(42),
        lambda: CacheKeys("billing", sep="::"),
        lambda: CacheKeys("billing", sep="\\"),
        lambda: CacheKeys("billing", sep=1),
        lambda: CacheKeys("billing").make(),
    ],
)
def test_cachekeys_errors_are_cacheplug_configuration_errors(build: Any) -> None:
    """Caught as ``CacheplugError`` like every cacheplug error, and as ``ValueError``."""
    with pytest.raises(ConfigurationError) as caught:
        build()
    assert isinstance(caught.value, CacheplugError) and isinstance(caught.value, ValueError)


_parts = st.lists(st.text(alphabet=":\\ab", max_size=4), min_size=1, max_size=4)


@given(
    st.text(alphabet=":\\ab", min_size=1, max_size=3),
    _parts,
    st.text(alphabet=":\\ab", min_size=1, max_size=3),
    _parts,
)
@settings(max_examples=500, deadline=None)
def test_cachekeys_never_collide(ns1: str, parts1: list[str], ns2: str, parts2: list[str]) -> None:
    same = CacheKeys(ns1).make(*parts1) == CacheKeys(ns2).make(*parts2)
    assert same == ((ns1, parts1) == (ns2, parts2))


@given(st.text(alphabet=":\\ab", min_size=1, max_size=3), _parts, _parts)
@settings(max_examples=300, deadline=None)
def test_cachekeys_children_never_collide_with_other_children(
    child: str, parts1: list[str], parts2: list[str]
) -> None:
    keys = CacheKeys("root")
    same = keys.child(child).make(*parts1) == keys.child(child + ":").make(*parts2)
    assert not same


def test_fingerprint_changes_with_the_body_not_the_position() -> None:
    def load(source: str, filename: str) -> Any:
        namespace: dict[str, Any] = {"__name__": "fpmod"}
        exec(compile(source, filename, "exec"), namespace)
        return namespace["f"]

    base = load("def f(x):\n    return x + 1\n", "a.py")
    moved = load("\n\n\n# a comment\ndef f(x):\n    return x + 1\n", "b.py")
    edited = load("def f(x):\n    return x + 2\n", "a.py")
    assert fingerprint(base) == fingerprint(moved)
    assert fingerprint(base) != fingerprint(edited)
