"""The default cache: built from the settings on first use, replaceable with ``configure()``.

The one holder of the default cache is ``cacheplug.state.DEFAULT_CACHE``. Decorated
functions without ``cache=`` read it on every call, so swapping the default is seen at
once. The settings (``CACHEPLUG_*`` over defaults) are read when the default cache is built
(first use, or ``configure()``): an invalid value raises
:class:`~cacheplug.errors.ConfigurationError` naming the variable then, never in the middle
of a call.
"""

from __future__ import annotations

from typing import Any

from . import state
from .cache import Cache
from .cache.lifecycle import notify_unbind
from .errors import ConfigurationError
from .settings import check_environment, settings_from_env
from .tiers.defaults import build_tiers

__all__ = ["configure", "get_cache"]

# Besides the settings read from the environment (cacheplug.settings), configure() takes:
_SETTINGS = {
    "default_ttl",
    "max_entries",
    "directory",
    "tiers",
    "enabled",
    "namespace",
    "clock",
    "middleware",
    "secret",
    "learn",
}


def _build(**given: Any) -> Cache:
    unknown = set(given) - _SETTINGS
    if unknown:
        raise ConfigurationError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(_SETTINGS)}")
    tiers = given.get("tiers")
    settings = settings_from_env(
        default_ttl=given.get("default_ttl"),
        max_entries=given.get("max_entries"),
        directory=given.get("directory"),
        tiers=tiers if isinstance(tiers, str) else None,
        enabled=given.get("enabled"),
        secret=given.get("secret"),
    )
    cache = Cache(
        build_tiers(settings) if tiers is None or isinstance(tiers, str) else list(tiers),
        default_ttl=settings.default_ttl,
        namespace=given.get("namespace", ""),
        clock=given.get("clock"),
        middleware=given.get("middleware", ()),
        enabled=settings.enabled,
        tracing=settings.otel,
        learn=given.get("learn"),  # None: CACHEPLUG_LEARN
    )
    cache._owns_tiers = True
    return cache


def get_cache() -> Cache:
    """The default :class:`~cacheplug.Cache`, built from the environment on first use."""
    cache: Cache = state.default_cache(_build)
    return cache


def configure(cache: Any = None, **settings: Any) -> Any:
    """Replace the default cache: with ``cache``, or one built from ``settings`` + environment.

    Settings: ``default_ttl``, ``max_entries``, ``directory``, ``tiers``
    (``"memory,disk"``, ``"memory"``, ``"disk"`` or a list of tier objects), ``enabled``,
    ``namespace``, ``clock``, ``middleware``, ``secret`` (a str, comma-separated, or a
    sequence of str), ``learn`` (as ``Cache(learn=...)``). Every ``CACHEPLUG_*`` variable is
    validated here, also those the given settings override. Returns the new default cache.
    The previous default is closed if cacheplug built it (unless the pytest plugin will put it
    back after the test: then it is only forgotten).
    """
    if cache is not None and settings:
        raise ConfigurationError("configure() takes either a cache or settings, not both")
    if cache is not None and not isinstance(cache, Cache):
        raise ConfigurationError(f"configure(cache=...) needs a cacheplug.Cache, got {cache!r}")
    check_environment()
    new = cache if cache is not None else _build(**settings)
    old = state.swap_default(new, built=cache is None)
    if old is not None and old is not new:
        notify_unbind(old)
        if getattr(old, "_owns_tiers", False) and not state.pinned(old):
            old.close()  # a pinned one (a test's snapshot puts it back) is only forgotten
    return new
