"""``settings.CACHEPLUG``: the project's cacheplug settings, checked and applied with ``configure()``.

``CACHEPLUG = {"directory": ..., "namespace": ..., "default_ttl": ..., "enabled": ...,
"max_entries": ..., "tiers": ..., "secret": ...}`` maps key for key onto
:func:`cacheplug.configure` (and, like it, over the ``CACHEPLUG_*`` variables): every key
is optional, and without a ``CACHEPLUG`` setting the default cache stays as the
environment describes it. The app applies it when Django starts (``AppConfig.ready``) and
again whenever the setting changes (``override_settings`` in tests). A bad key or value
raises :class:`SettingsError`, which is both Django's ``ImproperlyConfigured`` and
cacheplug's ``ConfigurationError``, naming the key.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ...cache import Cache
from ...defaults import configure
from ...errors import ConfigurationError

__all__ = ["KEYS", "SettingsError", "apply_settings", "project_settings"]

KEYS = ("directory", "namespace", "default_ttl", "enabled", "max_entries", "tiers", "secret")
_TIERS = ("memory,disk", "memory", "disk")


class SettingsError(ConfigurationError, ImproperlyConfigured):  # type: ignore[misc]  # no Django hints
    """``settings.CACHEPLUG``, a cache backend's ``OPTIONS`` or a model's entity is invalid."""


def _fail(key: str, problem: str) -> SettingsError:
    return SettingsError(f"settings.CACHEPLUG[{key!r}] {problem}")


def _seconds(key: str, value: Any) -> float | timedelta | None:
    if value is None or (isinstance(value, timedelta) and value.total_seconds() >= 0):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise _fail(key, f"must be None (never expire), seconds >= 0 or a timedelta, not {value!r}")
    return float(value)


def _checked(key: str, value: Any) -> Any:
    """``value`` as ``configure()`` takes it, or :class:`SettingsError` saying what to give."""
    if key == "directory":
        if not isinstance(value, str | os.PathLike) or not os.fspath(value):
            raise _fail(key, f"must be a folder path (a str or a Path), not {value!r}")
        return os.fspath(value)
    if key == "namespace":
        if not isinstance(value, str) or "|" in value or "\x00" in value:
            raise _fail(key, f"must be a str without '|' or NUL, not {value!r}")
        return value
    if key == "default_ttl":
        return _seconds(key, value)
    if key == "enabled":
        if not isinstance(value, bool):
            raise _fail(key, f"must be True or False, not {value!r}")
        return value
    if key == "max_entries":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _fail(key, f"must be an int >= 1 (entries in the memory tier), not {value!r}")
        return value
    if key == "tiers":
        normal = value.replace(" ", "").lower() if isinstance(value, str) else None
        if normal not in _TIERS:
            raise _fail(key, f"must be one of {', '.join(map(repr, _TIERS))}, not {value!r}")
        return normal
    # secret
    parts = [value] if isinstance(value, str) else value
    if not isinstance(parts, list | tuple) or not parts or not all(isinstance(p, str) and p for p in parts):
        raise _fail(key, "must be a non-empty str or a list of them (the first signs, all verify)")
    return value


def project_settings() -> dict[str, Any] | None:
    """``settings.CACHEPLUG`` checked, as ``configure()`` keywords; ``None`` when it is not set."""
    raw = getattr(settings, "CACHEPLUG", None)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SettingsError(f"settings.CACHEPLUG must be a dict, e.g. {{'directory': ...}}, not {raw!r}")
    out = {}
    for key, value in raw.items():
        if key not in KEYS:
            lowered = str(key).lower()
            hint = f" (did you mean {lowered!r}?)" if lowered in KEYS else ""
            raise SettingsError(
                f"settings.CACHEPLUG has an unknown key {key!r}{hint}; the keys are {', '.join(KEYS)}"
            )
        out[key] = _checked(key, value)
    return out


def apply_settings() -> Cache | None:
    """Make the default cache the one ``settings.CACHEPLUG`` describes; ``None`` if it is not set."""
    given = project_settings()
    if given is None:
        return None
    try:
        cache: Cache = configure(**given)
    except ConfigurationError as exc:
        raise SettingsError(f"settings.CACHEPLUG: {exc}") from exc
    return cache
