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
