from django.db import models


class Product(models.Model):
    """Writes of a product invalidate the entity "product" (and "product:<pk>")."""

    __cacheplug_entity__ = "product"
    name = models.CharField(max_length=100)
    price = models.IntegerField()  # cents


class Tag(models.Model):
    name = models.CharField(max_length=50)
    products = models.ManyToManyField(Product, related_name="tags")
