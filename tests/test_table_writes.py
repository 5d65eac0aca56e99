"""A write of a whole table (``invalidate_by_write(entity)`` with no id: an ORM's bulk
``update()``, a Core statement) reaches every entry of one of its rows.

Before, it bumped only the ``entity`` tag, and a function tagged ``order:{order_id}`` kept
serving what the bulk write had changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import cacheplug
from cacheplug import Cache, DiskTier, MemoryTier, cached

from .conftest import FakeClock


@pytest.fixture(params=["memory", "memory+disk"])
def cache(request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path) -> Iterator[Cache]:
    tiers = [MemoryTier()] if request.param == "memory" else [MemoryTier(), DiskTier(str(tmp_path / "d"))]
    with Cache(tiers, clock=clock) as made:
        yield made


def test_a_table_write_reaches_a_function_tagged_per_row(cache: Cache) -> None:
    truth = {7: "new?", 8: "b"}
    truth[7] = "a"

    @cached(cache=cache, tags=["order:{order_id}"])
    def order(order_id: int) -> str:
        return truth[order_id]

    assert order(7) == "a" and order(8) == "b"
    truth.update({7: "A", 8: "B"})
    cacheplug.invalidate_by_write("order")  # e.g. Order.objects.update(...)
    assert (order(7), order(8)) == ("A", "B")


def test_a_row_write_stays_exact(cache: Cache) -> None:
    calls: list[int] = []

    @cached(cache=cache, tags=["order:{order_id}"])
    def order(order_id: int) -> int:
        calls.append(order_id)
        return order_id

    order(7), order(8)
    cacheplug.invalidate_by_write("order", 7)
    order(7), order(8)
    assert calls == [7, 8, 7]


def test_a_table_write_reaches_tags_from_a_callable_and_the_direct_api(cache: Cache) -> None:
    truth = {"v": 1}

    @cached(cache=cache, tags=lambda order_id: [f"order:{order_id}"])
    def order(order_id: int) -> int:
        return truth["v"]

    cache.set("summary", "old", tags=["order:7"])
    assert order(7) == 1
    truth["v"] = 2
    cacheplug.invalidate_by_write("order")
    assert order(7) == 2 and cache.get("summary") is None


def test_a_table_write_reaches_declared_dependents(cache: Cache) -> None:
    truth = {"v": 1}

    @cached(cache=cache, tags=["order:{order_id}"])
    def order(order_id: int) -> int:
        return truth["v"]

    @cached(cache=cache, depends_on=[order, "invoice:3"])
    def total() -> int:
        return truth["v"] * 10

    assert total() == 10
    truth["v"] = 2
    cacheplug.invalidate_by_write("order")
    assert total() == 20
    truth["v"] = 3
    cacheplug.invalidate_by_write("invoice")
    assert total() == 30


def test_an_entity_with_separators_in_its_name_is_reached(cache: Cache) -> None:
    truth = {"v": 1}

    @cached(cache=cache, tags=["shop_order:{order_id}"])
    def order(order_id: int) -> int:
        return truth["v"]

    assert order(1) == 1
    truth["v"] = 2
    cacheplug.invalidate_by_write("shop_order")  # Django's default db_table form
    assert order(1) == 2


def test_another_process_sees_the_table_write(tmp_path: Path, clock: FakeClock) -> None:
    directory = str(tmp_path / "shared")
    with (
        Cache([MemoryTier(), DiskTier(directory)], clock=clock) as here,
        Cache([MemoryTier(), DiskTier(directory)], clock=clock) as there,
    ):
        here.set("o", "old", tags=["order:7"])
        assert there.get("o") == "old"
        there.invalidate_by_write("order")
        assert here.get("o") is None and there.get("o") is None
