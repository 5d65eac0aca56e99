"""Tests of the example orders service: each commit invalidates what it wrote, a rollback nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import app
import pytest

from cacheplug import get_cache


@pytest.fixture(autouse=True)
def shop(tmp_path: Path) -> Iterator[None]:
    tracking = app.start(f"sqlite:///{tmp_path / 'shop.db'}")
    get_cache().clear()  # a fresh database: forget what earlier tests cached
    app.computed.clear()
    yield
    tracking.untrack()


def test_a_new_order_is_in_its_customers_list_and_the_count() -> None:
    ada = app.add_customer("Ada")
    assert app.customer_orders(ada) == [] and app.order_count() == 0
    order = app.place_order(ada, 1200)
    assert app.customer_orders(ada) == [order]
    assert app.order_count() == 1
    assert app.computed == [f"customer {ada}", "count", f"customer {ada}", "count"]


def test_an_update_recomputes_only_that_order() -> None:
    ada = app.add_customer("Ada")
    first, second = app.place_order(ada, 1200), app.place_order(ada, 500)
    assert app.order_view(first)["status"] == "open"  # type: ignore[index]
    assert app.order_view(second)["status"] == "open"  # type: ignore[index]
    app.computed.clear()
    app.cancel_order(first)
    assert app.order_view(first)["status"] == "cancelled"  # type: ignore[index]
    assert app.order_view(second)["status"] == "open"  # type: ignore[index]
    assert app.computed == [f"order {first}"]


def test_moving_an_order_changes_both_customers_lists() -> None:
    ada, bob = app.add_customer("Ada"), app.add_customer("Bob")
    order = app.place_order(ada, 1200)
    assert app.customer_orders(ada) == [order] and app.customer_orders(bob) == []
    app.move_order(order, bob)
    assert app.customer_orders(ada) == [] and app.customer_orders(bob) == [order]


def test_a_bulk_update_invalidates_by_table() -> None:
    ada = app.add_customer("Ada")
    order = app.place_order(ada, 1000)
    assert app.order_count() == 1 and app.order_view(order)["total"] == 1000  # type: ignore[index]
    app.computed.clear()
    app.discount_all(10)
    assert app.order_count() == 1  # the "order" tag
    assert app.order_view(order)["total"] == 900  # type: ignore[index]  # and every "order:{id}"
    assert app.computed == ["count", f"order {order}"]


def test_a_rolled_back_transaction_invalidates_nothing() -> None:
    ada = app.add_customer("Ada")
    order = app.place_order(ada, 1200)
    assert app.order_view(order)["total"] == 1200  # type: ignore[index]
    app.computed.clear()
    with pytest.raises(RuntimeError, match="payment provider"):
        app.refund_then_fail(order)
    assert app.order_view(order)["total"] == 1200  # type: ignore[index]
    assert app.computed == []  # still cached: nothing was committed
