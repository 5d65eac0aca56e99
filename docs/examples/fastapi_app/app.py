"""A small product API: FastAPI behind cacheplug's ASGI middleware, and a value-cached route.

Run it with ``uvicorn app:app --workers 4`` (every worker shares the cache through the disk
tier). ``Database`` stands in for a real one: it counts its queries, so the tests can tell
what was served from the cache.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

import cacheplug
from cacheplug.http import Request
from cacheplug.integrations.asgi import CacheMiddleware
from cacheplug.integrations.fastapi import cached


class Database:
    def __init__(self) -> None:
        self.products = {1: {"id": 1, "name": "kettle", "price": 30}, 2: {"id": 2, "name": "mug", "price": 8}}
        self.queries = 0

    def product(self, product_id: int) -> dict[str, object] | None:
        self.queries += 1
        return self.products.get(product_id)

    def all(self) -> list[dict[str, object]]:
        self.queries += 1
        return list(self.products.values())


DATABASE = Database()


def get_db() -> Database:
    return DATABASE


Db = Annotated[Database, Depends(get_db)]
api = FastAPI()


@api.get("/products/{product_id}")
def product(product_id: int, db: Db) -> JSONResponse:
    found = db.product(product_id)
    if found is None:
        return JSONResponse({"detail": "no such product"}, status_code=404)  # never stored
    return JSONResponse(found)


@api.put("/products/{product_id}/price")
async def set_price(product_id: int, price: int, db: Db) -> dict[str, object]:
    db.products[product_id]["price"] = price
    # Every worker stops serving the old responses before this answers.
    await cacheplug.ainvalidate(tags=[f"product:{product_id}", "catalog"])
    return db.products[product_id]


# @cached on a route caches the value, as an app without the middleware would (the
# middleware stores this route's response too); the `db` dependency stays out of the key.
@api.get("/catalog/summary", response_class=JSONResponse)
@cached(ttl=300, tags=["catalog"])
def summary(db: Db) -> dict[str, object]:
    products = db.all()
    return {"count": len(products), "cheapest": min(p["price"] for p in products)}  # type: ignore[type-var]


def route_tags(request: Request) -> list[str]:
    """Tags of a stored response: called once the router has filled the scope."""
    params = request.native.get("path_params", {})
    return [f"product:{params['product_id']}"] if "product_id" in params else ["catalog"]


app = CacheMiddleware(api, ttl=60, tags=route_tags)
