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
``CACHEPLUG_SECRET``       secret(s) signing shared-tier entries, comma-separated: the
                           first signs, all verify (rotation)
=========================  ==========================================================

Every variable is validated at the first decoration (again whenever the ``CACHEPLUG_*``
environment changed) and by ``configure()``: garbage raises there, naming the variable, not
on every call. An unknown ``CACHEPLUG_`` variable (a typo) warns once.

The default directory is ``<user cache dir>/cacheplug/<project>-<hash>``, where the
project is the current working directory: two projects never share entries by accident,
and the workers of one service (started from one folder) share one disk tier.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache import Cache

from .errors import ConfigurationError
from .private_files import default_directory, directory_problem

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
    "secret",
}
KNOWN_VARIABLES = (
    "CACHEPLUG_DEFAULT_TTL",
    "CACHEPLUG_MAX_ENTRIES",
    "CACHEPLUG_DIR",
    "CACHEPLUG_TIERS",
    "CACHEPLUG_ENABLED",
    "CACHEPLUG_SECRET",
)
# Read by cacheplug's own test suite and benchmarks, never by the library: not typos.
_TEST_VARIABLES = ("CACHEPLUG_REQUIRE_SERVICES", "CACHEPLUG_MODEL_EXAMPLES", "CACHEPLUG_STRESS_SECONDS")
_TEST_PREFIXES = ("CACHEPLUG_TEST_", "CACHEPLUG_BENCH_")
# The last CACHEPLUG_* environment found valid, and the unknown names already warned about.
_CHECKED: list[Any] = [None]
log = logging.getLogger("cacheplug")
_WARNED: set[str] = set()


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
    if not math.isfinite(value) or value < minimum:
        raise ConfigurationError(
            f"{name}={raw!r} must be a finite number >= {minimum}; unset it or give e.g. {name}=300"
        )
    return value


def parse_secret(value: Any, source: str) -> tuple[str, ...] | None:
    """Secrets as a tuple (first signs, all verify) from a str (comma-separated) or a sequence."""
    if value is None:
        return None
    parts: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    if isinstance(value, (bytes, bytearray)) or not isinstance(parts, Iterable):
        raise ConfigurationError(f"{source} must be a str or a sequence of str, got {type(value).__name__}")
    out = tuple(parts)
    if not out or any(not isinstance(p, str) or not p.strip() for p in out):
        raise ConfigurationError(
            f"{source}={value!r}: give one or more non-empty secrets, comma-separated "
            f"('new-secret,old-secret': the first signs, all verify), or unset it"
        )
    return tuple(p.strip() for p in out)


def _env_secret() -> tuple[str, ...] | None:
    raw = os.environ.get("CACHEPLUG_SECRET")
    return None if raw is None else parse_secret(raw, "CACHEPLUG_SECRET")


def _our_variables() -> tuple[tuple[Any, Any], ...]:
    """The ``CACHEPLUG_*`` variables, raw. ``os.environ`` decodes every variable on
    iteration; its underlying mapping (``_data``, stable since Python 3.2) is read instead
    when present, so that a decoration costs a microsecond, not tens."""
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict):
        return tuple(sorted((k, v) for k, v in data.items() if k[:10] in (b"CACHEPLUG_", "CACHEPLUG_")))
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("CACHEPLUG_")))


def check_environment(stacklevel: int = 3) -> None:
    """Validate every ``CACHEPLUG_*`` variable (each decoration calls this; cheap when unchanged).

    Raises :class:`ConfigurationError` naming the variable; warns once per unknown name
    (a ``RuntimeWarning`` pointing ``stacklevel`` frames up: at the user's code).
    """
    current = _our_variables()
    if current == _CHECKED[0]:
        return
    settings_from_env()
    for name in sorted(os.fsdecode(k) for k, _ in current):
        if name in KNOWN_VARIABLES or name in _TEST_VARIABLES or name.startswith(_TEST_PREFIXES):
            continue
        if name not in _WARNED:
            _WARNED.add(name)
            warnings.warn(
                f"cacheplug ignores the unknown variable {name}; the known ones are "
                f"{', '.join(KNOWN_VARIABLES)}",
                RuntimeWarning,
                stacklevel=stacklevel,
            )
    _CHECKED[0] = current


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
    # The per-project default (no directory given anywhere): an unsafe one falls back to memory.
    out["default_directory"] = not given.get("directory") and not _env("CACHEPLUG_DIR")
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
    secret = given.get("secret")
    out["secret"] = parse_secret(secret, "configure(secret=...)") if secret is not None else _env_secret()
    explicit_dir = _env("CACHEPLUG_DIR")
    if explicit_dir and not given.get("directory") and out["secret"] is None:
        problem = directory_problem(os.path.abspath(explicit_dir))
        if problem is not None:
            raise ConfigurationError(
                f"CACHEPLUG_DIR={explicit_dir!r} is unsafe for cached entries: {problem}. Anyone who "
                f"can write there could plant entries that run code in this process: point it at a "
                f"folder only you own (mode 0700), or set CACHEPLUG_SECRET to sign entries"
            )
    return out


def _safe_default(directory: str) -> bool:
    """Is the per-project default directory (and the folder holding it) safe to use?"""
    problem = directory_problem(directory) or directory_problem(os.path.dirname(directory))
    if problem is None:
        return True
    if directory not in _WARNED:
        _WARNED.add(directory)
        log.warning(
            "cacheplug: the default cache directory is unsafe (%s); the default cache stays in "
            "memory. Set CACHEPLUG_DIR to a folder only you own, or CACHEPLUG_SECRET to sign entries",
            problem,
        )
    return False


def build_tiers(settings: dict[str, Any]) -> list[Any]:
    """The tiers that ``settings`` (from :func:`settings_from_env`) describe."""
    from .tiers import DiskTier, MemoryTier

    names = settings["tiers"]
    if not isinstance(names, tuple):
        return list(names)  # already tier objects
    directory, secret = settings["directory"], settings["secret"]
    tiers: list[Any] = []
    for name in names:
        if name == "memory":
            tiers.append(MemoryTier(max_entries=settings["max_entries"]))
        elif secret is not None or not settings["default_directory"] or _safe_default(directory):
            tiers.append(DiskTier(directory, secret=secret))
    return tiers or [MemoryTier(max_entries=settings["max_entries"])]


def default_tiers(secret: Any = None) -> list[Any]:
    """The tiers ``Cache()`` gets when none are given (from the environment)."""
    return build_tiers(settings_from_env(secret=secret))


def _build(**settings: Any) -> Cache:
    from .cache import Cache

    s = settings_from_env(**settings)
    cache = Cache(
        build_tiers(s),
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
    ``namespace``, ``clock``, ``middleware``, ``secret`` (a str, comma-separated, or a
    sequence of str). Every ``CACHEPLUG_*`` variable is validated here, also those the given
    settings override. Returns the new default cache. The previous
    default is closed if cacheplug built it.
    """
    from .cache import Cache

    if cache is not None and settings:
        raise ConfigurationError("configure() takes either a cache or settings, not both")
    if cache is not None and not isinstance(cache, Cache):
        raise ConfigurationError(f"configure(cache=...) needs a cacheplug.Cache, got {cache!r}")
    check_environment()
    new = cache if cache is not None else _build(**settings)
    with _LOCK:
        old, CURRENT[0] = CURRENT[0], new
    if old is not None and old is not new:
        from .cache.lifecycle import notify_unbind

        notify_unbind(old)
        if getattr(old, "_owns_tiers", False):
            old.close()
    return new
