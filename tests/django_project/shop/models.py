"""Models whose writes the tests watch."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connections, models


class Author(models.Model):
    name = models.CharField(max_length=100)


class Book(models.Model):
    title = models.CharField(max_length=100)
    authors = models.ManyToManyField(Author, related_name="books")


class Order(models.Model):
    """Its writes invalidate the entity ``order``, not its table's name."""

    __cacheplug_entity__ = "order"
    total = models.IntegerField(default=0)

    class Meta:
        db_table = "shop_orders"


class Place(models.Model):
    name = models.CharField(max_length=100)


class Restaurant(Place):
    """Multi-table inheritance: a save writes the place's row too."""

    pizza = models.BooleanField(default=False)


class CheapOrder(Order):
    """A proxy: it writes the orders' table, so it is an ``order`` too."""

    class Meta:
        proxy = True


class Shelf(models.Model):
    name = models.CharField(max_length=100)


class Item(models.Model):
    """Deleted with its shelf (a cascade through the collector)."""

    shelf = models.ForeignKey(Shelf, on_delete=models.CASCADE, related_name="items")
    name = models.CharField(max_length=100)


class Note(models.Model):
    """Set to its default when its item goes: the collector updates the rows it loaded, by key."""

    item = models.ForeignKey(Item, on_delete=models.SET_DEFAULT, null=True, default=None)
    text = models.CharField(max_length=100)


class Category(models.Model):
    """Its children are set to NULL by one UPDATE of the table a row is being deleted from."""

    parent = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, related_name="children")
    name = models.CharField(max_length=100)


class Ticket(models.Model):
    """A unique code: a second save of the same code raises between pre_save and post_save."""

    code = models.CharField(max_length=20, unique=True)


class Shop(models.Model):
    shop_id = models.AutoField(primary_key=True)
    name = models.CharField(max_length=100)


class Brand(models.Model):
    brand_id = models.AutoField(primary_key=True)
    label = models.CharField(max_length=100)


class Outlet(Shop, Brand):
    """Two parents, each row with its own key: a save writes the shop's and the brand's rows."""

    city = models.CharField(max_length=100)


class Voucher(models.Model):
    """A UUID primary key: the statements' keys are UUIDs, not ints."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    value = models.IntegerField(default=0)


class Country(models.Model):
    """A primary key given, not generated: save() tries an UPDATE, then INSERTs."""

    code = models.CharField(max_length=2, primary_key=True)
    name = models.CharField(max_length=100)


class StampedQuerySet(models.QuerySet["Stamped"]):
    def _update(self, values: Any) -> Any:
        with connections[self.db].cursor() as cursor:  # every row, from inside Django's save()
            cursor.execute(f'UPDATE "{self.model._meta.db_table}" SET "stamp" = "stamp" + 1')
        return super()._update(values)


class Stamped(models.Model):
    """Its base manager's update also writes every other row of the table."""

    stamp = models.IntegerField(default=0)
    name = models.CharField(max_length=100)
    objects = StampedQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"
