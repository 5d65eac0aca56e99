"""Background work of one cache: an owned, bounded pool for refreshes and warming.

A cache serves a stale value while it refreshes it (``stale_ttl``), recomputes an entry
ahead of its expiry (``early_refresh``, refresh-ahead of learned hot keys) and warms
entries: all of it runs here, never on a caller's thread and never unbounded.

* ``submit(key, fn)`` runs ``fn()`` on one of at most ``workers`` daemon threads, started
  on first use (a cache that never refreshes in the background starts none). A ``key``
  already queued or running is refused (``False``): one refresh per entry at a time. At most
  ``limit`` jobs wait; beyond that a submission is refused and counted (``dropped``), the
  caller having already been served.
* ``asubmit(key, factory)`` runs the coroutine ``factory()`` as a task of the running event
  loop, with the same one-per-key rule; the task is kept until it ends.
* ``close()`` stops and joins the threads (waiting jobs are dropped, running ones finish) and
  cancels the tasks; ``aclose()`` awaits the tasks of the running loop too. A closed pool
  refuses new work. After a fork the child starts with an empty pool (the parent's threads
  do not exist there).

A job that raises is counted (``failed``) and handed to ``on_error``; it never reaches a
caller (the value it would have refreshed is simply not replaced).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import threading
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

__all__ = ["Background"]

_STOP = object()


class Background:
    """An owned, bounded pool of background jobs, keyed so each key runs once at a time."""

    def __init__(
        self,
        workers: int = 4,
        limit: int = 1024,
        name: str = "cacheplug-background",
        on_error: Callable[[Hashable, BaseException], None] | None = None,
    ) -> None:
        if workers < 1 or limit < 1:
            raise ValueError("Background(workers=, limit=) take positive integers")
        self.workers, self.limit, self.name, self.on_error = workers, limit, name, on_error
        self.done = self.failed = self.dropped = 0
        self.closed = False
        self._fresh_state()

    def _fresh_state(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._queue: collections.deque[Any] = collections.deque()
        self._keys: set[Hashable] = set()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._running = 0
        self._tasks: dict[Hashable, asyncio.Task[Any]] = {}

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, key: Hashable, fn: Callable[[], Any]) -> bool:
        """Run ``fn()`` in the background unless ``key`` is already queued or running."""
        if self._pid != os.getpid():
            self._fresh_state()
        with self._lock:
            if self.closed or key in self._keys:
                return False
            if len(self._queue) >= self.limit:
                self.dropped += 1
                return False
            self._keys.add(key)
            self._queue.append((key, fn))
            if self._idle == 0 and len(self._threads) < self.workers:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._ready.notify()
        return True

    def asubmit(self, key: Hashable, factory: Callable[[], Coroutine[Any, Any, Any]]) -> bool:
        """Run ``factory()`` as a task of the running loop unless ``key`` is already running."""
        loop = asyncio.get_running_loop()
        if self.closed or key in self._tasks or key in self._keys:
            return False
        if len(self._tasks) >= self.limit:
            self.dropped += 1
            return False
        task = loop.create_task(factory())
        self._tasks[key] = task
        task.add_done_callback(lambda t: self._task_done(key, t))
        return True

    def busy(self, key: Hashable) -> bool:
        """Whether a job for ``key`` is queued or running (a thread job or a task)."""
        return key in self._keys or key in self._tasks

    @property
    def pending(self) -> int:
        """Jobs queued or running, threads and tasks together."""
        return len(self._keys) + len(self._tasks)

    # -- running ------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._idle += 1
                    self._ready.wait()
                    self._idle -= 1
                job = self._queue.popleft()
                if job is _STOP:
                    return
                self._running += 1
            key, fn = job
            try:
                fn()
            except BaseException as exc:  # a job's failure never leaves the pool
                self._failed(key, exc)
            else:
                self.done += 1
            finally:
                with self._lock:
                    self._keys.discard(key)
                    self._running -= 1
                    self._ready.notify_all()

    def _task_done(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            self.done += 1
        else:
            self._failed(key, exc)

    def _failed(self, key: Hashable, exc: BaseException) -> None:
        self.failed += 1
        if self.on_error is not None:
            with contextlib.suppress(Exception):  # a broken error handler must not kill a worker
                self.on_error(key, exc)

    # -- waiting and stopping -----------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no thread job is queued or running (tests, ``warm_now``); ``False`` on timeout."""
        with self._lock:
            return self._ready.wait_for(lambda: not self._keys, timeout)

    async def await_tasks(self) -> None:
        """Await every task of the running loop that is still pending."""
        loop = asyncio.get_running_loop()
        while True:
            mine = [t for t in self._tasks.values() if t.get_loop() is loop and not t.done()]
            if not mine:
                return
            await asyncio.gather(*mine, return_exceptions=True)

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new work, drop what waits, let running jobs finish, join the threads and
        cancel the tasks."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            dropped = [job for job in self._queue if job is not _STOP]
            self._queue.clear()
            for key, _ in dropped:
                self._keys.discard(key)
            self._queue.extend([_STOP] * len(self._threads))
            self._ready.notify_all()
            threads = list(self._threads)
        if self._pid == os.getpid():
            current = threading.current_thread()
            for thread in threads:
                if thread is not current:
                    thread.join(timeout)
        for task in list(self._tasks.values()):
            loop = task.get_loop()
            if not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)

    async def aclose(self) -> None:
        """``close()``, after awaiting the tasks of the running loop."""
        await self.await_tasks()
        await asyncio.to_thread(self.close)

    def __repr__(self) -> str:
        return (
            f"Background(workers={self.workers}, pending={self.pending}, done={self.done}, "
            f"failed={self.failed}, dropped={self.dropped}, closed={self.closed})"
        )
