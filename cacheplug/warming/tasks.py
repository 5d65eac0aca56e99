"""Warming tasks: what to compute ahead of demand, how urgently, how often, and their figures.

A :class:`WarmingTask` names a cached function and the calls to make (``args``: as for
``@cached(warm=...)``, see :mod:`cacheplug.warmcalls`), or a key of the direct API and the
``compute`` that makes its value. Tasks are registered with :func:`register_warming_task`;
every ``@cached(warm=...)`` function is one more task (named after the function), listed
from the registry of decorated functions, so it lives only as long as the function does.
:func:`warming_tasks` lists them all.

Each task keeps its figures (:class:`WarmingStats`). A run that fails (a computation or the
``args`` callable raised) is retried after an exponential backoff: 1 s, 2 s, 4 s... at most
:data:`BACKOFF_MAX` (or the task's ``interval`` when it has one), on the clock of the
task's cache, so a test drives it with ``Cache(clock=...)``.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .. import state, warmcalls
from ..cache import Cache
from ..defaults import get_cache
from ..errors import ConfigurationError
from ..wrappers import BoundCachedFunction, CachedFunction

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_MAX",
    "WarmingStats",
    "WarmingTask",
    "register_warming_task",
    "warming_tasks",
]

BACKOFF_BASE = 1.0
"""Seconds before the first retry of a failed task; each failure in a row doubles it."""
BACKOFF_MAX = 300.0
"""The longest wait before a retry (a task with an ``interval`` waits at most that)."""


@dataclass(frozen=True)
class WarmingStats:
    """The figures of one warming task (``WarmingTask.stats``): a snapshot.

    ``runs``: runs finished (each run makes every call of the task once); ``warmed``:
    entries computed and stored; ``skipped``: calls left alone because their entry was fresh
    (for longer than the task's ``interval``); ``failures``: computations that raised (and
    ``args`` callables that did); ``last_duration``: seconds the last run took (on the
    timer of the task's cache); ``last_error``: the last exception, as ``repr``;
    ``failed_in_row``: runs failed since the last success; ``next_due``: when the task is
    due again on its cache's clock (``None``: it is not, until asked).
    """

    name: str
    runs: int = 0
    warmed: int = 0
    skipped: int = 0
    failures: int = 0
    last_duration: float | None = None
    last_error: str | None = None
    failed_in_row: int = 0
    next_due: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict."""
        return dict(self.__dict__)


class Figures:
    """The mutable figures of one task (thread-safe), and whether a run holds it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs = self.warmed = self.skipped = self.failures = self.failed_in_row = 0
        self.last_duration: float | None = None
        self.last_error: str | None = None
        self.next_due: float | None = None
        self.succeeded = False
        self.running = False

    def claim(self, now: float, force: bool) -> bool:
        """Take the task for a run if it is due (``force``: even if not) and no run holds it."""
        with self.lock:
            if self.running:
                return False
            due = force or (self.next_due is None and not self.succeeded)
            due = due or (self.next_due is not None and now >= self.next_due)
            self.running = due
            return due

    def finish(
        self,
        *,
        warmed: int,
        skipped: int,
        errors: list[BaseException],
        duration: float,
        now: float,
        interval: float | None,
        scheduled: bool = True,
    ) -> None:
        """Record one run; schedule the next (after ``interval``, or a backoff if it failed).

        ``scheduled=False`` (a per-user run, asked for): the figures only.
        """
        with self.lock:
            self.runs += 1
            self.warmed += warmed
            self.skipped += skipped
            self.failures += len(errors)
            self.last_duration = duration
            if errors:
                self.last_error = repr(errors[-1])
            if not scheduled:
                return
            self.running = False
            if errors:
                self.failed_in_row += 1
                wait = min(
                    BACKOFF_BASE * 2.0 ** (self.failed_in_row - 1), interval or BACKOFF_MAX, BACKOFF_MAX
                )
                self.next_due = now + wait
            else:
                self.failed_in_row = 0
                self.succeeded = True
                self.next_due = None if interval is None else now + interval

    def read(self, name: str) -> WarmingStats:
        with self.lock:
            return WarmingStats(
                name,
                self.runs,
                self.warmed,
                self.skipped,
                self.failures,
                self.last_duration,
                self.last_error,
                self.failed_in_row,
                self.next_due,
            )


class WarmingTask:
    """Something to compute before anyone asks: calls of a cached function, or a direct key.

    ``target``: a ``@cached`` function (or method bound to an instance); ``args``: its
    calls, as for ``@cached(warm=...)``: an iterable of argument tuples or dicts, or a
    callable returning one, called at each run (the default, ``()``, is one call without
    arguments). Or, for the direct API, ``key=`` and ``compute=`` (no ``target``): the
    task stores ``compute()`` under ``key`` in ``cache`` (default: the default cache) with
    ``ttl`` and ``tags``.

    ``priority``: higher runs first. ``interval``: seconds (on the cache's clock) after
    which a successful run is due again (``None``: it runs once, and again only when it
    failed). ``per_user=True``: run by :func:`~cacheplug.warm_for_user` only, each call
    getting the keyword argument ``user_id`` (a direct task's key may hold ``{user_id}``,
    and its ``compute`` gets ``user_id=``). Bad arguments raise
    :class:`~cacheplug.ConfigurationError` here.
    """

    def __init__(
        self,
        name: str,
        target: CachedFunction[..., Any] | BoundCachedFunction[..., Any] | None = None,
        args: Any = (),
        priority: int = 0,
        interval: float | None = None,
        per_user: bool = False,
        *,
        key: str | None = None,
        compute: Callable[..., Any] | None = None,
        ttl: Any = None,
        tags: Iterable[str] = (),
        cache: Cache | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"WarmingTask name must be a non-empty str, got {name!r}")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise ConfigurationError(f"WarmingTask {name!r}: priority= must be an int, got {priority!r}")
        if interval is not None and (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or not math.isfinite(interval)
            or interval <= 0
        ):
            raise ConfigurationError(
                f"WarmingTask {name!r}: interval= must be None or a number of seconds > 0, got {interval!r}"
            )
        if not isinstance(per_user, bool):
            raise ConfigurationError(f"WarmingTask {name!r}: per_user= takes True or False")
        if cache is not None and not isinstance(cache, Cache):
            raise ConfigurationError(f"WarmingTask {name!r}: cache= must be a cacheplug.Cache, got {cache!r}")
        self.name, self.priority, self.per_user = name, priority, per_user
        self.interval = None if interval is None else float(interval)
        self.target, self.key, self.compute = target, key, compute
        self.ttl, self.tags = ttl, tuple(tags) if not isinstance(tags, str) else (tags,)
        self._cache = cache
        extra = ("user_id",) if per_user else ()
        what = f"WarmingTask {name!r} args="
        if target is not None:
            if not isinstance(target, (CachedFunction, BoundCachedFunction)):
                raise ConfigurationError(
                    f"WarmingTask {name!r}: target= must be a @cached function, got {target!r}; for a "
                    f"value of the direct API give key= and compute= instead"
                )
            if key is not None or compute is not None or cache is not None:
                raise ConfigurationError(
                    f"WarmingTask {name!r}: give either target= (a @cached function, which has its "
                    f"own cache) or key= and compute= (the direct API), not both"
                )
            self.signature = _signature(target)
            self.args = warmcalls.check(_one_call_if_empty(args), self.signature, what, extra=extra)
        else:
            self._check_direct(name, args, key, compute, per_user)
            self.signature = None
            self.args = True
        self.figures: Figures = Figures()

    @staticmethod
    def _check_direct(name: str, args: Any, key: Any, compute: Any, per_user: bool) -> None:
        if not isinstance(key, str) or not key or not callable(compute):
            raise ConfigurationError(
                f"WarmingTask {name!r} needs target= (a @cached function) or both key= (a str) "
                f"and compute= (a callable making the value)"
            )
        if args != ():
            raise ConfigurationError(f"WarmingTask {name!r}: args= is for target=; compute= takes none")
        if per_user:
            try:
                key.format(user_id=0)
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigurationError(
                    f"WarmingTask {name!r}: a per-user key may name only {{user_id}}, got {key!r} ({exc!r})"
                ) from None
        elif "{" in key:
            raise ConfigurationError(
                f"WarmingTask {name!r}: the key {key!r} has a template field; only per_user=True "
                f"tasks format their key (with {{user_id}})"
            )

    @classmethod
    def _of_function(cls, function: CachedFunction[..., Any]) -> WarmingTask:
        """The task of a ``@cached(warm=...)`` function, sharing its figures for as long as it lives."""
        core = function._self_core
        task = cls.__new__(cls)
        task.name, task.priority, task.per_user, task.interval = core.ident, 0, False, None
        task.target, task.key, task.compute, task.ttl, task.tags, task._cache = (
            function,
            None,
            None,
            None,
            (),
            None,
        )
        task.signature, task.args = core.sig, core.warm
        with state.WARMING_LOCK:
            figures = state.WARMING_FIGURES.get(core)
            if figures is None:
                figures = state.WARMING_FIGURES[core] = Figures()
        task.figures = figures
        return task

    @classmethod
    def of_calls(
        cls, name: str, function: CachedFunction[..., Any], calls: list[warmcalls.Call]
    ) -> WarmingTask:
        """A one-off task making ``calls`` (``(args, kwargs)`` pairs, already checked)."""
        task = cls(name, function, args=tuple)  # a callable spec: checked when it runs...
        task.args = tuple(calls)  # ...which these are already
        return task

    # -- what the runner asks --------------------------------------------------------------

    @property
    def stats(self) -> WarmingStats:
        """This task's figures now."""
        return self.figures.read(self.name)

    def cache(self) -> Cache:
        """The cache the task's entries go to (the target function's current one)."""
        if self.target is not None:
            found: Cache = self.target._self_core.cache()
            return found
        return self._cache if self._cache is not None else get_cache()

    def calls(self) -> list[warmcalls.Call]:
        """The calls of one run (a callable ``args`` is called now)."""
        return warmcalls.calls(
            self.args,
            self.signature,
            f"WarmingTask {self.name!r} args=",
            extra=("user_id",) if self.per_user else (),
        )

    def __repr__(self) -> str:
        what = (
            f"key={self.key!r}"
            if self.key is not None
            else f"target={getattr(self.target, '__qualname__', '?')}"
        )
        extra = f", interval={self.interval}" if self.interval is not None else ""
        return (
            f"WarmingTask({self.name!r}, {what}, priority={self.priority}{extra}, per_user={self.per_user})"
        )


def _one_call_if_empty(args: Any) -> Any:
    # The default ``()`` (or any empty tuple or list) means one call without arguments.
    return True if isinstance(args, (tuple, list)) and not args else args


def _signature(target: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):
        return None


def register_warming_task(task: WarmingTask) -> WarmingTask:
    """Register ``task`` for :func:`~cacheplug.warm_now` (or :func:`~cacheplug.warm_for_user`); returns it.

    Names identify tasks in the figures and the command line: a second task with a name
    already registered raises :class:`~cacheplug.ConfigurationError`.
    """
    if not isinstance(task, WarmingTask):
        raise ConfigurationError(f"register_warming_task() takes a WarmingTask, got {task!r}")
    with state.WARMING_LOCK:
        if any(t is task or t.name == task.name for t in state.WARMING_TASKS):
            raise ConfigurationError(f"a warming task named {task.name!r} is already registered")
        state.WARMING_TASKS.append(task)
    return task


def warming_tasks() -> list[WarmingTask]:
    """Every warming task: the registered ones, then one per live ``@cached(warm=...)`` function."""
    with state.WARMING_LOCK:
        registered = list(state.WARMING_TASKS)
    decorated = [
        WarmingTask._of_function(function)
        for function in state.registered_functions()
        if function._self_core.warm is not False
    ]
    return registered + decorated
