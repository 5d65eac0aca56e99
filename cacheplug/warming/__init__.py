"""Warming: computing entries before anyone asks.

* :mod:`~cacheplug.warming.tasks`: :class:`WarmingTask` (a cached function's calls, or a key
  of the direct API, with a priority, an interval, optionally per user), their figures
  (:class:`WarmingStats`) and the registry of tasks (``@cached(warm=...)`` functions are
  tasks too);
* :mod:`~cacheplug.warming.runner`: :func:`warm_now`, :func:`warm_for_user` and
  :func:`warm_from_history` (what a learning cache saved), with bounded concurrency and
  progress;
* :mod:`~cacheplug.warming.scheduler`: :func:`start_warming`, an owned thread running the due
  tasks periodically.

What a cache learns about its usage, and the refreshes ahead of expiry of hot keys, belong
to the cache (``cacheplug.cache.learning``): they need no task.
"""

from .runner import Progress, WarmReport, warm_for_user, warm_from_history, warm_now
from .scheduler import WarmingScheduler, start_warming
from .tasks import WarmingStats, WarmingTask, register_warming_task, warming_tasks

__all__ = [
    "Progress",
    "WarmReport",
    "WarmingScheduler",
    "WarmingStats",
    "WarmingTask",
    "register_warming_task",
    "start_warming",
    "warm_for_user",
    "warm_from_history",
    "warm_now",
    "warming_tasks",
]
