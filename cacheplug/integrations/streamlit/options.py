"""The options of ``cache_data``, checked and read the way Streamlit 1.67 reads them.

``ttl`` as seconds, a ``timedelta`` or a pandas ``Timedelta`` string; ``max_size`` as bytes
or a string with a unit (powers of 1024); ``hash_funcs`` by type or ``module.QualName``.
Options Streamlit has and cacheplug does not (``scope="session"``,
``refresh_mode="background"``) raise :class:`~cacheplug.ConfigurationError`; ``persist`` is
accepted and ignored. Every bad value raises there, at decoration time, saying what to give.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib
import inspect
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from ...cache import Cache
from ...errors import ConfigurationError
from ...keys import fingerprint
from .hashing import DEFAULT_HASH_FUNCS

__all__ = ["ALL_TAG", "Options", "byte_size", "check_display", "check_unsupported", "ttl_seconds"]

ALL_TAG = "cacheplug.streamlit"
"""The tag every ``cache_data`` entry carries: ``cache_data.clear()`` invalidates it."""


class Options:
    """The checked options of one ``cache_data`` decoration (what changes what is stored)."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        ttl: Any,
        max_entries: Any,
        max_size: Any,
        hash_funcs: Any,
        tags: Any,
        cache: Any,
    ) -> None:
        try:
            self.signature = inspect.signature(func)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"cache_data cannot read the signature of {func!r}: {exc}") from None
        parameters = self.signature.parameters.values()
        self.private = frozenset(p.name for p in parameters if p.name.startswith("_"))
        # When every parameter is plain (no *args, **kwargs or keyword-only), a call passing
        # them all by position binds them in this order.
        plain = all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)
        self.positional: tuple[str, ...] | None = tuple(p.name for p in parameters) if plain else None
        self.ttl = ttl_seconds(ttl)
        if max_entries is not None and (
            isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1
        ):
            raise ConfigurationError(
                f"cache_data(max_entries=...) is how many entries to keep, an int >= 1 or None, "
                f"got {max_entries!r}"
            )
        self.max_entries: int | None = max_entries
        self.max_size = byte_size(max_size)
        self.bounded = self.max_entries is not None or self.max_size is not None
        self.user_hash_funcs = check_hash_funcs(hash_funcs)
        self.hash_funcs = {**DEFAULT_HASH_FUNCS, **self.user_hash_funcs}
        self.user_tags = tags
        self.tags = with_all_tag(tags)
        if cache is not None and not isinstance(cache, Cache):
            raise ConfigurationError(
                f"cache_data(cache=...) takes a cacheplug.Cache (or None), got {cache!r}"
            )
        self.cache: Cache | None = cache
        self.namespace = namespace_of(func)

    def identity(self, func: Callable[..., Any]) -> tuple[Any, ...]:
        """What a redefinition must share with a kept definition to be the same function."""
        hashers = tuple(sorted((name, code_of(f)) for name, f in self.user_hash_funcs.items()))
        given = self.user_tags
        tags = self.tags if not callable(given) else ("<callable>", code_of(given))
        return (
            "cache_data",
            self.namespace,
            func.__module__,
            func.__qualname__,
            fingerprint(func),
            inspect.iscoroutinefunction(func),
            self.ttl,
            self.max_entries,
            self.max_size,
            tags,
            hashers,
            id(self.cache) if self.cache is not None else None,
        )


def code_of(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__qualname__', repr(func))}@{fingerprint(func)}"


def namespace_of(func: Callable[..., Any]) -> str:
    """``streamlit``, plus a digest of the script's path for a script's own functions.

    Every Streamlit script runs as ``__main__``: two apps on one host defining the same
    function with the same code must not share entries (their globals may differ).
    """
    if func.__module__ != "__main__":
        return "streamlit"
    path = getattr(getattr(func, "__code__", None), "co_filename", "")
    return "streamlit:" + hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def ttl_seconds(ttl: Any) -> float | None:
    """Streamlit's ``ttl``: ``None``, seconds, a ``timedelta`` or a pandas Timedelta string."""
    if ttl is None:
        return None
    if isinstance(ttl, str):
        pandas: Any = importlib.import_module("pandas")  # Streamlit's own parser, and its dependency
        try:
            seconds = float(pandas.Timedelta(ttl).total_seconds())
        except ValueError as exc:
            raise ConfigurationError(
                f"cache_data(ttl={ttl!r}) is not a duration Streamlit accepts ({exc}): give seconds, a "
                f"datetime.timedelta or a string such as '1h', '30m', '1d' or '1h23s'"
            ) from None
        if math.isnan(seconds) or seconds < 0:
            raise ConfigurationError(f"cache_data(ttl={ttl!r}) must be a duration >= 0, e.g. '1h'")
        return seconds
    if isinstance(ttl, datetime.timedelta):
        ttl = ttl.total_seconds()
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or math.isnan(ttl) or ttl < 0:
        raise ConfigurationError(
            f"cache_data(ttl=...) must be None, seconds >= 0, a datetime.timedelta or a string such "
            f"as '1h', got {ttl!r}"
        )
    return float(ttl)


_BYTE_SIZE = re.compile(
    r"(?P<value>(?:\d+(?:\.\d*)?|\.\d+)) ?(?P<unit>b|(?:k|ki)b|(?:m|mi)b|(?:g|gi)b|(?:t|ti)b)",
    re.ASCII | re.IGNORECASE,
)
_UNITS = {"b": 0, "kb": 1, "kib": 1, "mb": 2, "mib": 2, "gb": 3, "gib": 3, "tb": 4, "tib": 4}


def byte_size(value: Any) -> int | None:
    """Streamlit's ``max_size``: bytes, or a string with a unit (powers of 1024, rounded down)."""
    if value is None:
        return None
    size = -1
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str):
        match = _BYTE_SIZE.fullmatch(value)
        if match is not None and len(match["value"]) <= 100:
            whole, _, fraction = match["value"].partition(".")
            scale = 1024 ** _UNITS[match["unit"].lower()]
            size = int(f"{whole or '0'}{fraction}") * scale // 10 ** len(fraction)
    if size <= 0:
        raise ConfigurationError(
            f"cache_data(max_size=...) is a positive byte size: an int number of bytes or a string "
            f"with a unit such as '500MB', '1.5GB' or '200KiB', got {value!r}"
        )
    return size


def check_hash_funcs(hash_funcs: Any) -> dict[str, Callable[[Any], Any]]:
    if hash_funcs is None:
        return {}
    if not isinstance(hash_funcs, Mapping):
        raise ConfigurationError(
            f"cache_data(hash_funcs=...) maps types (or their 'module.QualName') to functions, "
            f"got {hash_funcs!r}"
        )
    checked: dict[str, Callable[[Any], Any]] = {}
    for kind, func in hash_funcs.items():
        if isinstance(kind, type):
            kind = f"{kind.__module__}.{kind.__qualname__}"
        if not isinstance(kind, str) or not callable(func):
            raise ConfigurationError(
                f"cache_data(hash_funcs=...) maps a type or its 'module.QualName' to a function, got "
                f"{kind!r}: {func!r}"
            )
        checked[kind] = func
    return checked


def with_all_tag(tags: Any) -> Any:
    if callable(tags) and not isinstance(tags, str):
        user_tags = tags

        def tagged(*args: Any, **kwargs: Any) -> list[str]:
            made = user_tags(*args, **kwargs)
            return [*([made] if isinstance(made, str) else made), ALL_TAG]

        return tagged
    if isinstance(tags, str):
        raise ConfigurationError(f"cache_data(tags=...) takes a list of templates: write tags=[{tags!r}]")
    return (*tags, ALL_TAG)


def check_display(show_spinner: Any, show_time: Any) -> None:
    if not isinstance(show_spinner, (bool, str)):
        raise ConfigurationError(
            f"cache_data(show_spinner=...) is True, False or the spinner's text, got {show_spinner!r}"
        )
    if not isinstance(show_time, bool):
        raise ConfigurationError(f"cache_data(show_time=...) is True or False, got {show_time!r}")


def check_unsupported(persist: Any, scope: Any, refresh_mode: Any) -> None:
    if persist not in (None, False, True, "disk"):
        raise ConfigurationError(f"cache_data(persist=...) is 'disk', True, False or None, got {persist!r}")
    if scope != "global":
        raise ConfigurationError(
            f"cache_data(scope={scope!r}) is not supported: cacheplug's entries are shared by every "
            f"session and every process of the host (scope='global'); for data private to a session "
            f"use st.cache_data(scope='session') or st.session_state"
        )
    if refresh_mode != "foreground":
        raise ConfigurationError(
            f"cache_data(refresh_mode={refresh_mode!r}) is not supported: an expired entry is "
            f"recomputed by the next call (refresh_mode='foreground')"
        )
