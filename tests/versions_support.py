"""Helpers for the version store's fault tests: forked children waited for with a bound."""

from __future__ import annotations

import os
import select
import signal
import traceback
from collections.abc import Callable


def wait_child(pid: int, timeout: float) -> int | None:
    """The wait status of child ``pid``, or None if it was still running after ``timeout``
    seconds (it is then killed by pid and reaped)."""
    fd = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None
    return os.waitpid(pid, 0)[1]


def in_child(body: Callable[[], None], timeout: float = 20.0) -> str:
    """Run ``body`` in a forked child; return "" if it succeeded, else what went wrong."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.close(read)
        code = 0
        try:
            body()
        except BaseException:
            os.write(write, traceback.format_exc().encode()[-4000:])
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    status = wait_child(pid, timeout)
    with os.fdopen(read, "rb") as pipe:
        output = pipe.read().decode(errors="replace")
    if status is None:
        return f"the child hung for over {timeout} s\n{output}"
    if os.waitstatus_to_exitcode(status) != 0:
        return output or f"the child failed with status {status}"
    return ""
