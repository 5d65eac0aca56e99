"""cacheplug.integrations.flask against a real Flask app and its test client.

Per-view response caching (tags from the view's arguments, the policy of cacheplug.http),
what Flask itself adds to a response (the session cookie, ``Vary: Cookie``), configuration
from ``app.config`` and the ``flask cacheplug`` commands.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cacheplug
from cacheplug import Cache, ConfigurationError, DiskTier, get_cache
from cacheplug import invalidation as inv

from .conftest import FakeClock
from .http_support import needs

flask = needs("flask")
from cacheplug.integrations.flask import CachePlug  # noqa: E402  (after the skip above)


def _app(plug: CachePlug, calls: Counter[str], **config: Any) -> Any:
    app = flask.Flask("shop")
    app.secret_key = "test"
    app.config.update(config)

    @app.get("/items/<int:item_id>")
    @plug.cached(ttl=60, tags=["item:{item_id}"])
    def item(item_id: int) -> Any:
        calls["item"] += 1
        return {"id": item_id, "computed": calls["item"]}

    @app.get("/catalog")
    @plug.cached(tags=lambda: ["catalog"])
    def catalog() -> str:
        calls["catalog"] += 1
        return f"catalog #{calls['catalog']}"

    @app.get("/login")
    @plug.cached()
    def login() -> str:
        calls["login"] += 1
        flask.session["user"] = "ada"
        return f"hello #{calls['login']}"

    @app.get("/me")
    @plug.cached(allow_cookies=("session",))
    def me() -> str:
        calls["me"] += 1
        return f"{flask.session.get('user', 'anonymous')} #{calls['me']}"

    @app.get("/stream")
    @plug.cached()
    def stream() -> Any:
        calls["stream"] += 1
        return flask.Response(iter([b"a", b"b"]), mimetype="text/plain")

    @app.get("/boom")
    @plug.cached()
    def boom() -> str:
        calls["boom"] += 1
        raise RuntimeError("boom")

    @app.get("/async")
    @plug.cached()
    async def later() -> str:
        calls["async"] += 1
        return f"async #{calls['async']}"

    @app.get("/plain")
    def plain() -> str:
        calls["plain"] += 1
        return f"plain #{calls['plain']}"

    plug.init_app(app)
    return app


@pytest.fixture
def calls() -> Counter[str]:
    return Counter()


@pytest.fixture
def app(tiered_cache: Cache, calls: Counter[str]) -> Iterator[Any]:
    yield _app(CachePlug(cache=tiered_cache), calls)


def test_a_view_is_served_from_the_cache_until_its_tag_is_invalidated(app: Any, calls: Counter[str]) -> None:
    client = app.test_client()
    assert client.get("/items/1").json == {"id": 1, "computed": 1}
    assert client.get("/items/1").json == {"id": 1, "computed": 1}
    assert client.get("/items/2").json == {"id": 2, "computed": 2}
    cacheplug.invalidate(tags=["item:1"])
    assert client.get("/items/1").json == {"id": 1, "computed": 3}
    assert client.get("/items/2").json == {"id": 2, "computed": 2}


def test_a_tags_callable_receives_the_view_arguments(app: Any) -> None:
    client = app.test_client()
    client.get("/catalog")
    assert client.get("/catalog").text == "catalog #1"
    cacheplug.invalidate(tags=["catalog"])
    assert client.get("/catalog").text == "catalog #2"


def test_the_query_string_is_part_of_the_key(app: Any) -> None:
    client = app.test_client()
    assert client.get("/catalog?page=1").text == "catalog #1"
    assert client.get("/catalog?page=2").text == "catalog #2"
    assert client.get("/catalog?page=1").text == "catalog #1"


def test_etag_304_age_and_head(app: Any, clock: FakeClock) -> None:
    client = app.test_client()
    first = client.get("/catalog")
    etag = first.headers["ETag"]
    assert etag.startswith('"') and "Age" not in first.headers
    clock.advance(3)
    assert client.get("/catalog", headers={"If-None-Match": etag}).status_code == 304
    head = client.head("/catalog")
    assert head.data == b"" and head.headers["Content-Length"] == str(len(first.data))
    assert head.headers["Age"] == "3" and head.headers["ETag"] == etag


def test_a_view_that_sets_the_session_cookie_is_not_stored(app: Any, calls: Counter[str]) -> None:
    client = app.test_client()
    first = client.get("/login")
    assert "session=" in first.headers["Set-Cookie"]
    app.test_client().get("/login")
    assert calls["login"] == 2


def test_a_view_that_reads_the_session_varies_on_the_cookie(app: Any, calls: Counter[str]) -> None:
    """Flask adds ``Vary: Cookie`` after the view: the response is stored per session."""
    ada, bob, anonymous = app.test_client(), app.test_client(), app.test_client()
    ada.get("/login")
    with bob.session_transaction() as session:
        session["user"] = "bob"
    assert ada.get("/me").text == "ada #1"
    assert bob.get("/me").text == "bob #2"
    assert anonymous.get("/me").text == "anonymous #3"
    assert ada.get("/me").text == "ada #1"
    assert bob.get("/me").text == "bob #2"
    assert anonymous.get("/me").text == "anonymous #3"


def test_a_session_cookie_is_not_allowed_unless_named(app: Any, calls: Counter[str]) -> None:
    client = app.test_client()
    client.get("/login")  # the client now sends a session cookie
    client.get("/catalog")
    client.get("/catalog")
    assert calls["catalog"] == 2


def test_a_streamed_response_passes_through(app: Any, calls: Counter[str]) -> None:
    client = app.test_client()
    assert client.get("/stream").data == b"ab"
    reply = client.get("/stream")
    assert reply.data == b"ab" and "ETag" not in reply.headers
    assert calls["stream"] == 2


def test_a_failing_view_is_not_stored_and_ends_the_capture(app: Any, calls: Counter[str]) -> None:
    client = app.test_client()
    assert client.get("/boom").status_code == 500
    assert client.get("/boom").status_code == 500
    assert calls["boom"] == 2
    assert inv.ACTIVE == []


def test_async_views_are_cached(app: Any) -> None:
    pytest.importorskip("asgiref")
    client = app.test_client()
    assert client.get("/async").text == "async #1"
    assert client.get("/async").text == "async #1"


def test_views_without_the_decorator_are_untouched(app: Any, calls: Counter[str]) -> None:
    client = app.test_client()
    client.get("/plain")
    reply = client.get("/plain")
    assert reply.text == "plain #2" and "ETag" not in reply.headers


def test_before_request_hooks_run_on_hits(app: Any, calls: Counter[str]) -> None:
    app.before_request(lambda: calls.update(["before"]))
    client = app.test_client()
    client.get("/catalog")
    client.get("/catalog")
    assert calls["before"] == 2 and calls["catalog"] == 1


def test_a_view_on_an_app_without_init_app_raises_a_clear_error() -> None:
    plug = CachePlug()
    app = flask.Flask("bare")
    app.testing = True

    @app.get("/")
    @plug.cached()
    def index() -> str:
        return "x"

    with pytest.raises(ConfigurationError, match="init_app"):
        app.test_client().get("/")


def test_bad_view_options_fail_at_decoration() -> None:
    plug = CachePlug()
    with pytest.raises(ConfigurationError, match="statuses"):
        plug.cached(statuses=(304,))
    with pytest.raises(ConfigurationError, match="not an argument of the view"):

        @plug.cached(tags=["item:{id}"])
        def view(item_id: int) -> str:
            return ""


# -- app.config ----------------------------------------------------------------------------------


def test_app_config_builds_the_default_cache(tmp_path: Path, calls: Counter[str]) -> None:
    directory = tmp_path / "cache"
    _app(
        CachePlug(),
        calls,
        CACHEPLUG_DIR=str(directory),
        CACHEPLUG_DEFAULT_TTL="30",
        CACHEPLUG_MAX_ENTRIES="500",
        CACHEPLUG_NAMESPACE="shop",
    )
    cache = get_cache()
    assert cache.default_ttl == 30.0 and cache.namespace == "shop"
    disk = [t for t in cache.tiers if isinstance(t, DiskTier)]
    assert disk and disk[0].directory == str(directory)


def test_app_config_can_disable_caching(calls: Counter[str]) -> None:
    app = _app(CachePlug(), calls, CACHEPLUG_ENABLED="false", CACHEPLUG_TIERS="memory")
    client = app.test_client()
    client.get("/catalog")
    client.get("/catalog")
    assert calls["catalog"] == 2


def test_app_config_gives_the_views_defaults(
    tiered_cache: Cache, calls: Counter[str], clock: FakeClock
) -> None:
    app = _app(
        CachePlug(cache=tiered_cache),
        calls,
        CACHEPLUG_HTTP_TTL="5",
        CACHEPLUG_HTTP_RESPECT_REQUEST_CACHE_CONTROL="true",
    )
    client = app.test_client()
    client.get("/catalog")
    clock.advance(4)
    assert client.get("/catalog").text == "catalog #1"
    assert client.get("/catalog", headers={"Cache-Control": "no-cache"}).text == "catalog #2"
    clock.advance(6)
    assert client.get("/catalog").text == "catalog #3"
    client.get("/items/1")
    clock.advance(6)  # the view's own ttl=60 wins over CACHEPLUG_HTTP_TTL
    assert client.get("/items/1").json["computed"] == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"CACHEPLUG_TTL": 5}, "unknown key CACHEPLUG_TTL"),
        ({"CACHEPLUG_OTEL": True}, "environment only"),
        ({"CACHEPLUG_ENABLED": "maybe"}, "True or False"),
        ({"CACHEPLUG_DEFAULT_TTL": "soon"}, "not a number"),
        ({"CACHEPLUG_HTTP_STATUSES": "200,206"}, "CACHEPLUG_HTTP_"),
        ({"CACHEPLUG_TIERS": "disk,memory"}, "memory tier must come first"),
    ],
)
def test_bad_app_config_fails_at_init_app(config: dict[str, Any], message: str, calls: Counter[str]) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _app(CachePlug(), calls, **config)


def test_cache_and_cache_settings_cannot_be_combined(tiered_cache: Cache, tmp_path: Path) -> None:
    app = flask.Flask("both")
    app.config["CACHEPLUG_DIR"] = str(tmp_path)
    with pytest.raises(ConfigurationError, match="cannot be combined"):
        CachePlug(app, cache=tiered_cache)


def test_init_app_twice_is_refused(app: Any) -> None:
    with pytest.raises(ConfigurationError, match="already set up"):
        CachePlug().init_app(app)


# -- flask cacheplug ----------------------------------------------------------------------------


def test_flask_cacheplug_runs_the_command_line_on_the_app_s_directory(
    tmp_path: Path, calls: Counter[str]
) -> None:
    directory = tmp_path / "cache"
    app = _app(CachePlug(), calls, CACHEPLUG_DIR=str(directory))
    app.test_client().get("/catalog")
    runner = app.test_cli_runner()
    help_text = runner.invoke(args=["cacheplug", "--help"]).output
    assert all(command in help_text for command in ("stats", "keys", "inspect", "invalidate", "clear"))
    stats = runner.invoke(args=["cacheplug", "stats"])
    assert stats.exit_code == 0, stats.output
    assert str(directory) in stats.output
    keys = runner.invoke(args=["cacheplug", "keys", "--json"])
    assert keys.exit_code == 0 and "http:GET http://localhost/catalog?" in keys.output


def test_flask_cacheplug_dir_defaults_to_a_given_cache_s_disk_tier(disk_dir: Path, clock: FakeClock) -> None:
    with Cache([DiskTier(disk_dir)], clock=clock) as cache:
        app = _app(CachePlug(cache=cache), Counter())
        result = app.test_cli_runner().invoke(args=["cacheplug", "stats"])
    assert result.exit_code == 0, result.output
    assert str(disk_dir) in result.output
    assert os.environ.get("CACHEPLUG_DIR") != str(disk_dir)
