"""Every piece of cacheplug's process-global state, in one place, with one :func:`reset`.

The modules that use a piece refer to it here (``state.OPEN_CACHES``...), so a test, the
pytest plugin or a forked child that must start afresh calls :func:`reset` and nothing
else. This module is the bottom layer: it imports nothing of cacheplug, and knows the
objects it holds only by what it uses of them (``close()``, ``closed``).

=======================  =================================================================
``DEFAULT_CACHE``        the holder of the default cache (``[cache]`` or ``[None]``): every
                         decorated function without ``cache=`` reads ``DEFAULT_CACHE[0]``
``OPEN_CACHES``          every open ``Cache`` (weakly): module-level ``invalidate()`` reaches them
``RULES``                the global write rules (``cacheplug.add_rule``)
``FUNCTIONS``            every ``@cached`` function (weakly), in decoration order
``HOST_VERSIONS``        the process's one host version store per directory (weakly)
``WARMING_TASKS``        the registered ``WarmingTask`` objects (``register_warming_task``)
``WARMING_FIGURES``      the figures of the ``@cached(warm=...)`` functions' tasks, by the
                         function's core (weakly: they go with the function)
``SCHEDULERS``           the running warming schedulers (``start_warming``), weakly
``WARNED_LOCAL``         memory-only closures already warned about (module, qualified name)
``WARNED``               unknown ``CACHEPLUG_*`` variables and unsafe default directories
                         already warned about
``CHECKED_ENVIRONMENT``  the last ``CACHEPLUG_*`` environment found valid
``SHARED_CACHES``        what integrations build once and share by configuration (the
                         Django cache backend's cache and locks, for every thread): closed
                         by :func:`reset`
``SCRIPT_FUNCTIONS``     cached functions of scripts that run again and again (a Streamlit
                         app's ``cache_data`` functions), kept across the runs by what
                         identifies them, so a rerun finds its entries and bookkeeping
=======================  =================================================================

``PINNED`` belongs to the snapshots, not to the state: the default caches a :func:`snapshot`
will put back, which ``configure()`` and :func:`reset` forget instead of closing;
:func:`reset` leaves it alone.

:func:`snapshot` and :func:`restore` bracket a test (the pytest plugin): ``restore`` resets,
then puts back the default cache, open caches and rules the snapshot saw, so what a test
added is forgotten and what was there before it stays.

``UNBIND_HOOKS`` is wiring, not state: the functions to call when a cache stops serving the
generated fast paths; :func:`reset` calls them and keeps them.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["Snapshot", "pinned", "reset", "restore", "snapshot"]

DEFAULT_CACHE: list[Any] = [None]
# Whether cacheplug built the cache in DEFAULT_CACHE (get_cache(), configure(**settings)):
# only then does reset() close it.
_DEFAULT_BUILT = [False]
DEFAULT_LOCK = threading.Lock()

OPEN_CACHES: weakref.WeakSet[Any] = weakref.WeakSet()

RULES: list[Any] = []
RULES_LOCK = threading.Lock()

# Keyed by a serial number, not by the function: a wrapt proxy hashes and compares as the
# function it wraps, and two decorations of one function are two registrations.
FUNCTIONS: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
_FUNCTION_SERIAL = itertools.count()
_FUNCTIONS_LOCK = threading.Lock()

HOST_VERSIONS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()

WARMING_TASKS: list[Any] = []
WARMING_FIGURES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
WARMING_LOCK = threading.Lock()
SCHEDULERS: weakref.WeakSet[Any] = weakref.WeakSet()

WARNED_LOCAL: set[tuple[str, str]] = set()
WARNED: set[str] = set()
CHECKED_ENVIRONMENT: list[Any] = [None]

SCRIPT_FUNCTIONS: dict[Any, Any] = {}
SCRIPT_FUNCTIONS_LOCK = threading.Lock()

UNBIND_HOOKS: list[Callable[[Any], None]] = []

SHARED_CACHES: dict[Any, Any] = {}
SHARED_LOCK = threading.Lock()
PINNED: list[Any] = []


def default_cache(build: Callable[[], Any]) -> Any:
    """The default cache; built with ``build()`` (once, however many threads ask) if there is none."""
    cache = DEFAULT_CACHE[0]
    if cache is None:
        with DEFAULT_LOCK:
            cache = DEFAULT_CACHE[0]
            if cache is None:
                cache = DEFAULT_CACHE[0] = build()
                _DEFAULT_BUILT[0] = True
    return cache


def swap_default(new: Any, *, built: bool) -> Any:
    """Put ``new`` in the default-cache slot (``built``: cacheplug made it); return the old one."""
    with DEFAULT_LOCK:
        old, DEFAULT_CACHE[0] = DEFAULT_CACHE[0], new
        _DEFAULT_BUILT[0] = built and new is not None
    return old


def register_function(function: Any) -> None:
    """Add a decorated function to :data:`FUNCTIONS` (held weakly: dropping it unregisters it)."""
    with _FUNCTIONS_LOCK:
        FUNCTIONS[next(_FUNCTION_SERIAL)] = function


def registered_functions() -> list[Any]:
    """The decorated functions still alive, in decoration order."""
    with _FUNCTIONS_LOCK:
        return list(FUNCTIONS.values())  # insertion order: the serial numbers ascend


def reset() -> None:
    """Forget cacheplug's process-global state, as if the process had just imported it.

    * The default cache is closed if cacheplug built it (``get_cache()`` or
      ``configure(**settings)``); one handed to ``configure(cache=...)`` is only forgotten.
      The next ``get_cache()`` builds a new one from the environment as it is then.
    * Open caches the user made are forgotten, not closed: they keep working when used
      directly, but module-level ``invalidate()`` and ``invalidate_by_write()`` no longer
      reach them. Close them yourself (a test's fixture does) if they hold resources.
    * What integrations share by configuration (``SHARED_CACHES``) is closed: the next use
      builds it again.
    * The global write rules, the host version stores (each is closed by the tiers using
      it; a tier opened later opens its own), the warnings already given, the memo of
      the checked environment and the script functions kept across runs are cleared.
    * Every decorated function's fast path is unbound; its next call looks its cache up again.
    * The warming schedulers are stopped (and joined); the registered warming tasks and
      every task's figures are forgotten.

    The registry of decorated functions is kept: it holds live functions only (weakly), and
    forgetting a module's functions would hide them from warming until it is re-imported.

    Not for use while other threads are calling cacheplug.
    """
    for scheduler in list(SCHEDULERS):
        scheduler.stop()
    with DEFAULT_LOCK:
        old, built = DEFAULT_CACHE[0], _DEFAULT_BUILT[0]
        DEFAULT_CACHE[0], _DEFAULT_BUILT[0] = None, False
    with SHARED_LOCK:
        shared = list(SHARED_CACHES.values())
        SHARED_CACHES.clear()
    try:
        for item in shared:
            item.close()
        if old is not None and built and not pinned(old):
            old.close()
    finally:
        OPEN_CACHES.clear()
        with RULES_LOCK:
            RULES.clear()
        HOST_VERSIONS.clear()
        with WARMING_LOCK:
            WARMING_TASKS.clear()
            WARMING_FIGURES.clear()
        WARNED_LOCAL.clear()
        WARNED.clear()
        CHECKED_ENVIRONMENT[0] = None
        with SCRIPT_FUNCTIONS_LOCK:
            SCRIPT_FUNCTIONS.clear()
        for hook in UNBIND_HOOKS:
            hook(None)


class Snapshot(NamedTuple):
    """What :func:`restore` puts back: the default cache (and whether cacheplug built it),
    the open caches and the global write rules, as :func:`snapshot` found them."""

    default: Any
    default_built: bool
    caches: tuple[Any, ...]
    rules: tuple[Any, ...]


def pinned(cache: Any) -> bool:
    """Whether a snapshot will put ``cache`` back as the default (so it must stay open)."""
    return any(kept is cache for kept in PINNED)


def snapshot() -> Snapshot:
    """The default cache, open caches and global rules now (held strongly until restored).

    The default cache is pinned until :func:`restore`: replacing it (``configure()``) or
    resetting forgets it without closing it, so it can be put back.
    """
    with DEFAULT_LOCK:
        default, built = DEFAULT_CACHE[0], _DEFAULT_BUILT[0]
        if default is not None:
            PINNED.append(default)
    with RULES_LOCK:
        rules = tuple(RULES)
    return Snapshot(default, built, tuple(OPEN_CACHES), rules)


def restore(saved: Snapshot) -> None:
    """:func:`reset`, then put back what ``saved`` holds that is still open.

    Every effect of :func:`reset` applies, except to the saved default cache (pinned by
    :func:`snapshot`, so nothing closed it): a default cache built since is closed, caches
    opened since are forgotten (not closed), rules added since are dropped, warnings, memos
    and host version stores are cleared. A saved cache closed since (by a direct
    ``close()``) is not put back: the next ``get_cache()`` builds a default from the
    environment. Not for use while other threads are calling cacheplug.
    """
    default = saved.default
    with DEFAULT_LOCK:
        if DEFAULT_CACHE[0] is default:
            DEFAULT_CACHE[0], _DEFAULT_BUILT[0] = None, False  # reset() must not close it
    try:
        reset()
    finally:
        for i, kept in enumerate(PINNED):
            if kept is default:
                del PINNED[i]
                break
    if default is not None and not default.closed:
        swap_default(default, built=saved.default_built)
    for cache in saved.caches:
        if not cache.closed:
            OPEN_CACHES.add(cache)
    with RULES_LOCK:
        RULES.extend(saved.rules)
