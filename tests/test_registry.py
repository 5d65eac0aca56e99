"""The registry of decorated functions: every live ``@cached`` function with its policy."""

from __future__ import annotations

import gc
from datetime import timedelta
from typing import Any

from cacheplug import Cache, RegisteredFunction, cached, cached_functions


def _mine() -> dict[str, RegisteredFunction]:
    return {f.name: f for f in cached_functions() if f.module == __name__}


def test_a_decorated_function_is_listed_with_its_policy(memory_cache: Cache) -> None:
    def shard(x: int) -> str:
        return str(x % 4)

    @cached(
        timedelta(minutes=5),
        tags=["item:{x}"],
        warm=[(1,), {"x": 2}],
        namespace="billing",
        version=3,
        cache=memory_cache,
        typed=False,
        ignore=("trace",),
        copy=True,
    )
    def price(x: int, trace: str = "") -> int:
        return x

    found = _mine()[price.__qualname__]
    assert found.function is price
    assert (found.kind, found.is_async, found.ttl, found.tags) == ("function", False, 300.0, ("item:{x}",))
    warm = (((1,), {}), ((), {"x": 2}))  # the calls, checked against the signature
    assert (found.warm, found.version, found.namespace, found.cache) == (warm, "3", "billing", memory_cache)
    assert (found.typed, found.ignore, found.copy) == (False, ("trace",), True)
    assert found.ident == f"billing:{__name__}.{price.__qualname__}"
    assert found.depends_on == () and found.key is None and found.cache_if is None
    del shard


def test_defaults_are_the_default_cache_and_the_code_fingerprint() -> None:
    @cached
    def plain(x: int) -> int:
        return x

    found = _mine()[plain.__qualname__]
    assert found.cache is None and found.namespace is None and found.ttl is None
    assert found.version == plain._self_core.version and found.tags == ()


def test_kinds_are_told_apart() -> None:
    def rows(x: int) -> list[str]:
        return [str(x)]

    class Repo:
        @cached
        def method(self, x: int) -> int:
            return x

        @cached
        @classmethod
        def klass(cls, x: int) -> int:
            return x

        @cached
        @staticmethod
        def static(x: int) -> int:
            return x

    @cached
    def base(x: int) -> int:
        return x

    @cached(tags=rows, depends_on=[base, "table"])
    async def fetch(x: int) -> int:
        return x

    found = _mine()
    prefix = f"{Repo.__qualname__}."
    assert found[prefix + "method"].kind == "method"
    assert found[prefix + "klass"].kind == "classmethod"
    assert found[prefix + "static"].kind == "staticmethod"
    assert found[fetch.__qualname__].kind == "function" and found[fetch.__qualname__].is_async
    assert found[fetch.__qualname__].tags is rows
    assert found[fetch.__qualname__].depends_on == (base, "table")


def test_a_dropped_function_leaves_the_registry(memory_cache: Cache) -> None:
    def make() -> Any:
        @cached(cache=memory_cache)
        def temporary(x: int) -> int:
            return x

        return temporary

    temporary = make()
    assert temporary(1) == temporary(1) == 1  # bound to the cache: still nothing holds it
    (found,) = [f for f in cached_functions() if f.function is temporary]
    assert found.name.endswith("<locals>.temporary")
    del temporary
    gc.collect()
    assert found.function is None
    assert not [f for f in cached_functions() if f.name == found.name]


def test_each_decoration_is_one_registration() -> None:
    def shared(x: int) -> int:
        return x

    first, second = cached(shared), cached(version="2")(shared)
    listed = [f.function for f in cached_functions() if f.name == shared.__qualname__]
    assert len(listed) == 2 and listed[0] is first and listed[1] is second


class _Outer:
    @staticmethod
    @cached
    def static_above(x: int) -> int:
        return x

    @classmethod
    @cached
    def class_above(cls, x: int) -> int:
        return x


def test_static_and_class_methods_written_above_cached_are_told_apart() -> None:
    """They were listed as plain methods."""
    found = _mine()
    assert found["_Outer.static_above"].kind == "staticmethod"
    assert found["_Outer.class_above"].kind == "classmethod"
