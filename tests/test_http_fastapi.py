"""Starlette and FastAPI: the ASGI middleware on routed apps, and ``@cached`` on FastAPI routes.

Driven by httpx's ``ASGITransport`` (what Starlette's TestClient wraps).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Annotated, Any

import pytest

import cacheplug
from cacheplug import Cache, ConfigurationError, UnkeyableArgumentError
from cacheplug.http import Request

from .http_support import AsgiClient, needs

needs("httpx")
fastapi = needs("fastapi")
starlette_responses = needs("starlette.responses")
starlette_routing = needs("starlette.routing")
starlette_applications = needs("starlette.applications")
from cacheplug.integrations import asgi  # noqa: E402
from cacheplug.integrations.fastapi import cached, dependency_parameters  # noqa: E402

Depends = fastapi.Depends


class Session:
    """A database session: what a dependency returns, and has no cache key."""


def get_db() -> Session:
    return Session()


DB = Depends(get_db)  # the default-value form of a dependency (ruff: no call in a default)


@dataclasses.dataclass(frozen=True)
class User:
    name: str


def current_user(x_user: Annotated[str, fastapi.Header()] = "anonymous") -> User:
    return User(x_user)


# -- the middleware on a routed Starlette app --------------------------------------------------


def test_route_tags_can_read_what_the_router_found(tiered_cache: Cache) -> None:
    computed: Counter[str] = Counter()

    async def item(request: Any) -> Any:
        item_id = request.path_params["item_id"]
        computed[item_id] += 1
        return starlette_responses.JSONResponse({"id": item_id, "n": computed[item_id]})

    app = starlette_applications.Starlette(routes=[starlette_routing.Route("/items/{item_id:int}", item)])

    def tags(request: Request) -> list[str]:
        # Called once the application answered: the router has filled the scope by then.
        return [f"item:{request.native['path_params']['item_id']}"]

    client = AsgiClient(asgi.CacheMiddleware(app, cache=tiered_cache, tags=tags))
    for _ in range(2):
        client.get("/items/1")
        client.get("/items/2")
    cacheplug.invalidate(tags=["item:1"])
    assert client.get("/items/1").body == b'{"id":1,"n":2}'
    assert client.get("/items/2").body == b'{"id":2,"n":1}'


def test_fastapi_behind_the_middleware(tiered_cache: Cache) -> None:
    app = fastapi.FastAPI()
    computed = Counter[str]()

    @app.get("/report")
    def report() -> dict[str, int]:
        computed["report"] += 1
        return {"n": computed["report"]}

    @app.get("/private")
    def private(response: fastapi.Response) -> dict[str, int]:
        response.headers["Cache-Control"] = "private"
        computed["private"] += 1
        return {"n": computed["private"]}

    client = AsgiClient(asgi.CacheMiddleware(app, cache=tiered_cache))
    first = client.get("/report")
    assert client.get("/report").body == first.body == b'{"n":1}'
    assert "etag" in first.headers
    client.get("/private")
    assert client.get("/private").body == b'{"n":2}'


def test_websocket_and_lifespan_scopes_pass_through(tiered_cache: Cache) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    import asyncio

    middleware = asgi.CacheMiddleware(app, cache=tiered_cache)
    asyncio.run(middleware({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    asyncio.run(middleware({"type": "websocket", "path": "/ws", "headers": []}, None, None))  # type: ignore[arg-type]
    assert seen == ["lifespan", "websocket"]


# -- @cached on FastAPI routes -----------------------------------------------------------------


def _client(app: Any) -> AsgiClient:
    return AsgiClient(app)


def test_plain_cached_cannot_key_a_dependency(tiered_cache: Cache) -> None:
    """Why the integration exists: a session object has no stable key."""
    app = fastapi.FastAPI()

    @app.get("/items/{item_id}")
    @cacheplug.cached(cache=tiered_cache)
    def item(item_id: int, db: Session = DB) -> dict[str, int]:
        return {"id": item_id}

    with pytest.raises(UnkeyableArgumentError, match="parameter 'db'"):
        _client(app).get("/items/1")


def test_dependencies_are_left_out_of_the_key(tiered_cache: Cache) -> None:
    app = fastapi.FastAPI()
    computed: Counter[int] = Counter()

    @app.get("/items/{item_id}")
    @cached(ttl=60, cache=tiered_cache, tags=["item:{item_id}"])
    async def item(
        item_id: int,
        request: fastapi.Request,
        background: fastapi.BackgroundTasks,
        db: Session = DB,
        other: Annotated[Session, Depends(get_db)] = None,  # type: ignore[assignment]
    ) -> dict[str, int]:
        computed[item_id] += 1
        return {"id": item_id, "n": computed[item_id]}

    assert set(dependency_parameters(item.__wrapped__)) == {"request", "background", "db", "other"}
    client = _client(app)
    assert client.get("/items/1").body == client.get("/items/1").body == b'{"id":1,"n":1}'
    assert client.get("/items/2").body == b'{"id":2,"n":1}'
    cacheplug.invalidate(tags=["item:1"])
    assert client.get("/items/1").body == b'{"id":1,"n":2}'


def test_a_named_dependency_joins_the_key(tiered_cache: Cache) -> None:
    app = fastapi.FastAPI()
    computed: Counter[str] = Counter()

    @app.get("/me")
    @cached(cache=tiered_cache, key_dependencies=("user",))
    def me(user: Annotated[User, Depends(current_user)], db: Session = DB) -> dict[str, Any]:
        computed[user.name] += 1
        return {"user": user.name, "n": computed[user.name]}

    client = _client(app)
    assert client.get("/me", {"x-user": "ada"}).body == b'{"user":"ada","n":1}'
    assert client.get("/me", {"x-user": "bob"}).body == b'{"user":"bob","n":1}'
    assert client.get("/me", {"x-user": "ada"}).body == b'{"user":"ada","n":1}'
    assert computed == {"ada": 1, "bob": 1}


def test_the_dependency_form_caches_a_dependency(tiered_cache: Cache) -> None:
    app = fastapi.FastAPI()
    loads: Counter[int] = Counter()

    @cacheplug.cached(cache=tiered_cache, tags=["user:{user_id}"])
    def load_profile(user_id: int) -> dict[str, int]:
        loads[user_id] += 1
        return {"user_id": user_id, "load": loads[user_id]}

    cached_profile = Depends(load_profile)

    @app.get("/users/{user_id}")
    def profile(profile: dict[str, int] = cached_profile) -> dict[str, int]:
        return profile

    client = _client(app)
    assert client.get("/users/7").body == client.get("/users/7").body == b'{"user_id":7,"load":1}'
    cacheplug.invalidate(tags=["user:7"])
    assert client.get("/users/7").body == b'{"user_id":7,"load":2}'


def test_bare_cached_works_on_a_route() -> None:
    app = fastapi.FastAPI()
    computed: Counter[str] = Counter()

    @app.get("/ping")
    @cached
    def ping(db: Session = DB) -> dict[str, int]:
        computed["ping"] += 1
        return {"n": computed["ping"]}

    client = _client(app)
    assert client.get("/ping").body == client.get("/ping").body == b'{"n":1}'


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"key_dependencies": ("item_id",)}, "not dependency parameters"),
        ({"key_dependencies": "db"}, "tuple of names"),
        ({"ignore": "db"}, "tuple of names"),
    ],
)
def test_bad_key_dependencies_raise_at_decoration(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):

        @cached(**options)
        def item(item_id: int, db: Session = DB) -> int:
            return item_id


def test_add_middleware_builds_it_with_the_same_options(tiered_cache: Cache) -> None:
    app = fastapi.FastAPI()
    computed: Counter[str] = Counter()

    @app.get("/report")
    def report() -> dict[str, int]:
        computed["report"] += 1
        return {"n": computed["report"]}

    app.add_middleware(asgi.CacheMiddleware, cache=tiered_cache, ttl=30, tags=["reports"])
    client = AsgiClient(app)
    assert client.get("/report").body == client.get("/report").body == b'{"n":1}'
    cacheplug.invalidate(tags=["reports"])
    assert client.get("/report").body == b'{"n":2}'
