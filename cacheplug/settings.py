"""The ``CACHEPLUG_*`` variables, parsed and validated into one frozen :class:`Settings`.

Arguments first, then the environment, then defaults. An invalid value raises
:class:`~cacheplug.errors.ConfigurationError` naming the variable; an unknown
``CACHEPLUG_`` variable (a typo) warns once. This module only reads and checks: the tiers
and the default cache built from the settings live in ``cacheplug.tiers.defaults`` and
``cacheplug.defaults``.

=========================  ==========================================================
``CACHEPLUG_DEFAULT_TTL``  seconds for calls without a ttl (default: never expire)
``CACHEPLUG_MAX_ENTRIES``  memory tier bound (default 10000)
``CACHEPLUG_DIR``          disk tier directory (default: per project, see below)
``CACHEPLUG_TIERS``        ``memory,disk`` (default) or ``memory`` or ``disk``
``CACHEPLUG_ENABLED``      ``false`` turns every ``@cached`` into a pass-through
``CACHEPLUG_SECRET``       secret(s) signing shared-tier entries, comma-separated: the
                           first signs, all verify (rotation)
``CACHEPLUG_OTEL``         ``true``: the default cache reports to OpenTelemetry
                           (``Cache(tracing=True)``, global providers)
``CACHEPLUG_LEARN``        ``true``: caches built without ``learn=`` learn which entries
                           are hot and refresh them ahead of expiry
``CACHEPLUG_WARMING``      ``false``: ``start_warming()`` starts no scheduler (default
                           ``true``)
=========================  ==========================================================

The default directory is ``<user cache dir>/cacheplug/<project>-<hash>``, where the
project is the current working directory: two projects never share entries by accident,
and the workers of one service (started from one folder) share one disk tier.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from . import state
from .errors import ConfigurationError
from .private_files import default_directory, directory_problem

__all__ = [
    "KNOWN_VARIABLES",
    "Settings",
    "check_environment",
    "default_directory",
    "learn_from_env",
    "settings_from_env",
    "warming_from_env",
]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
KNOWN_VARIABLES = (
    "CACHEPLUG_DEFAULT_TTL",
    "CACHEPLUG_MAX_ENTRIES",
    "CACHEPLUG_DIR",
    "CACHEPLUG_TIERS",
    "CACHEPLUG_ENABLED",
    "CACHEPLUG_SECRET",
    "CACHEPLUG_OTEL",
    "CACHEPLUG_LEARN",
    "CACHEPLUG_WARMING",
    "CACHEPLUG_LATENCY_TARGET_MS",  # read by the monitor's LatencyAbove rule (cacheplug.observe.rules)
)
# Read by cacheplug's own test suite and benchmarks, never by the library: not typos.
_TEST_VARIABLES = ("CACHEPLUG_REQUIRE_SERVICES", "CACHEPLUG_MODEL_EXAMPLES", "CACHEPLUG_STRESS_SECONDS")
_TEST_PREFIXES = ("CACHEPLUG_TEST_", "CACHEPLUG_BENCH_")


@dataclass(frozen=True)
class Settings:
    """What the arguments and the environment say, validated (see the module's table)."""

    default_ttl: float | timedelta | None
    max_entries: int
    directory: str
    # True when no directory was given anywhere (the per-project default): an unsafe one
    # falls back to memory instead of raising.
    default_directory: bool
    tiers: tuple[str, ...]
    enabled: bool
    secret: tuple[str, ...] | None
    otel: bool = False
    learn: bool = False
    warming: bool = True


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
    if current == state.CHECKED_ENVIRONMENT[0]:
        return
    settings_from_env()
    for name in sorted(os.fsdecode(k) for k, _ in current):
        if name in KNOWN_VARIABLES or name in _TEST_VARIABLES or name.startswith(_TEST_PREFIXES):
            continue
        if name not in state.WARNED:
            state.WARNED.add(name)
            warnings.warn(
                f"cacheplug ignores the unknown variable {name}; the known ones are "
                f"{', '.join(KNOWN_VARIABLES)}",
                RuntimeWarning,
                stacklevel=stacklevel,
            )
    state.CHECKED_ENVIRONMENT[0] = current


def _parse_tiers(raw: str | None, source: str) -> tuple[str, ...]:
    if raw is None:
        return ("memory", "disk")
    names = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
    if not names or any(n not in ("memory", "disk") for n in names) or len(set(names)) != len(names):
        raise ConfigurationError(f"{source}={raw!r}: use 'memory,disk', 'memory' or 'disk'")
    if names == ("disk", "memory"):
        raise ConfigurationError(f"{source}={raw!r}: the memory tier must come first ('memory,disk')")
    return names


def _env_flag(name: str, default: bool) -> bool:
    raw = _env(name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigurationError(f"{name}={raw!r}: use true or false (or 1/0, yes/no, on/off), or unset it")


def learn_from_env() -> bool:
    """``CACHEPLUG_LEARN``: whether a cache built without ``learn=`` learns (default ``False``)."""
    return _env_flag("CACHEPLUG_LEARN", False)


def warming_from_env() -> bool:
    """``CACHEPLUG_WARMING``: whether ``start_warming()`` may start a scheduler (default ``True``)."""
    return _env_flag("CACHEPLUG_WARMING", True)


def settings_from_env(
    *,
    default_ttl: float | timedelta | None = None,
    max_entries: int | None = None,
    directory: str | None = None,
    tiers: str | None = None,
    enabled: bool | None = None,
    secret: Any = None,
) -> Settings:
    """The given settings over the ``CACHEPLUG_*`` variables over the defaults, validated.

    ``None`` means "not given". ``tiers`` is ``"memory,disk"``, ``"memory"`` or ``"disk"``.
    """
    # Read in the order of the module's table: the first bad variable is the one named.
    ttl = default_ttl if default_ttl is not None else _env_number("CACHEPLUG_DEFAULT_TTL", float, 0)
    if max_entries is None:
        max_entries = _env_number("CACHEPLUG_MAX_ENTRIES", int, 1) or 10_000
    names = (
        _parse_tiers(tiers, "tiers")
        if tiers is not None
        else _parse_tiers(_env("CACHEPLUG_TIERS"), "CACHEPLUG_TIERS")
    )
    on = enabled if enabled is not None else _env_flag("CACHEPLUG_ENABLED", True)
    secrets = parse_secret(secret, "configure(secret=...)") if secret is not None else _env_secret()
    otel = _env_flag("CACHEPLUG_OTEL", False)
    learn, warming = learn_from_env(), warming_from_env()
    explicit_dir = _env("CACHEPLUG_DIR")
    if explicit_dir and not directory and secrets is None:
        problem = directory_problem(os.path.abspath(explicit_dir))
        if problem is not None:
            raise ConfigurationError(
                f"CACHEPLUG_DIR={explicit_dir!r} is unsafe for cached entries: {problem}. Anyone who "
                f"can write there could plant entries that run code in this process: point it at a "
                f"folder only you own (mode 0700), or set CACHEPLUG_SECRET to sign entries"
            )
    return Settings(
        default_ttl=ttl,
        max_entries=max_entries,
        directory=directory or default_directory(),
        default_directory=not directory and not explicit_dir,
        tiers=names,
        enabled=on,
        secret=secrets,
        otel=otel,
        learn=learn,
        warming=warming,
    )
