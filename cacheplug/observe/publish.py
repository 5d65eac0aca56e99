"""Snapshots published beside the shared tier, so reports and the CLI cover every process.

Each process that monitors a cache writes its recent snapshots to
``<cache directory>/stats/<host>-<pid>[-<namespace>].json`` (the disk tier's directory: ``CACHEPLUG_DIR``
by default), replacing the file atomically at every interval. The file is JSON, never
pickled: reading another process's file can run no code, and a malformed or oversized file
is skipped (and said why), never trusted.

A file ages out when its process is gone: on this host, when no process has its pid (or
the pid now belongs to a process that started after the file was written); on any host,
when it was not rewritten for 3 of its intervals. :func:`collect` skips and removes aged-out
files of this host.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..private_files import write_json
from ..statistics import CacheStats
from ..tiers.capabilities import KeyListing

__all__ = [
    "FORMAT",
    "MAX_BYTES",
    "Published",
    "collect",
    "publish",
    "shared_directory",
    "stats_directory",
    "unpublish",
]

log = logging.getLogger("cacheplug")

FORMAT = "cacheplug-stats/1"
MAX_BYTES = 16 * 2**20
MAX_ALERTS = 100  # per file: a report shows what fires, not an unbounded list
"""A published file larger than this is skipped (16 MiB)."""
_AGES_OUT_AFTER = 3  # intervals without a rewrite


@dataclass(frozen=True, slots=True)
class Published:
    """One process's published snapshots (oldest first), as read back from its file."""

    host: str
    pid: int
    written: float  # wall-clock seconds (time.time) when the file was written
    interval: float
    snapshots: tuple[CacheStats, ...]
    path: str
    # The alerts firing in that process when it wrote the file (``Alert.to_dict()`` forms).
    alerts: tuple[dict[str, Any], ...] = ()

    @property
    def latest(self) -> CacheStats:
        """The most recent snapshot."""
        return self.snapshots[-1]


def stats_directory(directory: str | os.PathLike[str]) -> str:
    """Where the snapshots of the processes using cache directory ``directory`` are published."""
    return os.path.join(os.path.abspath(os.fspath(directory)), "stats")


def shared_directory(tiers: Sequence[Any]) -> str | None:
    """The directory of the first disk tier among ``tiers`` (proxies unwrapped), or ``None``."""
    for tier in tiers:
        inner = tier
        while not hasattr(inner, "directory") and hasattr(inner, "tier"):
            inner = inner.tier
        directory = getattr(inner, "directory", None)
        if isinstance(directory, str) and isinstance(inner, KeyListing):
            return directory
    return None


def _own_name(label: str = "") -> str:
    # One file per process and cache namespace: two monitored caches of one process on one
    # directory each keep their own.
    suffix = f"-{_safe(label)}" if label else ""
    return f"{_safe(socket.gethostname())}-{os.getpid()}{suffix}.json"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:64] or "host"


def publish(
    directory: str | os.PathLike[str],
    snapshots: Sequence[CacheStats],
    *,
    interval: float,
    wall: Callable[[], float] = time.time,
    label: str = "",
    alerts: Sequence[Mapping[str, Any]] = (),
) -> str:
    """Write this process's ``snapshots`` (oldest first) for cache directory ``directory``.

    ``label`` (the cache's namespace) tells apart the files of several caches of one process;
    ``alerts``: the alerts firing now (``Alert.to_dict()``), so a report from any process
    shows every process's.

    Returns the file's path. Raises ``OSError`` when it cannot be written (the monitor
    counts and logs that, and goes on).
    """
    folder = stats_directory(directory)
    body = {
        "format": FORMAT,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "written": wall(),
        "interval": float(interval),
        "snapshots": [s.to_dict() for s in snapshots],
        "alerts": [dict(a) for a in alerts[:MAX_ALERTS]],
    }
    path = os.path.join(folder, _own_name(label))
    write_json(folder, path, body, ".publishing-", "publishing stats")
    return path


def unpublish(directory: str | os.PathLike[str], label: str = "") -> None:
    """Remove this process's file (a monitor that stops)."""
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(stats_directory(directory), _own_name(label)))


def collect(directory: str | os.PathLike[str], *, wall: Callable[[], float] = time.time) -> list[Published]:
    """Every live process's published snapshots for cache directory ``directory``.

    Unreadable, malformed and oversized files are skipped with a log line; files of
    processes that are gone are skipped, and removed when they are this host's.
    """
    folder = stats_directory(directory)
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json") and not n.startswith("."))
    except FileNotFoundError:
        return []
    host, now, found = socket.gethostname(), wall(), []
    for name in names:
        path = os.path.join(folder, name)
        published = _read(path)
        if published is None:
            continue
        if _gone(published, host, now):
            if published.host == host:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            continue
        found.append(published)
    return found


def _read(path: str) -> Published | None:
    try:
        with open(path, "rb") as source:
            data = source.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES} bytes")
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        snapshots = tuple(CacheStats.from_dict(s) for s in body["snapshots"])
        if not snapshots:
            raise ValueError("no snapshots")
        pid, written, interval = body["pid"], body["written"], body["interval"]
        if (
            not isinstance(pid, int)
            or not isinstance(written, (int, float))
            or not isinstance(interval, (int, float))
        ):
            raise ValueError("pid, written and interval must be numbers")
        alerts = body.get("alerts", [])
        if not isinstance(alerts, list) or not all(
            isinstance(a, dict) and all(isinstance(k, str) for k in a) for a in alerts
        ):
            raise ValueError("alerts must be a list of objects")
        return Published(
            str(body["host"]),
            pid,
            float(written),
            float(interval),
            snapshots,
            path,
            tuple(alerts[:MAX_ALERTS]),
        )
    except FileNotFoundError:
        return None  # removed meanwhile by its process
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("cacheplug: skipping the published stats file %s: %s", path, exc)
        return None


def _gone(published: Published, host: str, now: float) -> bool:
    if now - published.written > _AGES_OUT_AFTER * max(published.interval, 1.0):
        return True
    if published.host != host:
        return False
    try:
        os.kill(published.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # another user's process has that pid: alive
    started = _start_time(published.pid)
    return started is not None and started > published.written


def _start_time(pid: int) -> float | None:
    """When process ``pid`` started (wall-clock seconds), where the system says (Linux)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat_file:
            fields = stat_file.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])
        with open("/proc/stat", encoding="ascii") as system:
            boot = next(int(line.split()[1]) for line in system if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
