"""Configuration and the default cache: arguments first, then ``CACHEPLUG_*``, then defaults.

Variables are read when the default cache is built (first use, or ``configure()``); an
invalid value raises :class:`~cacheplug.errors.ConfigurationError` naming the variable
then, never in the middle of a call. The default cache lives in one replaceable holder, so
tests and applications can swap it.

=========================  ==========================================================
``CACHEPLUG_DEFAULT_TTL``  seconds for calls without a ttl (default: never expire)
``CACHEPLUG_MAX_ENTRIES``  memory tier bound (default 10000)
``CACHEPLUG_DIR``          disk tier directory (default: per project, see below)
``CACHEPLUG_TIERS``        ``memory,disk`` (default) or ``memory`` or ``disk``
``CACHEPLUG_ENABLED``      ``false`` turns every ``@cached`` into a pass-through
=========================  ==========================================================

The default directory is ``<user cache dir>/cacheplug/<project>-<hash>``, where the
project is the current working directory: two projects never share entries by accident,
and the workers of one service (started from one folder) share one disk tier.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .coordinator import Cache

from .errors import ConfigurationError

__all__ = ["configure", "default_directory", "get_cache"]

# The one holder of the default cache. Decorated functions compare against it on every
# call, so swapping the default is seen at once.
CURRENT: list[Any] = [None]
_LOCK = threading.Lock()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_SETTINGS = {
    "default_ttl",
    "max_entries",
    "directory",
    "tiers",
    "enabled",
    "namespace",
    "clock",
    "middleware",
}


def _user_cache_root() -> str:
    if sys.platform == "win32":
        return os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Caches")
    return os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")


def default_directory() -> str:
    """``CACHEPLUG_DIR``, or this project's folder under the per-user cache directory."""
    explicit = os.environ.get("CACHEPLUG_DIR")
    if explicit:
        return os.path.abspath(explicit)
    project = os.path.realpath(os.getcwd())
    digest = hashlib.sha256(project.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    name = os.path.basename(project) or "root"
    return os.path.join(_user_cache_root(), "cacheplug", f"{name}-{digest}")


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value.strip() if value is not None and value.strip() else None


def _env_number(name: str, kind: type, minimum: float) -> Any:
    raw = _env(name)
    if raw is None:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(
            f"{name}={raw!r} is not {'an integer' if kind is int else 'a number'}; "
            f"unset it or give e.g. {name}=300"
        ) from None
    if value < minimum:
        raise ConfigurationError(f"{name}={raw!r} must be >= {minimum}")
    return value


def _env_tiers(raw: str | None, source: str) -> tuple[str, ...]:
    if raw is None:
        return ("memory", "disk")
    names = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
    if not names or any(n not in ("memory", "disk") for n in names) or len(set(names)) != len(names):
        raise ConfigurationError(f"{source}={raw!r}: use 'memory,disk', 'memory' or 'disk'")
    if names == ("disk", "memory"):
        raise ConfigurationError(f"{source}={raw!r}: the memory tier must come first ('memory,disk')")
    return names


def _env_enabled() -> bool:
    raw = _env("CACHEPLUG_ENABLED")
    if raw is None:
        return True
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigurationError(f"CACHEPLUG_ENABLED={raw!r}: use true or false")


def settings_from_env(**given: Any) -> dict[str, Any]:
    """Merge explicit settings over the environment over the defaults."""
    unknown = set(given) - _SETTINGS
    if unknown:
        raise ConfigurationError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(_SETTINGS)}")
    out: dict[str, Any] = {}
    ttl = given.get("default_ttl")
    out["default_ttl"] = ttl if ttl is not None else _env_number("CACHEPLUG_DEFAULT_TTL", float, 0)
    entries = given.get("max_entries")
    out["max_entries"] = (
        entries if entries is not None else (_env_number("CACHEPLUG_MAX_ENTRIES", int, 1) or 10_000)
    )
    out["directory"] = given.get("directory") or default_directory()
    tiers = given.get("tiers")
    if isinstance(tiers, str):
        out["tiers"] = _env_tiers(tiers, "tiers")
    elif tiers is not None:
        out["tiers"] = tiers
    else:
        out["tiers"] = _env_tiers(_env("CACHEPLUG_TIERS"), "CACHEPLUG_TIERS")
    enabled = given.get("enabled")
    out["enabled"] = enabled if enabled is not None else _env_enabled()
    out["namespace"] = given.get("namespace", "")
    out["clock"] = given.get("clock")
    out["middleware"] = given.get("middleware", ())
    return out


def build_tiers(names: Any, max_entries: int, directory: str) -> list[Any]:
    from .tiers import DiskTier, MemoryTier

    if not isinstance(names, tuple):
        return list(names)  # already tier objects
    tiers: list[Any] = []
    for name in names:
        tiers.append(MemoryTier(max_entries=max_entries) if name == "memory" else DiskTier(directory))
    return tiers


def default_tiers() -> list[Any]:
    """The tiers ``Cache()`` gets when none are given (from the environment)."""
    s = settings_from_env()
    return build_tiers(s["tiers"], s["max_entries"], s["directory"])


def _build(**settings: Any) -> Cache:
    from .coordinator import Cache

    s = settings_from_env(**settings)
    cache = Cache(
        build_tiers(s["tiers"], s["max_entries"], s["directory"]),
        default_ttl=s["default_ttl"],
        namespace=s["namespace"],
        clock=s["clock"],
        middleware=s["middleware"],
        enabled=s["enabled"],
    )
    cache._owns_tiers = True
    return cache


def get_cache() -> Cache:
    """The default :class:`~cacheplug.Cache`, built from the environment on first use."""
    cache: Cache | None = CURRENT[0]
    if cache is None:
        with _LOCK:
            cache = CURRENT[0]
            if cache is None:
                cache = CURRENT[0] = _build()
    assert cache is not None
    return cache


def configure(cache: Any = None, **settings: Any) -> Any:
    """Replace the default cache: with ``cache``, or one built from ``settings`` + environment.

    Settings: ``default_ttl``, ``max_entries``, ``directory``, ``tiers``
    (``"memory,disk"``, ``"memory"``, ``"disk"`` or a list of tier objects), ``enabled``,
    ``namespace``, ``clock``, ``middleware``. Returns the new default cache. The previous
    default is closed if cacheplug built it.
    """
    from .coordinator import Cache

    if cache is not None and settings:
        raise ConfigurationError("configure() takes either a cache or settings, not both")
    if cache is not None and not isinstance(cache, Cache):
        raise ConfigurationError(f"configure(cache=...) needs a cacheplug.Cache, got {cache!r}")
    new = cache if cache is not None else _build(**settings)
    with _LOCK:
        old, CURRENT[0] = CURRENT[0], new
    if old is not None and old is not new:
        from .coordinator import notify_unbind

        notify_unbind(old)
        if getattr(old, "_owns_tiers", False):
            old.close()
    return new
