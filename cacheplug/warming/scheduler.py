"""Background warming: :func:`start_warming` runs the due tasks on an owned thread.

The scheduler's thread runs :func:`~cacheplug.warm_now` for one cache at once, then every
``interval`` seconds (wall-clock; whether a task is due is decided on the cache's clock).
It is owned: :meth:`WarmingScheduler.stop` stops and joins it, and so do closing its cache
and ``cacheplug.state.reset()``. ``CACHEPLUG_WARMING=false`` disables it: ``start_warming``
then starts nothing and returns a handle that is not running (so one setting turns warming
off in a test or a one-off script without touching the code).
"""

from __future__ import annotations

import logging
import math
import threading

from .. import state
from ..cache import Cache
from ..defaults import get_cache
from ..errors import ConfigurationError
from ..settings import warming_from_env
from .runner import WarmReport, warm_now

__all__ = ["WarmingScheduler", "start_warming"]

log = logging.getLogger("cacheplug")


class WarmingScheduler:
    """The handle of a warming thread started by :func:`start_warming`.

    ``running``: whether its thread runs; ``runs``: how many times it ran the due tasks;
    ``last``: the :class:`~cacheplug.WarmReport` of the last run (``None`` before the first).
    ``stop()`` (also on ``with`` exit) stops and joins the thread; calling it again does nothing.
    """

    def __init__(self, cache: Cache, interval: float, workers: int) -> None:
        self.cache, self.interval, self.workers = cache, interval, workers
        self.runs = 0
        self.last: WarmReport | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the scheduler's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="cacheplug-warming", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set() and not self.cache.closed:
            try:
                self.last = warm_now(cache=self.cache, workers=self.workers)
            except Exception:  # warm_now reports failing calls itself; this is a bug: keep going
                log.exception("cacheplug: the warming scheduler's run failed")
            self.runs += 1
            if self._stop.wait(self.interval):
                return

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread and wait for it (the run in progress finishes its calls first)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        state.SCHEDULERS.discard(self)

    def __enter__(self) -> WarmingScheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"WarmingScheduler(interval={self.interval}, running={self.running}, runs={self.runs})"


def start_warming(
    interval: float = 60.0, *, cache: Cache | None = None, workers: int = 4
) -> WarmingScheduler:
    """Run the due warming tasks of ``cache`` (default: the default cache) now and every ``interval`` s.

    Returns the :class:`WarmingScheduler`; ``stop()`` it (closing the cache does too). With
    ``CACHEPLUG_WARMING=false`` nothing starts and the handle is not ``running``.
    """
    if (
        isinstance(interval, bool)
        or not isinstance(interval, (int, float))
        or not math.isfinite(interval)
        or interval <= 0
    ):
        raise ConfigurationError(
            f"start_warming(interval=...) takes a number of seconds > 0, got {interval!r}"
        )
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigurationError(f"start_warming(workers=...) takes an int >= 1, got {workers!r}")
    if cache is not None and not isinstance(cache, Cache):
        raise ConfigurationError(f"start_warming(cache=...) takes a cacheplug.Cache, got {cache!r}")
    target = cache if cache is not None else get_cache()
    scheduler = WarmingScheduler(target, float(interval), workers)
    if not warming_from_env():
        log.info("cacheplug: CACHEPLUG_WARMING=false, so start_warming() starts no scheduler")
        return scheduler
    if target.closed:
        raise ConfigurationError("start_warming(): the cache is closed")
    state.SCHEDULERS.add(scheduler)
    target.on_close(scheduler.stop)
    scheduler._start()
    return scheduler
