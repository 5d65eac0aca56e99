"""A small Flask shop: cached views with tags, settings in app.config, ``flask cacheplug``.

Run it with ``flask --app app run`` or ``gunicorn -w 4 'app:create_app()'`` (every worker
shares the cache through the disk tier); ``flask --app app cacheplug stats`` looks at it.
``Database`` stands in for a real one: it counts its queries, so the tests can tell what
was served from the cache.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, request

import cacheplug
from cacheplug.integrations.flask import CachePlug


class Database:
    def __init__(self) -> None:
        self.products = {1: {"id": 1, "name": "kettle", "price": 30}, 2: {"id": 2, "name": "mug", "price": 8}}
        self.queries = 0

    def product(self, product_id: int) -> dict[str, Any] | None:
        self.queries += 1
        return self.products.get(product_id)


DATABASE = Database()
plug = CachePlug()  # set up on each app by create_app (the application factory pattern)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(CACHEPLUG_HTTP_TTL=60, CACHEPLUG_NAMESPACE="shop")
    app.config.update(config or {})
    plug.init_app(app)

    @app.get("/products/<int:product_id>")
    @plug.cached(tags=["product:{product_id}"])
    def product(product_id: int) -> dict[str, Any]:
        found = DATABASE.product(product_id)
        if found is None:
            abort(404)  # a 404 is not stored
        return found

    @app.get("/products")
    @plug.cached(ttl=300, tags=["catalog"])
    def catalog() -> list[dict[str, Any]]:
        DATABASE.queries += 1
        page = int(request.args.get("page", 1))  # the query string is part of the key
        return list(DATABASE.products.values())[(page - 1) * 10 : page * 10]

    @app.post("/products/<int:product_id>/price")
    def set_price(product_id: int) -> dict[str, Any]:
        DATABASE.products[product_id]["price"] = int(request.form["price"])
        # Every worker stops serving the old responses before this answers.
        cacheplug.invalidate(tags=[f"product:{product_id}", "catalog"])
        return DATABASE.products[product_id]

    return app


app = create_app()
