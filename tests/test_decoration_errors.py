"""Configuration errors at decoration, not at call time; keying errors; copy=True fallback.

Issue 6, items 6 and 14: garbage in ``CACHEPLUG_*`` variables, unknown variables, tag
templates, ``functools.partial`` and callable objects fail (or warn) at decoration; any
error while keying an argument is an ``UnkeyableArgumentError`` chained to it; a value that
cannot be deep-copied under ``copy=True`` is returned uncached with one warning.
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

from cacheplug import (
    Cache,
    ConfigurationError,
    DiskTier,
    InvalidationRule,
    MemoryTier,
    UnkeyableArgumentError,
    cached,
    configure,
)
from cacheplug.settings import settings_from_env


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CACHEPLUG_DEFAULT_TTL", "nan"),
        ("CACHEPLUG_DEFAULT_TTL", "inf"),
        ("CACHEPLUG_DEFAULT_TTL", "-1"),
        ("CACHEPLUG_DEFAULT_TTL", "abc"),
        ("CACHEPLUG_MAX_ENTRIES", "lots"),
        ("CACHEPLUG_TIERS", "memory,redis"),
        ("CACHEPLUG_ENABLED", "maybe"),
        ("CACHEPLUG_SECRET", ""),
        ("CACHEPLUG_SECRET", "new,,old"),
    ],
)
def test_garbage_in_a_variable_fails_at_decoration_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):

        @cached
        def f(x: int) -> int:
            return x

    with pytest.raises(ConfigurationError, match=name):
        configure()


def test_unknown_variable_warns_once_naming_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHEPLUG_TTL", "30")
    with pytest.warns(RuntimeWarning, match="CACHEPLUG_TTL") as caught:
        cached(lambda x: x)
    message = str(caught[0].message)
    assert "CACHEPLUG_DEFAULT_TTL" in message and "CACHEPLUG_SECRET" in message
    assert caught[0].filename == __file__  # points at the decoration
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached(lambda x: x)
        monkeypatch.setenv("CACHEPLUG_DEFAULT_TTL", "5")  # another environment: still once
        cached(lambda x: x)


def test_the_test_suites_own_variables_do_not_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHEPLUG_TEST_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("CACHEPLUG_TEST_POSTGRES_URL", "postgresql://x")
    monkeypatch.setenv("CACHEPLUG_REQUIRE_SERVICES", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached(lambda x: x)


def test_secret_is_parsed_into_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_from_env().secret is None
    monkeypatch.setenv("CACHEPLUG_SECRET", "new-secret, old-secret")
    assert settings_from_env().secret == ("new-secret", "old-secret")
    assert settings_from_env(secret="only").secret == ("only",)
    assert settings_from_env(secret=["a", "b,c"]).secret == ("a", "b,c")
    for bad in ("", [], ["x", ""], [b"bytes"], 42):
        with pytest.raises(ConfigurationError, match="secret"):
            settings_from_env(secret=bad)


@pytest.mark.parametrize(
    "template", ["user:{user_id", "{user_id!z}", "{user_id:>5}", "{}", "{0}", "{user_id.}"]
)
def test_invalid_tag_templates_fail_at_decoration(template: str) -> None:
    with pytest.raises(ConfigurationError, match=r"\{name\.attr\}"):

        @cached(tags=[template])
        def f(user_id: int) -> int:
            return user_id


def test_allowed_template_forms_are_accepted_and_formatted() -> None:
    class Org:
        id = 7

    class User:
        org = Org()

    computed: list[int] = []
    with Cache([MemoryTier()]) as cache:

        @cached(cache=cache, key=lambda user, data: 0, tags=["u:{user.org.id}", "d:{data[k]}", "{{x}}"])
        def f(user: Any, data: Any) -> int:
            computed.append(1)
            return len(computed)

        user, data = User(), {"k": "v"}
        assert f(user, data) == f(user, data) == 1
        cache.invalidate(tags=["d:v"])
        assert f(user, data) == 2
        cache.invalidate(tags=["u:7"])
        assert f(user, data) == 3
        cache.invalidate(tags=["{x}"])
        assert f(user, data) == 4


@pytest.mark.parametrize("template", ["row:{id", "row:{id!r}", "row:{id:>3}", "row:{}", "row:{0}"])
def test_invalid_rule_templates_fail_at_construction(template: str) -> None:
    with pytest.raises(ConfigurationError, match=r"\{name\.attr\}"):
        InvalidationRule("user", tags=[template])
    assert InvalidationRule("user", tags=["dash:{id}"]).tags_for(3) == ["dash:3"]


def test_partial_and_callable_objects_are_refused_at_decoration() -> None:
    def area(w: int, h: int) -> int:
        return w * h

    with pytest.raises(ConfigurationError, match="underlying function"):
        cached(functools.partial(area, 2))

    class Scaler:
        def __call__(self, x: int) -> int:
            return x * 2

    with pytest.raises(ConfigurationError, match="__call__ method"):
        cached(Scaler())
    assert cached(len)("abc") == 3  # builtins are functions, not callable objects


class _Exploding:
    def __cache_key__(self) -> Any:
        raise RuntimeError("no key today")


@pytest.mark.parametrize("tiers", ["memory", "memory+disk"])
def test_any_error_while_keying_an_argument_is_an_unkeyable_argument_error(
    tiers: str, tmp_path: Path
) -> None:
    made: list[Any] = [MemoryTier()] if tiers == "memory" else [MemoryTier(), DiskTier(tmp_path / "d")]
    with Cache(made) as cache:

        @cached(cache=cache)
        def f(x: Any) -> int:
            return 1

        @cached(cache=cache)
        def g(x: Any, *, flag: bool = False) -> int:  # the general path
            return 1

        with pytest.raises(UnkeyableArgumentError, match="'x'") as raised:
            f(_Exploding())
        assert isinstance(raised.value.__cause__, RuntimeError)
        with pytest.raises(UnkeyableArgumentError, match="'x'") as raised:
            g(_Exploding())
        assert isinstance(raised.value.__cause__, RuntimeError)
        if tiers == "memory+disk":  # the string key is needed: int-to-str conversion limit
            with pytest.raises(UnkeyableArgumentError, match="'x'") as raised:
                f(10**5000)
            assert isinstance(raised.value.__cause__, ValueError)
            with pytest.raises(UnkeyableArgumentError, match="'x'") as raised:
                g(10**5000)
            assert isinstance(raised.value.__cause__, ValueError)
    for tier in made:
        tier.close()


def test_copy_true_with_an_uncopyable_value_returns_it_uncached_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    computed: list[int] = []
    with Cache([MemoryTier()]) as cache:

        @cached(cache=cache, copy=True)
        def lock_for(x: int) -> Any:
            computed.append(x)
            return threading.Lock()

        @cached(cache=cache, copy=True)
        def listing(x: int) -> list[int]:
            return [x]

        with caplog.at_level(logging.WARNING, logger="cacheplug"):
            first = lock_for(1)
            second = lock_for(1)
        assert first is not second and computed == [1, 1]  # returned, never stored
        assert lock_for.cache_info().currsize == 0
        warned = [r for r in caplog.records if "lock_for" in r.getMessage()]
        assert len(warned) == 1
        a, b = listing(1), listing(1)
        assert a == b == [1] and a is not b and listing.cache_info().hits == 1
