"""The example shop's tests: run with ``pytest`` in this folder (``make test`` runs them too)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from app import DATABASE, app

import cacheplug


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    cacheplug.get_cache().clear()
    DATABASE.queries = 0
    yield


def test_a_product_is_served_from_the_cache() -> None:
    client = app.test_client()
    first, second = client.get("/products/1"), client.get("/products/1")
    assert first.json == second.json == {"id": 1, "name": "kettle", "price": 30}
    assert "Age" in second.headers and DATABASE.queries == 1


def test_a_price_change_invalidates_the_product_and_the_catalog() -> None:
    client = app.test_client()
    client.get("/products/2")
    client.get("/products")
    client.post("/products/2/price", data={"price": "5"})
    assert client.get("/products/2").json["price"] == 5
    assert [p["price"] for p in client.get("/products").json] == [30, 5]


def test_etag_and_304() -> None:
    client = app.test_client()
    etag = client.get("/products/1").headers["ETag"]
    assert client.get("/products/1", headers={"If-None-Match": etag}).status_code == 304


def test_a_missing_product_is_not_stored() -> None:
    client = app.test_client()
    assert [client.get("/products/9").status_code for _ in range(2)] == [404, 404]
    assert DATABASE.queries == 2


def test_flask_cacheplug_commands() -> None:
    app.test_client().get("/products/1")
    result = app.test_cli_runner().invoke(args=["cacheplug", "keys"])
    assert result.exit_code == 0, result.output
    assert "products/1" in result.output
