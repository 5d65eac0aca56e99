"""The example API's tests: run with ``pytest`` in this folder (``make test`` runs them too)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from app import DATABASE, app

import cacheplug


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    cacheplug.get_cache().clear()
    DATABASE.queries = 0
    yield


def requests(*calls: tuple[Any, ...]) -> list[httpx.Response]:
    """Send ``(method, url[, headers])`` requests to the app in turn; their responses."""

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://shop"
        ) as client:
            return [await client.request(c[0], c[1], headers=c[2] if len(c) > 2 else None) for c in calls]

    return asyncio.run(run())


def test_a_product_is_served_from_the_cache() -> None:
    first, second = requests(("GET", "/products/1"), ("GET", "/products/1"))
    assert first.json() == second.json() == {"id": 1, "name": "kettle", "price": 30}
    assert "age" in second.headers and DATABASE.queries == 1


def test_a_price_change_invalidates_the_product_and_the_summary() -> None:
    before = requests(("GET", "/products/1"), ("GET", "/catalog/summary"))
    assert before[1].json() == {"count": 2, "cheapest": 8}
    requests(("PUT", "/products/2/price?price=5"))
    after = requests(("GET", "/products/2"), ("GET", "/catalog/summary"), ("GET", "/products/1"))
    assert after[0].json()["price"] == 5
    assert after[1].json() == {"count": 2, "cheapest": 5}
    assert "age" in after[2].headers  # product 1 was not touched by the write


def test_etag_and_304() -> None:
    (first,) = requests(("GET", "/products/1"))
    (revalidated,) = requests(("GET", "/products/1", {"If-None-Match": first.headers["etag"]}))
    assert revalidated.status_code == 304 and revalidated.content == b""


def test_a_missing_product_is_not_stored() -> None:
    responses = requests(("GET", "/products/9"), ("GET", "/products/9"))
    assert [r.status_code for r in responses] == [404, 404]
    assert DATABASE.queries == 2
