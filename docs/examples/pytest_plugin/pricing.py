"""A small application module: prices from a slow "catalog", cached with cacheplug.

Nothing here knows about tests: the functions use the default cache, which the test
suite's ``cacheplug_cache`` fixture replaces with an isolated one.
"""

from __future__ import annotations

import cacheplug
from cacheplug import InvalidationRule, cached

CATALOG: dict[str, float] = {"apple": 0.5, "pear": 0.75}
LOOKUPS: list[str] = []  # every catalog read, in order

# A write of a product also makes the basket totals stale.
cacheplug.add_rule(InvalidationRule("product", tags=["baskets"]))


@cached(ttl=3600, tags=["product:{name}"])
def price(name: str) -> float:
    LOOKUPS.append(name)
    return CATALOG[name]


@cached(ttl=60, tags=["baskets"])
def basket_total(items: tuple[str, ...]) -> float:
    return sum(price(name) for name in items)


def set_price(name: str, value: float) -> None:
    CATALOG[name] = value
    cacheplug.invalidate_by_write("product", name)
