"""mypy --strict must accept this file: @cached keeps parameter and return types."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, assert_type

from cacheplug import Cache, CachedFunction, CacheInfo, MemoryTier, cached

cache = Cache([MemoryTier()])


@cached
def add(a: int, b: str = "x") -> list[str]:
    return [b] * a


@cached(ttl=30, cache=cache, ignore=("verbose",))
def describe(user_id: int, *, verbose: bool = False) -> dict[str, int]:
    return {"id": user_id}


@cached
async def fetch(user_id: int) -> tuple[int, str]:
    return user_id, "name"


# Return types survive the decorator.
assert_type(add(1), list[str])
assert_type(add(2, "y"), list[str])
assert_type(add(a=2, b="y"), list[str])
assert_type(describe(1, verbose=True), dict[str, int])
pending = assert_type(fetch(1), Coroutine[Any, Any, tuple[int, str]])
pending.close()

# The wrapper is a CachedFunction and still usable where the plain function was.
as_callable: Callable[[int, str], list[str]] = add
as_keyword_callable: Callable[..., dict[str, int]] = describe
cached_add: CachedFunction[[int, str], list[str]] = add

# Helpers are typed after the function's own parameters.
assert_type(add.cache_key(1, "y"), str)
assert_type(add.invalidate(1), bool)
assert_type(add.refresh(1, b="z"), list[str])
assert_type(add.cache_info(), CacheInfo)
assert_type(add.cache_info().hits, int)
assert_type(add.cache_clear(), None)
assert_type(describe.cache_key(1, verbose=False), str)


async def main() -> None:
    assert_type(await fetch(1), tuple[int, str])
    assert_type(await fetch.ainvalidate(1), bool)
    user_id, name = await fetch(user_id=3)
    assert_type(user_id, int)
    assert_type(name, str)
