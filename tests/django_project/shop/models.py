"""Models whose writes the tests watch."""

from __future__ import annotations

from django.db import models


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
