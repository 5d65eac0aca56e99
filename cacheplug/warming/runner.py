"""Running warming tasks: :func:`warm_now`, :func:`warm_for_user` and :func:`warm_from_history`.

One run takes the tasks (due ones, for ``warm_now``), orders them by priority (highest first;
registration order among equals), lists every call they make and hands the calls in that
order to at most ``workers`` threads, so the start order follows priority and no more than
``workers`` computations run at once. Progress is reported to a callback, from the thread
that called, after each call.

A call is **skipped** when its entry is fresh for longer than the task's ``interval`` (for a
one-off run: when it is fresh at all), so warming a process whose disk tier another one
already filled costs lookups, not computations; ``force=True`` recomputes everything. Else
it is **warmed**: computed and stored through the function's ``refresh()`` (the refresh
flow: it replaces what is stored, in every tier, unless an invalidation raced it). An async
function is refreshed in an event loop of the worker thread's own. A call that raises is
**failed**: nothing is stored for it, the exception is logged, counted in the task's
figures, and the task is retried after a backoff (see :mod:`cacheplug.warming.tasks`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from ..cache import Cache, direct, history
from ..defaults import get_cache
from ..envelope import MISS
from ..errors import ConfigurationError
from ..registry import cached_functions
from ..warmcalls import Call
from ..wrappers import BoundCachedFunction
from .tasks import WarmingStats, WarmingTask, warming_tasks

__all__ = ["Progress", "WarmReport", "warm_for_user", "warm_from_history", "warm_now"]

log = logging.getLogger("cacheplug")

Progress = Callable[[int, int, str], None]
"""``progress(done, total, task_name)``: called after each call of a run."""

_NO_USER = object()
WARMED, SKIPPED = "warmed", "skipped"


@dataclass(frozen=True)
class WarmReport:
    """What one run did: ``warmed`` (computed and stored), ``skipped`` (fresh already) and
    ``failed`` calls, in ``duration`` seconds, with the figures of each task that ran
    (``tasks``, in the order they started)."""

    warmed: int = 0
    skipped: int = 0
    failed: int = 0
    duration: float = 0.0
    tasks: tuple[WarmingStats, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """No call failed."""
        return self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return {
            "warmed": self.warmed,
            "skipped": self.skipped,
            "failed": self.failed,
            "duration": self.duration,
            "tasks": [t.to_dict() for t in self.tasks],
        }


def warm_now(
    progress: Progress | None = None, *, force: bool = False, workers: int = 4, cache: Cache | None = None
) -> WarmReport:
    """Run the due warming tasks now, highest priority first, at most ``workers`` calls at once.

    Due: never run, failed and past its backoff, or past its ``interval`` since it last
    succeeded (``force=True``: every task, and fresh entries are recomputed too).
    ``per_user`` tasks are left to :func:`warm_for_user`, tasks of a closed cache are left
    out, and a task another run is running is not started twice. ``cache``: only the tasks
    whose entries go to that cache. Returns a :class:`WarmReport`; a failing call never
    raises here.
    """
    _check(workers, force)
    chosen = []
    for task in warming_tasks():
        where = task.cache()
        if task.per_user or where.closed or (cache is not None and where is not cache):
            continue
        if task.figures.claim(where.clock(), force):
            chosen.append(task)
    return _run(chosen, progress, force=force, workers=workers, user=_NO_USER)


def warm_for_user(
    user_id: Any, progress: Progress | None = None, *, force: bool = False, workers: int = 4
) -> WarmReport:
    """Run every ``per_user=True`` task for one user (at login, say): each call gets ``user_id=``.

    Blocks until done; from async code, ``await asyncio.to_thread(warm_for_user, user_id)``.
    """
    _check(workers, force)
    tasks = [t for t in warming_tasks() if t.per_user and not t.cache().closed]
    return _run(tasks, progress, force=force, workers=workers, user=user_id)


def warm_from_history(
    cache: Cache | None = None, progress: Progress | None = None, *, workers: int = 4
) -> WarmReport:
    """Compute what ``cache`` (default: the default cache) learned was hot in earlier processes.

    Reads the learned set saved beside its disk tier (see ``Cache(learn=True)``); each call
    is made on the ``@cached`` function of this process with the same identity, if there is
    one and its signature still takes those arguments (others are ignored). A file that is
    not what cacheplug writes is refused (counted in ``cache.stats().faults`` as
    ``learning.history``, logged); nothing from it ever runs as code.
    """
    _check(workers, False)
    target = cache if cache is not None else get_cache()
    by_ident: dict[str, Any] = {}
    for registered in cached_functions():
        function = registered.function
        if (
            function is not None
            and registered.ident not in by_ident
            and function._self_core.cache() is target
        ):
            by_ident[registered.ident] = function
    planned: dict[str, list[Call]] = {}
    for learned in history.read(target):
        function = by_ident.get(learned.function)
        if function is None:
            continue
        try:
            function._self_core.sig.bind(*learned.args, **learned.kwargs)
        except TypeError:
            continue  # the function changed since: not that call any more
        planned.setdefault(learned.function, []).append((learned.args, learned.kwargs))
    tasks = [
        WarmingTask.of_calls(f"history:{ident}", by_ident[ident], calls) for ident, calls in planned.items()
    ]
    return _run(tasks, progress, force=False, workers=workers, user=_NO_USER)


def _check(workers: Any, force: Any) -> None:
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigurationError(f"workers= must be an int >= 1, got {workers!r}")
    if not isinstance(force, bool):
        raise ConfigurationError("force= takes True or False")


# -- one run -----------------------------------------------------------------------------------


class _Tally:
    """What one run of one task did, while it runs."""

    def __init__(self, task: WarmingTask) -> None:
        self.task = task
        self.cache = task.cache()
        self.warmed = self.skipped = 0
        self.errors: list[BaseException] = []
        self.started = self.cache.timer()


def _run(
    tasks: list[WarmingTask], progress: Progress | None, *, force: bool, workers: int, user: Any
) -> WarmReport:
    began = time.perf_counter()
    tasks = sorted(tasks, key=lambda t: -t.priority)  # stable: registration order among equals
    tallies: list[_Tally] = []
    work: list[tuple[_Tally, Call]] = []
    try:
        for task in tasks:
            tally = _Tally(task)
            tallies.append(tally)
            try:
                work += [(tally, call) for call in task.calls()]
            except Exception as exc:
                _failed(tally, None, exc)
        _execute(work, progress, force, workers, user)
    finally:
        for tally in tallies:
            _finish(tally, user)
    return WarmReport(
        warmed=sum(t.warmed for t in tallies),
        skipped=sum(t.skipped for t in tallies),
        failed=sum(len(t.errors) for t in tallies),
        duration=time.perf_counter() - began,
        tasks=tuple(t.task.stats for t in tallies),
    )


def _execute(
    work: list[tuple[_Tally, Call]], progress: Progress | None, force: bool, workers: int, user: Any
) -> None:
    if not work:
        return
    total, done = len(work), 0
    with ThreadPoolExecutor(max_workers=min(workers, total), thread_name_prefix="cacheplug-warming") as pool:
        # Submitted in priority order: the pool's queue is first in, first out.
        futures: dict[Future[str], tuple[_Tally, Call]] = {
            pool.submit(_warm_one, tally.task, call, force, user): (tally, call) for tally, call in work
        }
        for future in as_completed(futures):
            tally, call = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:
                _failed(tally, call, exc)
            else:
                if outcome == WARMED:
                    tally.warmed += 1
                else:
                    tally.skipped += 1
            done += 1
            if progress is not None:
                progress = _report(progress, done, total, tally.task.name)


def _report(progress: Progress, done: int, total: int, name: str) -> Progress | None:
    try:
        progress(done, total, name)
    except Exception:
        log.exception("cacheplug: the warming progress callback raised; it is not called again this run")
        return None
    return progress


def _failed(tally: _Tally, call: Call | None, exc: BaseException) -> None:
    tally.errors.append(exc)
    what = "listing its calls" if call is None else f"call {_shown(call)}"
    log.warning(
        "cacheplug: warming task %r failed on %s: %r (nothing stored for it)", tally.task.name, what, exc
    )


def _finish(tally: _Tally, user: Any) -> None:
    task, cache = tally.task, tally.cache
    task.figures.finish(
        warmed=tally.warmed,
        skipped=tally.skipped,
        errors=tally.errors,
        duration=cache.timer() - tally.started,
        now=cache.clock(),
        interval=task.interval,
        scheduled=user is _NO_USER,  # a per-user run is asked for: it schedules nothing
    )
    if tally.errors and user is _NO_USER:
        log.warning(
            "cacheplug: warming task %r will be retried at %s (cache clock)", task.name, task.figures.next_due
        )


def _shown(call: Call) -> str:
    args, kwargs = call
    return f"args={args!r}" + (f", kwargs={kwargs!r}" if kwargs else "")


# -- one call ----------------------------------------------------------------------------------


def _warm_one(task: WarmingTask, call: Call, force: bool, user: Any) -> str:
    """Compute and store one call of ``task`` unless its entry is fresh enough; what happened."""
    args, kwargs = call
    if user is not _NO_USER:
        kwargs = {**kwargs, "user_id": user}
    if task.target is None:
        return _warm_key(task, force, user)
    function = task.target
    core = function._self_core
    key_args = function._key_args(args) if isinstance(function, BoundCachedFunction) else args
    if not force and _fresh_enough(core, key_args, kwargs, task.interval):
        return SKIPPED
    if core.is_async:
        asyncio.run(function.arefresh(*args, **kwargs))
    else:
        function.refresh(*args, **kwargs)
    return WARMED


def _fresh_enough(
    core: Any, key_args: tuple[Any, ...], kwargs: dict[str, Any], interval: float | None
) -> bool:
    """Whether the call's entry is fresh and stays so past ``interval`` (a lookup, no hit counted)."""
    cache = core.cache()
    if not cache.enabled:
        return True  # nothing would be served: computing it now is useless
    binding = core.binding(cache)
    fkey, skey_fn = core.keys(cache, core.arguments(key_args, kwargs), key_args, kwargs)
    return _lasts(cache, cache.peek(binding, fkey, skey_fn()), interval)


def _warm_key(task: WarmingTask, force: bool, user: Any) -> str:
    cache = task.cache()
    assert task.key is not None and task.compute is not None
    key = task.key.format(user_id=user) if user is not _NO_USER else task.key
    if not force:
        skey = cache.user_key(key)
        if not cache.enabled or _lasts(cache, cache.peek(cache.direct, skey, skey), task.interval):
            return SKIPPED
    compute = task.compute
    direct.refresh(
        cache,
        key,
        (lambda: compute(user_id=user)) if user is not _NO_USER else compute,
        task.ttl,
        task.tags,
        (),
    )
    return WARMED


def _lasts(cache: Cache, entry: Any, interval: float | None) -> bool:
    if entry is MISS:
        return False
    left = entry.remaining(cache.clock())
    return left is None or left > (interval or 0.0)
