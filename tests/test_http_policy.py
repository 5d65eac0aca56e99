"""The HTTP caching policy (cacheplug.http), rule by rule, through both middlewares.

Every test runs twice: through ``cacheplug.integrations.asgi.CacheMiddleware`` (driven by
httpx's ``ASGITransport``) and through ``cacheplug.integrations.wsgi.CacheMiddleware``
(a raw environ, both sides checked by ``wsgiref.validate``), around the same scripted
application. A body ending in ``#n`` was computed by the n-th call of the application, so a
test sees whether a response was served from the cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cacheplug
from cacheplug import Cache, ConfigurationError, DiskTier, MemoryTier, cached
from cacheplug import invalidation as inv
from cacheplug.http import Request, ResponseCache, parse_cache_control
from cacheplug.integrations import asgi, wsgi

from .conftest import FakeClock
from .http_support import AsgiClient, Script, WsgiClient, asgi_app, needs, wsgi_app

needs("httpx")

Client = AsgiClient | WsgiClient
Serve = Callable[..., Client]


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture(params=["asgi", "wsgi"])
def serve(request: pytest.FixtureRequest, script: Script, tiered_cache: Cache) -> Serve:
    """``serve(**options)``: a client of the scripted app behind the middleware under test."""

    def make(cache: Cache = tiered_cache, host: str = "testserver", **options: Any) -> Client:
        if request.param == "asgi":
            return AsgiClient(asgi.CacheMiddleware(asgi_app(script), cache=cache, **options), host)
        return WsgiClient(wsgi.CacheMiddleware(wsgi_app(script), cache=cache, **options), host)

    return make


def _etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


# -- what is stored ------------------------------------------------------------------------


def test_a_get_is_stored_and_served_without_calling_the_app(serve: Serve, script: Script) -> None:
    client = serve()
    assert client.get("/p").body == b"/p? #1"
    assert client.get("/p").body == b"/p? #1"
    assert script.calls["/p"] == 1


def test_other_methods_pass_through(serve: Serve, script: Script) -> None:
    client = serve()
    for _ in range(2):
        assert client.request("POST", "/p").status == 200
    assert script.calls["/p"] == 2
    assert client.get("/p").body == b"/p? #3"


def test_query_order_does_not_split_entries_but_same_name_order_does(serve: Serve) -> None:
    client = serve()
    assert client.get("/p?a=1&b=2").body == b"/p?a=1&b=2 #1"
    assert client.get("/p?b=2&a=1").body == b"/p?a=1&b=2 #1"
    assert client.get("/p?a=1&a=2").body == b"/p?a=1&a=2 #2"
    assert client.get("/p?a=2&a=1").body == b"/p?a=2&a=1 #3"  # a list in another order
    assert client.get("/p").body == b"/p? #4"


def test_a_decoded_question_mark_in_the_path_is_not_a_query(serve: Serve) -> None:
    client = serve()
    assert client.get("/a%3Fb").body == b"/a?b? #1"
    assert client.get("/a?b").body == b"/a?b #1"  # path /a, query b: another resource
    assert client.get("/a?b?").body == b"/a?b? #2"  # path /a (its 2nd call), query b?


@pytest.mark.parametrize("host", ["testserver/a", "evil host", "user@testserver", "testserver:80:80"])
def test_a_host_that_cannot_be_keyed_safely_is_not_cached(serve: Serve, script: Script, host: str) -> None:
    client = serve(host=host)
    client.get("/b")
    client.get("/b")
    assert script.calls["/b"] == 2


def test_hosts_are_keyed_apart(serve: Serve, script: Script) -> None:
    assert serve(host="a.example").get("/p").body == b"/p? #1"
    assert serve(host="b.example").get("/p").body == b"/p? #2"
    assert serve(host="A.EXAMPLE").get("/p").body == b"/p? #1"


def test_vary_keys_on_the_named_request_headers(serve: Serve, script: Script) -> None:
    script.answer("/p", headers=[("Vary", "Accept-Language, Accept-Encoding")])
    client = serve()
    en, fr = {"accept-language": "en"}, {"accept-language": "fr"}
    assert client.get("/p", en).body == b"/p? #1"
    assert client.get("/p", fr).body == b"/p? #2"
    assert client.get("/p", en).body == b"/p? #1"
    assert client.get("/p", fr).body == b"/p? #2"
    assert client.get("/p", {**en, "accept-encoding": "gzip"}).body == b"/p? #3"
    assert client.get("/p", {**en, "user-agent": "other"}).body == b"/p? #1"  # not named by Vary


def test_an_absent_header_and_an_empty_one_are_different_variants(serve: Serve, script: Script) -> None:
    script.answer("/p", headers=[("Vary", "X-Flag")])
    client = serve()
    assert client.get("/p").body == b"/p? #1"
    assert client.get("/p", {"x-flag": ""}).body == b"/p? #2"
    assert client.get("/p").body == b"/p? #1"


def test_vary_star_is_never_stored(serve: Serve, script: Script) -> None:
    script.answer("/p", headers=[("Vary", "*")])
    client = serve()
    assert client.get("/p").body == b"/p? #1"
    assert client.get("/p").body == b"/p? #2"


def test_a_change_of_vary_names_replaces_the_url_record(
    serve: Serve, script: Script, clock: FakeClock
) -> None:
    script.answer("/p", headers=[("Vary", "Accept-Language")])
    client = serve(ttl=10)
    assert client.get("/p", {"accept-language": "en", "x-tenant": "a"}).body == b"/p? #1"
    clock.advance(11)
    script.answer("/p", headers=[("Vary", "X-Tenant")])
    assert client.get("/p", {"accept-language": "en", "x-tenant": "a"}).body == b"/p? #2"
    assert client.get("/p", {"accept-language": "fr", "x-tenant": "a"}).body == b"/p? #2"
    assert client.get("/p", {"accept-language": "en", "x-tenant": "b"}).body == b"/p? #3"


@pytest.mark.parametrize(
    "cache_control",
    [
        "no-store",
        "private",
        "no-cache",
        'private="set-cookie"',
        'no-cache="x-secret"',
        "max-age=0",
        "s-maxage=0",
        "max-age=abc",
        "max-age=-5",
        "max-age=5, max-age=10",
        "public, NO-STORE",
    ],
)
def test_responses_that_forbid_storing_are_not_stored(
    serve: Serve, script: Script, cache_control: str
) -> None:
    script.answer("/p", headers=[("Cache-Control", cache_control)])
    client = serve()
    assert client.get("/p").body == b"/p? #1"
    reply = client.get("/p")
    assert reply.body == b"/p? #2"
    assert reply.headers["cache-control"] == cache_control  # passed through untouched
    assert "etag" not in reply.headers


def test_max_age_is_the_lifetime(serve: Serve, script: Script, clock: FakeClock) -> None:
    script.answer("/p", headers=[("Cache-Control", "public, max-age=10")])
    client = serve(ttl=1000)
    client.get("/p")
    clock.advance(9)
    assert client.get("/p").body == b"/p? #1"
    clock.advance(2)
    assert client.get("/p").body == b"/p? #2"


def test_s_maxage_overrides_max_age(serve: Serve, script: Script, clock: FakeClock) -> None:
    script.answer("/p", headers=[("Cache-Control", "max-age=5, s-maxage=30")])
    client = serve()
    client.get("/p")
    clock.advance(20)
    assert client.get("/p").body == b"/p? #1"
    clock.advance(11)
    assert client.get("/p").body == b"/p? #2"


def test_ttl_applies_when_the_response_says_nothing(serve: Serve, clock: FakeClock) -> None:
    client = serve(ttl=20)
    client.get("/p")
    clock.advance(19)
    assert client.get("/p").body == b"/p? #1"
    clock.advance(2)
    assert client.get("/p").body == b"/p? #2"


def test_expires_is_the_lifetime_from_date(serve: Serve, script: Script, clock: FakeClock) -> None:
    script.answer(
        "/p",
        headers=[("Date", "Tue, 14 Nov 2023 22:13:20 GMT"), ("Expires", "Tue, 14 Nov 2023 22:13:50 GMT")],
    )
    client = serve(ttl=1000)
    client.get("/p")
    clock.advance(29)
    assert client.get("/p").body == b"/p? #1"
    clock.advance(2)
    assert client.get("/p").body == b"/p? #2"


@pytest.mark.parametrize("expires", ["0", "Thu, 01 Jan 1970 00:00:00 GMT", "soon"])
def test_an_expires_in_the_past_or_invalid_is_not_stored(serve: Serve, script: Script, expires: str) -> None:
    script.answer("/p", headers=[("Expires", expires)])
    client = serve()
    client.get("/p")
    assert client.get("/p").body == b"/p? #2"


def test_responses_that_set_cookies_are_not_stored(serve: Serve, script: Script) -> None:
    script.answer("/p", headers=[("Set-Cookie", "session=abc; HttpOnly")])
    client = serve()
    client.get("/p")
    reply = client.get("/p")
    assert reply.body == b"/p? #2"
    assert reply.headers["set-cookie"] == "session=abc; HttpOnly"


def test_non_200_responses_pass_through_untouched(serve: Serve, script: Script) -> None:
    script.answer("/missing", status=404, headers=[("Content-Type", "text/plain")])
    client = serve()
    client.get("/missing")
    reply = client.get("/missing")
    assert (reply.status, reply.body) == (404, b"/missing? #2")
    assert "etag" not in reply.headers


def test_statuses_choose_what_is_stored(serve: Serve, script: Script) -> None:
    script.answer("/missing", status=404)
    client = serve(statuses=(200, 404))
    client.get("/missing")
    reply = client.get("/missing")
    assert (reply.status, reply.body) == (404, b"/missing? #1")
    assert "age" in reply.headers


def test_streaming_responses_pass_through_untouched(serve: Serve, script: Script) -> None:
    script.answer("/s", stream=True)
    client = serve()
    assert client.get("/s").body == b"/s? #1"
    reply = client.get("/s")
    assert reply.body == b"/s? #2"
    assert "etag" not in reply.headers and "age" not in reply.headers


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "no-content-length"])
def test_a_body_over_max_body_size_is_not_stored(serve: Serve, script: Script, length: bool) -> None:
    script.answer("/big", body=b"x" * 100, length=length)
    client = serve(max_body_size=99)
    client.get("/big")
    client.get("/big")
    assert script.calls["/big"] == 2
    small = serve(max_body_size=100)
    small.get("/big")
    small.get("/big")
    assert script.calls["/big"] == 3


# -- who may be served from the cache -------------------------------------------------------


def test_a_request_with_authorization_is_neither_served_nor_stored(serve: Serve, script: Script) -> None:
    client = serve()
    assert client.get("/p").body == b"/p? #1"
    assert client.get("/p", {"authorization": "Bearer alice"}).body == b"/p? #2"
    assert client.get("/p", {"authorization": "Bearer alice"}).body == b"/p? #3"
    assert client.get("/p").body == b"/p? #1"


def test_a_request_with_cookies_is_neither_served_nor_stored(serve: Serve) -> None:
    client = serve()
    assert client.get("/p").body == b"/p? #1"
    assert client.get("/p", {"cookie": "session=alice"}).body == b"/p? #2"
    assert client.get("/p").body == b"/p? #1"


def test_allow_cookies_names_the_cookies_that_do_not_make_a_request_personal(serve: Serve) -> None:
    client = serve(allow_cookies=("_ga", "consent"))
    assert client.get("/p", {"cookie": "_ga=1; consent=yes"}).body == b"/p? #1"
    assert client.get("/p").body == b"/p? #1"
    assert client.get("/p", {"cookie": "_ga=2; session=alice"}).body == b"/p? #2"
    assert client.get("/p", {"cookie": "_ga=3"}).body == b"/p? #1"


def test_vary_cookie_keys_on_the_allowed_cookies(serve: Serve, script: Script) -> None:
    script.answer("/p", headers=[("Vary", "Cookie")])
    client = serve(allow_cookies=("theme",))
    assert client.get("/p", {"cookie": "theme=dark"}).body == b"/p? #1"
    assert client.get("/p", {"cookie": "theme=light"}).body == b"/p? #2"
    assert client.get("/p", {"cookie": "theme=dark"}).body == b"/p? #1"


def test_the_request_cache_control_is_ignored_by_default(serve: Serve) -> None:
    client = serve()
    client.get("/p")
    for asked in ("no-cache", "no-store", "max-age=0"):
        assert client.get("/p", {"cache-control": asked}).body == b"/p? #1"
    assert client.get("/p", {"pragma": "no-cache"}).body == b"/p? #1"


def test_request_no_cache_recomputes_and_stores_when_respected(serve: Serve) -> None:
    client = serve(respect_request_cache_control=True)
    client.get("/p")
    assert client.get("/p", {"cache-control": "no-cache"}).body == b"/p? #2"
    assert client.get("/p").body == b"/p? #2"
    assert client.get("/p", {"pragma": "no-cache"}).body == b"/p? #3"


def test_request_no_store_bypasses_when_respected(serve: Serve) -> None:
    client = serve(respect_request_cache_control=True)
    client.get("/p")
    assert client.get("/p", {"cache-control": "no-store"}).body == b"/p? #2"
    assert client.get("/p").body == b"/p? #1"


def test_request_max_age_and_min_fresh_when_respected(serve: Serve, clock: FakeClock) -> None:
    client = serve(respect_request_cache_control=True, ttl=100)
    client.get("/p")
    clock.advance(10)
    assert client.get("/p", {"cache-control": "max-age=20"}).body == b"/p? #1"
    assert client.get("/p", {"cache-control": "max-age=5"}).body == b"/p? #2"
    clock.advance(90)  # the entry stored at 10 s expires at 110 s
    assert client.get("/p", {"cache-control": "min-fresh=5"}).body == b"/p? #2"
    assert client.get("/p", {"cache-control": "min-fresh=20"}).body == b"/p? #3"


def test_only_if_cached_answers_504_on_a_miss_when_respected(serve: Serve, script: Script) -> None:
    client = serve(respect_request_cache_control=True)
    assert client.get("/p", {"cache-control": "only-if-cached"}).status == 504
    assert script.calls["/p"] == 0
    client.get("/p")
    assert client.get("/p", {"cache-control": "only-if-cached"}).body == b"/p? #1"


# -- what a stored response carries ----------------------------------------------------------


def test_a_strong_etag_is_added_and_if_none_match_answers_304(serve: Serve, script: Script) -> None:
    client = serve()
    first = client.get("/p")
    assert first.headers["etag"] == _etag(b"/p? #1")
    for asked in (
        first.headers["etag"],
        "W/" + first.headers["etag"],
        '"other", ' + first.headers["etag"],
        "*",
    ):
        reply = client.get("/p", {"if-none-match": asked})
        assert (reply.status, reply.body) == (304, b"")
        assert reply.headers["etag"] == first.headers["etag"]
        assert "content-type" not in reply.headers and "age" in reply.headers
    assert client.get("/p", {"if-none-match": '"other"'}).status == 200
    assert script.calls["/p"] == 1


def test_if_none_match_answers_304_on_the_miss_that_stores(serve: Serve, script: Script) -> None:
    client = serve()
    reply = client.get("/p", {"if-none-match": _etag(b"/p? #1")})
    assert (reply.status, reply.body) == (304, b"")
    assert client.get("/p").body == b"/p? #1"


def test_the_application_s_own_etag_is_kept(serve: Serve, script: Script) -> None:
    script.answer("/p", headers=[("ETag", 'W/"v7"')])
    client = serve()
    assert client.get("/p").headers["etag"] == 'W/"v7"'
    assert client.get("/p", {"if-none-match": '"v7"'}).status == 304


def test_age_says_how_long_ago_the_response_was_stored(serve: Serve, clock: FakeClock) -> None:
    client = serve()
    assert "age" not in client.get("/p").headers
    clock.advance(7.5)
    assert client.get("/p").headers["age"] == "7"


def test_head_is_answered_from_the_stored_get_and_a_head_miss_is_not_stored(
    serve: Serve, script: Script
) -> None:
    client = serve()
    head = client.request("HEAD", "/h")
    assert head.status == 200 and script.calls["/h"] == 1
    assert client.get("/h").body == b"/h? #2"  # the HEAD's answer was not stored
    head = client.request("HEAD", "/h")
    assert (head.status, head.body) == (200, b"")  # as the middleware sent it, not a server
    assert head.headers["content-length"] == str(len(b"/h? #2"))
    assert head.headers["etag"] == _etag(b"/h? #2")
    assert script.calls["/h"] == 2


# -- invalidation ----------------------------------------------------------------------------


def test_tags_invalidate_stored_responses(serve: Serve) -> None:
    client = serve(tags=lambda request: ["pages", f"page:{request.path}"])
    client.get("/a")
    client.get("/b")
    cacheplug.invalidate(tags=["page:/a"])
    assert client.get("/a").body == b"/a? #2"
    assert client.get("/b").body == b"/b? #1"
    cacheplug.invalidate(tags=["pages"])
    assert client.get("/b").body == b"/b? #2"


def test_invalidating_a_tag_drops_every_variant(serve: Serve, script: Script) -> None:
    script.answer("/p", headers=[("Vary", "Accept-Language")])
    client = serve(tags=["pages"])
    client.get("/p", {"accept-language": "en"})
    client.get("/p", {"accept-language": "fr"})
    cacheplug.invalidate(tags=["pages"])
    assert client.get("/p", {"accept-language": "en"}).body == b"/p? #3"
    assert client.get("/p", {"accept-language": "fr"}).body == b"/p? #4"


def test_a_response_computed_across_an_invalidation_is_not_stored(serve: Serve, script: Script) -> None:
    """No stale set: a write that invalidated the route while it computed wins."""
    client = serve(tags=["pages"])
    script.during["/p"] = lambda: cacheplug.invalidate(tags=["pages"]) if script.calls["/p"] == 1 else None
    assert client.get("/p").body == b"/p? #1"
    assert client.get("/p").body == b"/p? #2"
    assert client.get("/p").body == b"/p? #2"


def test_the_cached_values_a_response_was_built_from_invalidate_it(
    serve: Serve, script: Script, tiered_cache: Cache
) -> None:
    @cached(cache=tiered_cache, tags=["price:{item}"])
    def price(item: int) -> int:
        return 10

    price(1)  # already cached: the page's computation reads it as a hit, captured all the same
    script.during["/item/1"] = lambda: price(1)
    script.during["/item/2"] = lambda: price(2)
    client = serve()
    client.get("/item/1")
    client.get("/item/2")
    cacheplug.invalidate(tags=["price:1"])
    assert client.get("/item/1").body == b"/item/1? #2"
    assert client.get("/item/2").body == b"/item/2? #1"


def test_an_application_error_stores_nothing_and_ends_the_capture(serve: Serve, script: Script) -> None:
    def fail() -> None:
        raise RuntimeError("boom")

    script.during["/p"] = fail
    client = serve()
    with pytest.raises(RuntimeError, match="boom"):
        client.get("/p")
    assert inv.ACTIVE == []
    del script.during["/p"]
    assert client.get("/p").body == b"/p? #2"


def test_every_process_of_the_host_sees_stored_responses_and_their_invalidation(
    serve: Serve, script: Script, clock: FakeClock, disk_dir: Path
) -> None:
    client = serve(tags=["pages"])
    client.get("/p")
    with Cache([MemoryTier(), DiskTier(disk_dir)], clock=clock) as other:  # another worker's cache
        elsewhere = serve(cache=other, tags=["pages"])
        assert elsewhere.get("/p").body == b"/p? #1"
        other.invalidate(tags=["pages"])
        assert client.get("/p").body == b"/p? #2"
        assert elsewhere.get("/p").body == b"/p? #2"


def test_a_disabled_cache_passes_everything_through(serve: Serve, tiered_cache: Cache) -> None:
    tiered_cache.enabled = False
    client = serve()
    client.get("/p")
    assert client.get("/p").body == b"/p? #2"


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"statuses": (206,)}, "partial"),
        ({"statuses": (304,)}, "not-modified"),
        ({"statuses": ()}, "empty"),
        ({"statuses": (99,)}, "200-599"),
        ({"ttl": -1}, "ttl"),
        ({"tags": "pages"}, "tags=\\['pages'\\]"),
        ({"allow_cookies": "theme"}, "allow_cookies=\\('theme',\\)"),
        ({"respect_request_cache_control": "yes"}, "True or False"),
        ({"max_body_size": -1}, "bytes"),
        ({"cache": object()}, "cacheplug.Cache"),
    ],
)
def test_bad_options_raise_a_clear_configuration_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ResponseCache(**options)


def test_a_tags_callable_returning_a_string_is_a_clear_error(serve: Serve) -> None:
    client = serve(tags=lambda request: "pages")
    with pytest.raises(ConfigurationError, match="returned 'pages'"):
        client.get("/p")
    assert inv.ACTIVE == []


def test_cache_control_parsing() -> None:
    assert parse_cache_control('Max-Age=5, private="a, b", no-cache') == {
        "max-age": "5",
        "private": "a, b",
        "no-cache": None,
    }
    assert parse_cache_control("max-age=5, max-age=6")["max-age"] != "5"
    assert parse_cache_control(None) == {}


def test_keys_are_one_to_one() -> None:
    policy = ResponseCache()
    key = policy.key
    assert key(Request("GET", "http", "h", "/a b")) != key(Request("GET", "http", "h", "/a%20b"))
    assert key(Request("GET", "http", "h", "/a", "x=%20")) != key(Request("GET", "http", "h", "/a", "x= "))
    assert key(Request("GET", "http", "h", "/a")) == key(Request("HEAD", "http", "h", "/a"))
    assert key(Request("GET", "https", "h", "/a")) != key(Request("GET", "http", "h", "/a"))
    long = key(Request("GET", "http", "h", "/" + "x" * 1000))
    assert long is not None and len(long) < 100
