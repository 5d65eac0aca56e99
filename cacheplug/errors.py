"""The error tree of cacheplug: every error derives from :class:`CacheplugError`.

Where the meaning matches a built-in error the class also derives from it, so callers may
catch either (``UnkeyableArgumentError`` is a ``TypeError``; ``ConfigurationError`` is a
``ValueError``). Messages say what to do next.
"""

from __future__ import annotations

__all__ = [
    "CacheplugError",
    "ConfigurationError",
    "InvalidationError",
    "SerializationError",
    "TierUnavailable",
    "UnkeyableArgumentError",
]


class CacheplugError(Exception):
    """Root of every error raised by cacheplug."""


class ConfigurationError(CacheplugError, ValueError):
    """A decorator argument, a ``Cache`` argument or a ``CACHEPLUG_*`` variable is invalid.

    Raised at decoration time or when the cache is built, never in the middle of a call.
    """


class UnkeyableArgumentError(CacheplugError, TypeError):
    """An argument of a cached call cannot be turned into a stable key.

    The message names the parameter and the three ways out: give the type a
    ``__cache_key__()`` method, pass ``key=`` to ``@cached``, or leave the parameter out of
    the key with ``ignore=``.
    """


class SerializationError(CacheplugError):
    """A value could not be serialized for a shared tier (it stays in memory instead)."""


class InvalidationError(CacheplugError):
    """An invalidation could not be recorded in a shared tier.

    Invalidation fails closed: the writer must know that other processes may still hold the
    old value, so this error propagates to the caller of ``invalidate()``.
    """


class TierUnavailable(CacheplugError):
    """A tier could not be opened (read-only, full, corrupt or missing storage).

    Raised by the tier's operations while it is down; the coordinator counts it as a fault
    and serves the call from another tier or by computing. The tier retries opening on a
    later operation (at most every 10 seconds). Fix the cause named in the message (the
    directory's permissions, free space) or point the tier at another directory.
    """
