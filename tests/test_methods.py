"""@cached on instance methods, classmethods and staticmethods."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from cacheplug import Cache, UnkeyableArgumentError, cached, configure


@pytest.fixture(autouse=True)
def _default_is_memory(memory_cache: Cache) -> None:
    """Methods use the default cache: make it the fake-clocked memory cache."""
    configure(cache=memory_cache)


CALLS: list[Any] = []


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    CALLS.clear()


class Repo:
    def __init__(self, tenant: str) -> None:
        self.tenant = tenant

    def __cache_key__(self) -> str:
        return self.tenant

    @cached
    def load(self, item: int) -> str:
        CALLS.append((self.tenant, item))
        return f"{self.tenant}:{item}"

    @cached
    async def aload(self, item: int) -> str:
        CALLS.append(("async", self.tenant, item))
        return f"{self.tenant}:{item}"


class Service:
    """A stateless service: its instances are interchangeable."""

    @cached(ignore=("self",))
    def compute(self, x: int) -> int:
        CALLS.append(x)
        return x * 2


class NoKey:
    @cached
    def value(self, x: int) -> int:
        return x


class Factory:
    @cached
    @classmethod
    def build(cls, size: int) -> str:
        CALLS.append((cls.__name__, size))
        return f"{cls.__name__}({size})"

    @cached(ttl=60)
    @staticmethod
    def helper(a: int, b: int = 1) -> int:
        CALLS.append((a, b))
        return a + b


class SubFactory(Factory):
    pass


def test_instances_with_equal_cache_keys_share_entries() -> None:
    assert Repo("acme").load(1) == "acme:1"
    assert Repo("acme").load(1) == "acme:1"
    assert CALLS == [("acme", 1)]
    assert Repo("globex").load(1) == "globex:1"
    assert len(CALLS) == 2


def test_method_without_cache_key_names_self_in_the_error() -> None:
    with pytest.raises(UnkeyableArgumentError, match="self"):
        NoKey().value(1)


def test_ignore_self_shares_entries_between_instances() -> None:
    assert Service().compute(3) == 6
    assert Service().compute(3) == 6
    assert CALLS == [3]


def test_classmethod_is_cached_per_class() -> None:
    assert Factory.build(2) == "Factory(2)"
    assert Factory.build(2) == "Factory(2)"
    assert Factory().build(2) == "Factory(2)"
    assert CALLS == [("Factory", 2)]
    assert SubFactory.build(2) == "SubFactory(2)"
    assert len(CALLS) == 2


def test_staticmethod_is_cached_through_class_and_instance() -> None:
    assert Factory.helper(1) == 2
    assert Factory().helper(1, b=1) == 2
    assert SubFactory.helper(a=1) == 2
    assert CALLS == [(1, 1)]


def test_bound_method_helpers_include_the_instance() -> None:
    acme, globex = Repo("acme"), Repo("globex")
    acme.load(1)
    globex.load(1)
    assert acme.load.cache_key(1) != globex.load.cache_key(1)
    assert acme.load.invalidate(1) is True
    assert acme.load.invalidate(1) is False
    globex.load(1)
    assert len(CALLS) == 2  # globex's entry survived
    acme.load(1)
    assert len(CALLS) == 3
    assert acme.load.refresh(2) == "acme:2"
    acme.load(2)
    assert len(CALLS) == 4
    info = acme.load.cache_info()
    assert info.currsize == 3
    acme.load.cache_clear()
    assert Repo.load.cache_info().currsize == 0


def test_classmethod_helpers() -> None:
    Factory.build(1)
    assert Factory.build.invalidate(1) is True
    Factory.build(1)
    assert len(CALLS) == 2
    assert Factory.build.cache_key(1) != SubFactory.build.cache_key(1)


def test_async_method() -> None:
    async def main() -> list[str]:
        repo = Repo("acme")
        return [await repo.aload(1), await Repo("acme").aload(1)]

    assert asyncio.run(main()) == ["acme:1", "acme:1"]
    assert CALLS == [("async", "acme", 1)]


def test_methods_keep_their_signatures() -> None:
    assert inspect.signature(Repo.load) == inspect.signature(Repo.load.__wrapped__)
    assert list(inspect.signature(Repo("x").load).parameters) == ["item"]
    assert list(inspect.signature(Factory.build).parameters) == ["size"]
    assert list(inspect.signature(Factory.helper).parameters) == ["a", "b"]
    assert Repo.load.__name__ == "load"
