"""mypy --strict must accept this file: @cached keeps parameter and return types."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, assert_type

from cacheplug import (
    Cache,
    CachedFunction,
    CacheInfo,
    CircuitBreaker,
    DiskTier,
    FaultLedger,
    FaultTolerant,
    MemoryTier,
    ProxyTier,
    Tier,
    WarmingTask,
    WarmReport,
    cached,
    warm_now,
)
from cacheplug.tiers import CountsDamage, HasVersions, KeyListing, SelfChecking

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


@cached(ttl=30, stale_ttl=60, stale_if_error=timedelta(minutes=5), early_refresh=True)
def fresh_report(day: str) -> list[int]:
    return [len(day)]


@cached(ttl=30, early_refresh=2.5)
async def fresh_feed(user_id: int) -> str:
    return str(user_id)


# Return types survive the decorator.
assert_type(add(1), list[str])
assert_type(add(2, "y"), list[str])
assert_type(add(a=2, b="y"), list[str])
assert_type(describe(1, verbose=True), dict[str, int])
pending = assert_type(fetch(1), Coroutine[Any, Any, tuple[int, str]])
pending.close()
assert_type(fresh_report("monday"), list[int])
assert_type(cache.get_or_compute("k", lambda: 3, 30, stale_ttl=5, early_refresh=True), int)

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


class Repo:
    def __cache_key__(self) -> str:
        return "repo"

    @cached
    @staticmethod
    def util(x: int) -> str:
        return str(x)

    @cached(ttl=5)
    @staticmethod
    def util_ttl(x: int) -> str:
        return str(x)

    @cached
    @classmethod
    def build(cls, n: int) -> list[int]:
        return [n]

    @cached(ttl=5)
    def load(self, user_id: int, *, fresh: bool = False) -> dict[str, int]:
        return {"id": user_id}

    @cached
    async def aload(self, user_id: int) -> int:
        return user_id


repo = Repo()

# Staticmethods through the class, classmethods through the class or an instance, methods
# without self. (A cached staticmethod called through an instance is not typed: mypy hands
# @cached the plain function and it cannot be told from a method.)
assert_type(Repo.util(3), str)
assert_type(Repo.util_ttl(3), str)
assert_type(Repo.build(2), list[int])
assert_type(repo.build(2), list[int])
assert_type(repo.load(1), dict[str, int])
assert_type(repo.load(1, fresh=True), dict[str, int])

# The helpers of bound methods are typed after the method's own parameters.
assert_type(repo.load.cache_info(), CacheInfo)
assert_type(repo.load.invalidate(1), bool)
assert_type(repo.load.refresh(1, fresh=True), dict[str, int])
assert_type(repo.load.cache_key(1), str)
assert_type(repo.load.cache_clear(), None)
assert_type(Repo.util.cache_key(3), str)
assert_type(Repo.build.invalidate(2), bool)


async def methods() -> None:
    assert_type(await repo.aload(1), int)
    assert_type(await repo.aload.ainvalidate(1), bool)


# The tiers satisfy the capability protocols they implement; a proxy stack is a tier.
def tiers(disk: DiskTier) -> None:
    owner: HasVersions = disk
    checking: SelfChecking = disk
    listing: KeyListing = disk
    damage: CountsDamage = disk
    stack: Tier = FaultTolerant(CircuitBreaker(disk), FaultLedger("ns"))
    proxied: KeyListing = ProxyTier(disk)


# warm=: True, calls as tuples or dicts, or a callable returning them.
@cached(warm=True)
def home() -> str:
    return "home"


@cached(warm=[(1,), {"user_id": 2}])
def profile(user_id: int) -> str:
    return str(user_id)


@cached(warm=lambda: [(i,) for i in range(3)])
def item(i: int) -> int:
    return i


warming = WarmingTask("profiles", profile, args=[(1,)], priority=5, interval=60.0)
report: WarmReport = warm_now(lambda done, total, name: None, workers=2)
assert_type(report.warmed, int)
