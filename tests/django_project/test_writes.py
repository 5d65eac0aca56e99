"""Model writes invalidate cached functions, after the commit only (issue 10, Django and Entities)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import isolate_apps

import cacheplug
from cacheplug import InvalidationError, cached
from cacheplug.integrations.django import SettingsError, entity_of

from .conftest import Written
from .shop.models import Author, Book, CheapOrder, Order, Place, Restaurant

pytestmark = pytest.mark.django_db(transaction=True)

computed: list[Any] = []


@cached(tags=["order:{order_id}"])
def order_total(order_id: int) -> int:
    computed.append(order_id)
    return Order.objects.get(pk=order_id).total


@cached(tags=["order"])
def order_count() -> int:
    computed.append("count")
    return Order.objects.count()


@cached(tags=["shop_author:{author_id}"])
def author_books(author_id: int) -> list[str]:
    computed.append(author_id)
    return sorted(b.title for b in Author.objects.get(pk=author_id).books.all())


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    computed.clear()
    yield
    computed.clear()


def test_a_save_in_autocommit_invalidates_right_after_the_write(written: Written) -> None:
    order = Order.objects.create(total=1)
    # The row, once (its statement's; post_save repeats nothing): never the whole table.
    assert written.take() == [("order", order.pk)]
    assert order_total(order.pk) == 1
    order.total = 2
    order.save()
    assert written.take() == [("order", order.pk)]
    assert order_total(order.pk) == 2
    assert computed == [order.pk, order.pk]


def test_inside_atomic_nothing_is_sent_until_the_commit(written: Written) -> None:
    order = Order.objects.create(total=1)
    assert order_total(order.pk) == 1
    written.take()
    with transaction.atomic():
        order.total = 2
        order.save()
        Order.objects.filter(pk=order.pk).update(total=3)
        assert written.take() == []
        assert order_total(order.pk) == 1  # still the committed value's entry
    assert written.take() == [("order", order.pk), ("order", None)]  # once each, after the commit
    assert order_total(order.pk) == 3


def test_a_transaction_commits_as_one_invalidation(invalidations: list[frozenset[str]]) -> None:
    cacheplug.get_cache()  # the one cache of this test, open before the writes
    with transaction.atomic():
        orders = [Order.objects.create(total=i) for i in range(20)]
        assert invalidations == []
    assert len(invalidations) == 1
    assert invalidations[0] >= {"order", *(f"order:{o.pk}" for o in orders)}


def test_a_rollback_sends_nothing_and_the_next_commit_sends_only_its_own(written: Written) -> None:
    kept = Order.objects.create(total=1)
    written.take()
    with pytest.raises(RuntimeError), transaction.atomic():
        Order.objects.create(total=2)
        kept.total = 5
        kept.save()
        raise RuntimeError("roll back")
    assert written.take() == []
    with transaction.atomic():
        other = Order.objects.create(total=3)
    assert written.take() == [("order", other.pk)]


def test_a_savepoint_rolled_back_drops_its_writes_and_later_ones_are_still_delivered(
    written: Written,
) -> None:
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            lost = Order.objects.create(total=1)  # the transaction's first write, in the savepoint
            raise RuntimeError("roll back the savepoint")
        kept = Order.objects.create(total=2)
    assert written.take() == [("order", kept.pk)]
    assert lost.pk != kept.pk


def test_writes_outside_a_rolled_back_savepoint_are_delivered(written: Written) -> None:
    with transaction.atomic():
        first = Order.objects.create(total=1)
        with pytest.raises(RuntimeError), transaction.atomic():
            Order.objects.create(total=2)
            raise RuntimeError("roll back the savepoint")
    # The savepoint's write shared the first write's callback: delivered too (more, never less).
    assert ("order", first.pk) in written.take()


def test_a_write_invalidates_the_cache_backends_entries_tagged_with_it() -> None:
    from django.core.cache import cache

    order = Order.objects.create(total=1)
    cache.set("receipt", "<pdf>", tags=[f"order:{order.pk}"])
    cache.set("other", "<pdf>", tags=[f"order:{order.pk + 1}"])
    order.save()
    assert cache.get_many(["receipt", "other"]) == {"other": "<pdf>"}


def test_a_delete_invalidates_its_row(written: Written) -> None:
    order = Order.objects.create(total=4)
    pk = order.pk
    assert order_total(pk) == 4
    order.delete()
    assert ("order", pk) in written.take()
    with pytest.raises(Order.DoesNotExist):
        order_total(pk)


def test_queryset_delete_sends_each_row(written: Written) -> None:
    orders = [Order.objects.create(total=i) for i in range(3)]
    written.take()
    Order.objects.filter(total__gte=1).delete()
    assert {("order", o.pk) for o in orders[1:]} <= set(written.take())


def test_many_to_many_changes_invalidate_both_sides_and_the_link_table(written: Written) -> None:
    book = Book.objects.create(title="Dune")
    author = Author.objects.create(name="Frank")
    assert author_books(author.pk) == []
    written.take()
    book.authors.add(author)
    writes = written.take()
    assert {("shop_book", book.pk), ("shop_author", author.pk), ("shop_book_authors", None)} <= set(writes)
    assert author_books(author.pk) == ["Dune"]
    author.books.remove(book)  # from the other side
    assert {("shop_author", author.pk), ("shop_book", book.pk)} <= set(written.take())
    assert author_books(author.pk) == []
    book.authors.add(author)
    written.take()
    book.authors.clear()
    assert {("shop_book", book.pk), ("shop_author", None)} <= set(written.take())


def test_queryset_update_invalidates_by_table() -> None:
    pk = Order.objects.create(total=1).pk
    assert order_count() == 1
    assert order_total(pk) == 1
    Order.objects.update(total=7)
    computed.clear()
    assert (order_count(), order_total(pk)) == (1, 7)
    assert computed == ["count", pk]  # the entity's and each row's entries: recomputed


def test_bulk_create_and_bulk_update_invalidate_by_table(written: Written) -> None:
    assert order_count() == 0
    orders = Order.objects.bulk_create([Order(total=1), Order(total=2)])
    assert written.take() == [("order", None)]
    assert order_count() == 2
    for order in orders:
        order.total += 10
    Order.objects.bulk_update(orders, ["total"])
    assert written.take() == [("order", None)]
    assert computed == ["count", "count"]


def test_raw_deletes_and_raw_sql_invalidate_by_table(written: Written) -> None:
    Order.objects.create(total=1)
    assert order_count() == 1
    written.take()
    Order.objects.all()._raw_delete(using="default")
    assert written.take() == [("order", None)]
    assert order_count() == 0
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO shop_orders (total) VALUES (%s)", [9])
        cursor.execute('UPDATE "shop_orders" SET total = 10')
    assert written.take() == [("order", None), ("order", None)]
    assert order_count() == 1


def test_the_entity_is_the_table_unless_the_model_names_one() -> None:
    assert entity_of(Author) == "shop_author"
    assert entity_of(Order) == entity_of(Order()) == "order"
    assert entity_of(CheapOrder) == "order"  # a proxy writes its concrete model's table
    assert entity_of(Book.authors.through) == "shop_book_authors"


def test_a_proxy_model_writes_its_concrete_entity(written: Written) -> None:
    cheap = CheapOrder.objects.create(total=1)
    assert written.take() == [("order", cheap.pk)]


def test_multi_table_inheritance_writes_the_parents_rows_too(written: Written) -> None:
    restaurant = Restaurant.objects.create(name="Chez", pizza=True)
    assert written.take() == [("shop_place", restaurant.pk), ("shop_restaurant", restaurant.pk)]
    assert Place.objects.get().pk == restaurant.pk


def test_a_bad_entity_name_is_refused_naming_the_model() -> None:
    from django.db import models

    with isolate_apps("tests.django_project.shop"):

        class Broken(models.Model):
            __cacheplug_entity__ = ""

            class Meta:
                app_label = "shop"

        with pytest.raises(SettingsError, match=r"Broken.__cacheplug_entity__ must be a non-empty str"):
            entity_of(Broken)


def test_a_manual_transaction_is_invalidated_at_once_with_a_warning(
    written: Written, caplog: pytest.LogCaptureFixture
) -> None:
    transaction.set_autocommit(False)
    try:
        with caplog.at_level(logging.WARNING, logger="cacheplug"):
            order = Order.objects.create(total=1)
        assert written.take() == [("order", order.pk)]
        assert "manual transaction" in caplog.text
        transaction.commit()
    finally:
        transaction.set_autocommit(True)


def _break_the_version_store() -> None:
    versions = cacheplug.get_cache().versions
    shutil.rmtree(versions.directory)
    with open(versions.directory, "w") as blocker:
        blocker.write("in the way")


def test_a_failed_invalidation_after_the_commit_raises_and_stale_values_are_not_served() -> None:
    order = Order.objects.create(total=1)
    assert order_total(order.pk) == 1
    _break_the_version_store()
    order.total = 2
    with pytest.raises(InvalidationError):
        order.save()  # autocommit: committed, then the invalidation failed
    assert Order.objects.get(pk=order.pk).total == 2
    assert order_total(order.pk) == 2  # the process no longer serves what it held before


def test_a_failed_invalidation_raises_from_the_atomic_block() -> None:
    order = Order.objects.create(total=1)
    assert order_total(order.pk) == 1
    _break_the_version_store()
    with pytest.raises(InvalidationError), transaction.atomic():
        order.total = 3
        order.save()
    assert order_total(order.pk) == 3


@pytest.mark.django_db  # closest mark: a test transaction, rolled back and never committed
def test_a_rolled_back_test_transaction_delivers_through_captured_callbacks(
    django_capture_on_commit_callbacks: Any, written: Written
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        order = Order.objects.create(total=1)
        assert written.take() == []
    assert written.take() == [("order", order.pk)]


def test_deletes_take_no_fast_path_once_their_signals_have_receivers() -> None:
    from django.db.models.deletion import Collector

    assert Collector("default").can_fast_delete(Order.objects.all()) is False
