"""What Django builds on its cache API, on the backend: cache sessions, ``cache_page``."""

from __future__ import annotations

from django.conf import settings
from django.contrib.sessions.backends.cache import KEY_PREFIX, SessionStore
from django.core.cache import cache
from django.test import Client

from .processes import workers


def _session_key(client: Client) -> str:
    return str(client.cookies[settings.SESSION_COOKIE_NAME].value)


def test_a_session_is_kept_in_the_cache_and_flushed_from_it() -> None:
    client = Client()
    assert client.get("/visit/").content == b"1"
    assert client.get("/visit/").content == b"2"
    key = _session_key(client)
    assert cache.get(KEY_PREFIX + key) == {"visits": 2}
    assert client.get("/logout/").content == b"bye"
    assert cache.get(KEY_PREFIX + key) is None
    assert client.get("/visit/").content == b"1"
    assert _session_key(client) != key


def test_session_keys_are_created_once_each() -> None:
    """``create()`` relies on ``add`` refusing a key that exists."""
    first = SessionStore()
    first["who"] = "first"
    first.create()
    clash = SessionStore(first.session_key)
    clash["who"] = "second"
    assert cache.add(KEY_PREFIX + str(first.session_key), {}) is False
    assert SessionStore(first.session_key).load() == {"who": "first"}
    assert clash.exists(first.session_key)


def test_a_session_written_by_one_worker_is_read_by_another_and_its_logout_seen() -> None:
    client = Client()
    client.get("/visit/")
    key = _session_key(client)
    with workers(1) as (other,):
        assert other.call("session", key) == {"visits": 1}
        client.get("/visit/")
        assert other.call("session", key) == {"visits": 2}
        client.get("/logout/")
        assert other.call("session", key) == {}


def test_cache_page_serves_the_stored_response_until_the_cache_is_cleared() -> None:
    client = Client()
    first = client.get("/rendered/").content
    assert client.get("/rendered/").content == first
    cache.clear()
    assert client.get("/rendered/").content != first
