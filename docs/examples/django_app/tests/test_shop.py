"""The example shop's tests: writes invalidate after their commit, sessions, the command."""

import json

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import transaction

from shop import services
from shop.models import Product, Tag

# transaction=True: real commits, so that on-commit invalidations run (pytest-django's
# default wraps each test in a transaction that is never committed).
pytestmark = pytest.mark.django_db(transaction=True)


def test_the_page_is_cached_until_the_product_is_saved(client):
    lamp = Product.objects.create(name="Lamp", price=1999)
    assert client.get(f"/products/{lamp.pk}/").json() == {"name": "Lamp", "price": "19.99", "tags": [], "of": 1}
    assert services.product_card.cache_info().hits == 0
    client.get(f"/products/{lamp.pk}/")
    assert services.product_card.cache_info().hits == 1
    lamp.price = 2499
    lamp.save()
    assert client.get(f"/products/{lamp.pk}/").json()["price"] == "24.99"


def test_nothing_is_invalidated_before_the_commit(client):
    lamp = Product.objects.create(name="Lamp", price=1999)
    client.get(f"/products/{lamp.pk}/")
    with transaction.atomic():
        Product.objects.filter(pk=lamp.pk).update(price=999)
        assert services.product_card(lamp.pk)["price"] == "19.99"  # the write is not committed
    assert services.catalogue_size() == 1
    # QuerySet.update() has no post_save: a table write, reaching every product's entries.
    assert services.product_card(lamp.pk)["price"] == "9.99"


def test_a_save_invalidates_its_own_product_only(client):
    lamp = Product.objects.create(name="Lamp", price=1999)
    desk = Product.objects.create(name="Desk", price=9900)
    services.product_card(lamp.pk), services.product_card(desk.pk)
    hits = services.product_card.cache_info().hits
    desk.price = 8900
    desk.save()  # a row write: "product" and "product:<desk's pk>"
    assert services.product_card(lamp.pk)["price"] == "19.99"
    assert services.product_card.cache_info().hits == hits + 1  # the lamp's card was still cached
    assert services.product_card(desk.pk)["price"] == "89.00"


def test_bulk_writes_and_tags_invalidate(client):
    lamp = Product.objects.create(name="Lamp", price=1999)
    assert services.catalogue_size() == 1
    Product.objects.bulk_create([Product(name="Desk", price=9900), Product(name="Chair", price=4900)])
    assert services.catalogue_size() == 3
    services.product_card(lamp.pk)
    Tag.objects.create(name="light").products.add(lamp)  # m2m_changed: both sides
    assert services.product_card(lamp.pk)["tags"] == ["light"]


def test_the_cart_lives_in_the_cache_backend(client):
    client.get("/products/7/add/")
    client.get("/products/9/add/")
    assert client.get("/cart/").json() == {"cart": [7, 9]}
    session_key = client.cookies["sessionid"].value
    assert cache.get("django.contrib.sessions.cache" + session_key) == {"cart": [7, 9]}


def test_the_cacheplug_command_sees_the_project_cache(capsys):
    Product.objects.create(name="Lamp", price=1999)
    services.catalogue_size()
    call_command("cacheplug", "keys", "--json")
    keys = [row["key"] for row in json.loads(capsys.readouterr().out)["keys"]]
    assert any("catalogue_size" in key for key in keys)
