"""A row write invalidates its row's tags (and the entity), a table write every row's.

Since a write of a whole table reaches each of its rows' entries, the execute wrapper's
table write for every INSERT/UPDATE/DELETE made each ``save()`` drop every cached row of its
table. Django's own writes of known rows are now row writes; the statements no model signal
reports stay table writes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.core.signals import request_finished
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import signals

import cacheplug
from cacheplug.integrations.django import writes

from .conftest import Written
from .shop.models import (
    Author,
    Book,
    Brand,
    Category,
    Country,
    Item,
    Note,
    Order,
    Outlet,
    Restaurant,
    Shelf,
    Stamped,
    Ticket,
    Voucher,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _cache(*tags: str) -> None:
    """One entry of the cache backend per tag, carrying it."""
    for tag in tags:
        cache.set(f"entry:{tag}", tag, timeout=None, tags=[tag])


def _kept(*tags: str) -> set[str]:
    """The tags among ``tags`` whose entries are still served."""
    return set(cache.get_many([f"entry:{tag}" for tag in tags]).values())


def _rows(entity: str, *instances: Any) -> list[str]:
    return [f"{entity}:{instance.pk}" for instance in instances]


# -- a row write: its row and the entity, nothing else ------------------------------------------


def test_a_save_invalidates_its_row_and_the_entity_only() -> None:
    a, b = Order.objects.create(total=1), Order.objects.create(total=2)
    tags = ["order", *_rows("order", a, b)]
    _cache(*tags)
    a.total = 5
    a.save()
    assert _kept(*tags) == {f"order:{b.pk}"}


def test_a_create_invalidates_its_new_row_and_the_entity_only(written: Written) -> None:
    a = Order.objects.create(total=1)
    tags = ["order", f"order:{a.pk}", f"order:{a.pk + 1}"]  # the key the next row gets
    _cache(*tags)
    written.take()
    b = Order.objects.create(total=2)
    assert b.pk == a.pk + 1
    assert written.take() == [("order", b.pk)]
    assert _kept(*tags) == {f"order:{a.pk}"}


def test_a_delete_invalidates_its_row_and_the_entity_only() -> None:
    a, b = Order.objects.create(total=1), Order.objects.create(total=2)
    tags = ["order", *_rows("order", a, b)]
    _cache(*tags)
    a.delete()
    assert _kept(*tags) == {f"order:{b.pk}"}


def test_a_queryset_delete_invalidates_its_rows_only() -> None:
    a, b, c = (Order.objects.create(total=i) for i in range(3))
    tags = _rows("order", a, b, c)
    _cache(*tags)
    Order.objects.filter(pk__in=[a.pk, b.pk]).delete()
    assert _kept(*tags) == {f"order:{c.pk}"}


def test_a_many_to_many_change_invalidates_its_rows_and_the_link_table() -> None:
    """(Already exact before: a change's statements write only the link table.)"""
    book, other_book = Book.objects.create(title="Dune"), Book.objects.create(title="Emma")
    author, other_author = Author.objects.create(name="Frank"), Author.objects.create(name="Jane")
    tags = [*_rows("shop_book", book, other_book), *_rows("shop_author", author, other_author)]
    kept = {f"shop_book:{other_book.pk}", f"shop_author:{other_author.pk}"}
    _cache(*tags, "shop_book_authors")
    book.authors.add(author)
    assert _kept(*tags, "shop_book_authors") == kept
    _cache(*tags, "shop_book_authors")
    author.books.remove(book)
    assert _kept(*tags, "shop_book_authors") == kept


def test_a_save_in_autocommit_invalidates_once(invalidations: list[frozenset[str]]) -> None:
    """The statement's write and the signal's were two invalidations (two version-store writes)."""
    cacheplug.get_cache()
    order = Order.objects.create(total=1)
    order.total = 2
    order.save()
    Restaurant.objects.create(name="Chez", pizza=True)  # two tables, in one transaction
    pk = order.pk
    order.delete()
    assert len(invalidations) == 4
    assert [tags >= {"order", f"order:{pk}"} for tags in invalidations] == [True, True, False, True]


def test_a_save_of_a_child_of_two_parents_writes_each_parents_own_row() -> None:
    spare = Brand.objects.create(label="spare")  # the brands' keys run ahead of the shops'
    outlet = Outlet.objects.create(name="Corner", label="Acme", city="Lyon")
    assert outlet.shop_id != outlet.brand_id == spare.brand_id + 1
    tags = [
        f"shop_shop:{outlet.shop_id}",
        f"shop_brand:{outlet.brand_id}",
        f"shop_outlet:{outlet.pk}",
        f"shop_brand:{spare.brand_id}",  # == the outlet's shop_id: its key, but not its brand row
    ]
    _cache(*tags)
    outlet.city = "Paris"
    outlet.save()
    assert _kept(*tags) == {f"shop_brand:{spare.brand_id}"}


def test_a_row_inserted_twice_by_one_instance_in_a_transaction_writes_both_rows(written: Written) -> None:
    """Copying an instance (pk = None, save again): each INSERT is settled with its own key."""
    with transaction.atomic():
        order = Order.objects.create(total=1)
        first = order.pk
        order.pk = None
        order.save()
    assert written.take() == [("order", first), ("order", order.pk)]
    assert first != order.pk


def test_statements_around_a_save_from_other_execute_wrappers_change_nothing() -> None:
    a, b = Order.objects.create(total=1), Order.objects.create(total=2)
    tags = _rows("order", a, b)
    _cache(*tags)

    def passing(execute: Callable[..., Any], *args: Any) -> Any:
        return execute(*args)

    with connection.execute_wrapper(passing), connection.execute_wrapper(passing):
        a.save()
    assert _kept(*tags) == {f"order:{b.pk}"}


# -- a table write: every row -----------------------------------------------------------------


def _update(a: Order, b: Order) -> None:
    Order.objects.update(total=7)


def _update_one_by_key(a: Order, b: Order) -> None:
    Order.objects.filter(pk=a.pk).update(total=7)  # not Django's save(): the whole table, safely


def _bulk_create(a: Order, b: Order) -> None:
    Order.objects.bulk_create([Order(total=3)])


def _bulk_update(a: Order, b: Order) -> None:
    a.total = 9
    Order.objects.bulk_update([a], ["total"])


def _raw_delete(a: Order, b: Order) -> None:
    Order.objects.filter(pk=a.pk)._raw_delete(using="default")


def _raw_sql(a: Order, b: Order) -> None:
    with connection.cursor() as cursor:
        cursor.execute('UPDATE "shop_orders" SET "total" = %s WHERE "shop_orders"."id" = %s', [4, a.pk])


@pytest.mark.parametrize(
    "write", [_update, _update_one_by_key, _bulk_create, _bulk_update, _raw_delete, _raw_sql]
)
def test_statements_no_model_signal_reports_reach_every_row(write: Callable[[Order, Order], None]) -> None:
    a, b = Order.objects.create(total=1), Order.objects.create(total=2)
    tags = ["order", *_rows("order", a, b)]
    _cache(*tags)
    write(a, b)
    assert _kept(*tags) == set()


def test_a_save_that_raises_leaves_nothing_that_hides_a_later_bulk_write() -> None:
    first = Ticket.objects.create(code="A")
    with pytest.raises(IntegrityError):
        Ticket.objects.create(code="A")  # pre_save sent, the INSERT raises: no post_save
    with pytest.raises(IntegrityError), transaction.atomic():
        Ticket(code="A").save()
    tags = [f"shop_ticket:{first.pk}", f"shop_ticket:{first.pk + 1}"]
    _cache(*tags)
    Ticket.objects.update(code="B")
    assert _kept(*tags) == set()


@pytest.fixture
def receiver_before_cacheplugs() -> Iterator[Callable[[Callable[..., None]], None]]:
    """Connect a ``post_save`` receiver that runs before cacheplug's (as one connected earlier)."""
    connected: list[Callable[..., None]] = []

    def connect(receiver: Callable[..., None]) -> None:
        signals.post_save.disconnect(dispatch_uid="cacheplug._saved")
        signals.post_save.connect(receiver, sender=Order, weak=False)
        connected.append(receiver)
        writes.connect()

    yield connect
    for receiver in connected:
        signals.post_save.disconnect(receiver, sender=Order)


def _fail(**_: Any) -> None:
    raise RuntimeError("a receiver failed")


def test_a_new_row_whose_save_raised_before_cacheplugs_receiver_is_invalidated_at_the_next_statement(
    written: Written, receiver_before_cacheplugs: Callable[[Callable[..., None]], None]
) -> None:
    a = Order.objects.create(total=1)
    tags = ["order", f"order:{a.pk}", f"order:{a.pk + 1}"]
    _cache(*tags)
    receiver_before_cacheplugs(_fail)
    written.take()
    with pytest.raises(RuntimeError, match="a receiver failed"):
        Order.objects.create(total=2)  # committed; cacheplug's post_save never ran
    assert written.take() == []  # held: its key was read back after the statement
    assert Order.objects.count() == 2  # the thread's next statement delivers it
    assert written.take() == [("order", a.pk + 1)]
    assert _kept(*tags) == {f"order:{a.pk}"}


def test_a_new_row_whose_save_raised_is_invalidated_at_the_end_of_the_request(
    written: Written, receiver_before_cacheplugs: Callable[[Callable[..., None]], None]
) -> None:
    receiver_before_cacheplugs(_fail)
    order = Order(total=2)
    with pytest.raises(RuntimeError):
        order.save()
    assert written.take() == []
    request_finished.send(sender=None)
    assert written.take() == [("order", order.pk)]


def test_a_new_row_whose_save_raised_inside_atomic_is_invalidated_by_the_commit(
    written: Written, receiver_before_cacheplugs: Callable[[Callable[..., None]], None]
) -> None:
    receiver_before_cacheplugs(_fail)
    with transaction.atomic(), pytest.raises(RuntimeError):
        Order.objects.create(total=2)  # the row stays in the transaction, which commits
    assert written.take() == [("order", Order.objects.get().pk)]


def test_a_bulk_write_in_a_pre_save_receiver_reaches_every_row() -> None:
    a, b = Order.objects.create(total=1), Order.objects.create(total=2)
    tags = _rows("order", a, b)
    _cache(*tags)

    def reset_the_others(instance: Order, **_: Any) -> None:
        Order.objects.exclude(pk=instance.pk).update(total=0)

    signals.pre_save.connect(reset_the_others, sender=Order, weak=False)
    try:
        a.save()
    finally:
        signals.pre_save.disconnect(reset_the_others, sender=Order)
    assert _kept(*tags) == set()
    assert Order.objects.get(pk=b.pk).total == 0


@pytest.mark.parametrize("signal", [signals.pre_save, signals.post_save], ids=["pre_save", "post_save"])
def test_a_save_inside_a_save_receiver_invalidates_both_rows_only(signal: Any) -> None:
    a, b, c = (Order.objects.create(total=i) for i in range(3))
    author, other_author = Author.objects.create(name="Ann"), Author.objects.create(name="Bob")
    tags = [*_rows("order", a, b, c), *_rows("shop_author", author, other_author)]
    _cache(*tags)

    def save_others(instance: Order, **_: Any) -> None:
        if instance.pk == a.pk:
            b.save()  # the same table, nested
            author.save()

    signal.connect(save_others, sender=Order, weak=False)
    try:
        a.save()
    finally:
        signal.disconnect(save_others, sender=Order)
    assert _kept(*tags) == {f"order:{c.pk}", f"shop_author:{other_author.pk}"}


def test_a_create_inside_a_create_receiver_writes_both_new_rows(written: Written) -> None:
    made: list[Order] = []

    def create_another(instance: Order, **_: Any) -> None:
        if instance.total == 1:
            made.append(Order.objects.create(total=99))

    signals.pre_save.connect(create_another, sender=Order, weak=False)
    try:
        outer = Order.objects.create(total=1)
    finally:
        signals.pre_save.disconnect(create_another, sender=Order)
    assert sorted(written.take()) == sorted([("order", outer.pk), ("order", made[0].pk)])


# -- deletes through the collector ----------------------------------------------------------------


def test_a_cascading_delete_invalidates_the_rows_it_deletes_and_updates_only() -> None:
    shelf, other_shelf = Shelf.objects.create(name="top"), Shelf.objects.create(name="low")
    i1, i2 = Item.objects.create(shelf=shelf, name="a"), Item.objects.create(shelf=shelf, name="b")
    i3 = Item.objects.create(shelf=other_shelf, name="c")
    n1, n2 = Note.objects.create(item=i1, text="x"), Note.objects.create(item=i3, text="y")
    tags = [
        *_rows("shop_shelf", shelf, other_shelf),
        *_rows("shop_item", i1, i2, i3),
        *_rows("shop_note", n1, n2),
    ]
    _cache(*tags)
    shelf.delete()
    assert _kept(*tags) == {f"shop_shelf:{other_shelf.pk}", f"shop_item:{i3.pk}", f"shop_note:{n2.pk}"}
    assert Note.objects.get(pk=n1.pk).item is None


def test_a_delete_that_sets_null_in_its_own_table_reaches_the_rows_it_updated() -> None:
    """The children are updated by one UPDATE of the table a row is being deleted from."""
    root = Category.objects.create(name="root")
    children = [Category.objects.create(name=f"c{i}", parent=root) for i in range(2)]
    tags = _rows("shop_category", root, *children)
    _cache(*tags)
    root.delete()
    assert _kept(*tags) == set()
    assert [c.parent_id for c in Category.objects.all()] == [None, None]


# -- threads and tasks ------------------------------------------------------------------------


def test_threads_saving_at_once_invalidate_their_own_rows_only() -> None:
    orders = [Order.objects.create(total=i) for i in range(8)]
    tags = _rows("order", *orders)
    _cache(*tags)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def save(order: Order) -> None:
        try:
            start.wait(timeout=10)
            for _ in range(5):
                order.save()
                Order.objects.create(total=-1)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=save, args=(o,)) for o in orders[::2]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors and not any(t.is_alive() for t in threads)
    assert _kept(*tags) == {f"order:{o.pk}" for o in orders[1::2]}


def test_an_async_save_invalidates_its_row_only() -> None:
    a, b = Order.objects.create(total=1), Order.objects.create(total=2)
    tags = ["order", *_rows("order", a, b)]
    _cache(*tags)

    async def main() -> None:
        try:
            a.total = 3
            await a.asave()
        finally:
            await sync_to_async(connections.close_all)()

    asyncio.run(main())
    assert _kept(*tags) == {f"order:{b.pk}"}


# -- keys that are not ints; statements that only look like Django's ---------------------------


def test_a_uuid_keyed_row_write_is_exact() -> None:
    a, b = Voucher.objects.create(value=1), Voucher.objects.create(value=2)
    tags = _rows("shop_voucher", a, b)
    _cache(*tags)
    a.value = 3
    a.save()
    assert _kept(*tags) == {f"shop_voucher:{b.pk}"}
    _cache(*tags)
    b.delete()
    assert _kept(*tags) == {f"shop_voucher:{a.pk}"}


def test_a_row_saved_with_a_given_key_is_exact() -> None:
    fr = Country.objects.create(code="fr", name="France")
    tags = ["shop_country:fr", "shop_country:de"]
    _cache(*tags)
    Country(code="de", name="Germany").save()  # an UPDATE that matches nothing, then the INSERT
    fr.name = "République française"
    fr.save()
    assert _kept(*tags) == set()
    _cache(*tags, "shop_country:it")
    fr.delete()
    assert _kept(*tags, "shop_country:it") == {"shop_country:de", "shop_country:it"}


def test_a_bulk_write_run_inside_djangos_save_code_reaches_every_row() -> None:
    """A custom base manager's ``_update`` writes every row from inside ``Model._do_update``:
    the frame alone would give the statement one row; its SQL is not filtered by that key."""
    a, b = Stamped.objects.create(name="a"), Stamped.objects.create(name="b")
    tags = _rows("shop_stamped", a, b)
    _cache(*tags)
    a.name = "A"
    a.save()
    assert Stamped.objects.get(pk=b.pk).stamp == 1
    assert _kept(*tags) == set()
