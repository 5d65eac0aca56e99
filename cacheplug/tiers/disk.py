"""The host tier: diskcache (SQLite + files) on local disk, shared by every process.

Entries are stored as serialized envelopes (bytes), so diskcache never unpickles on its
own and a row that cannot be read back is detected here: it is deleted, counted and
logged, and the read is a miss. The directory is created with owner-only permissions.
SQLite waits at most ``timeout`` seconds for a lock; past that the operation raises and the
coordinator serves the call from another tier or by computing.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import diskcache

from ..envelope import MISS, Entry, dumps, loads
from ..errors import ConfigurationError, SerializationError
from ..versions import HostVersions, host_versions

__all__ = ["DiskTier"]

log = logging.getLogger("cacheplug")


class DiskTier:
    """A diskcache-backed tier in ``directory`` (default: the project's cache folder)."""

    name = "disk"
    shared = True

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        size_limit: int = 2**30,
        *,
        timeout: float = 2.0,
    ) -> None:
        if not isinstance(size_limit, int) or size_limit < 1:
            raise ConfigurationError(
                f"DiskTier size_limit must be a positive int of bytes, got {size_limit!r}"
            )
        if directory is None:
            from ..config import default_directory

            directory = default_directory()
        self.directory = os.path.abspath(os.fspath(directory))
        self.size_limit = size_limit
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            os.chmod(self.directory, 0o700)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the disk tier directory {self.directory!r}: {exc}; set "
                f"CACHEPLUG_DIR or DiskTier(directory=...) to a writable folder"
            ) from exc
        self._dc = diskcache.Cache(
            os.path.join(self.directory, "entries"), size_limit=size_limit, timeout=timeout
        )
        self.corrupt = 0

    def versions(self) -> HostVersions:
        """The host-wide tag versions kept beside this tier."""
        return host_versions(os.path.join(self.directory, "versions"))

    def get(self, key: str) -> Entry | Any:
        data = self._dc.get(key, default=None, retry=True)
        if data is None:
            return MISS
        try:
            return loads(data, key)
        except SerializationError as exc:
            self.corrupt += 1
            log.warning("cacheplug: dropping unreadable disk entry %r: %s", key, exc)
            with contextlib.suppress(Exception):
                self._dc.delete(key)
            return MISS

    def set(self, key: str, entry: Entry, expire: float | None = None) -> None:
        data = dumps(entry)
        if expire is not None and expire <= 0:
            return
        # No retry: diskcache would retry a locked database forever; past ``timeout`` the
        # write raises and the coordinator counts a fault instead of blocking the call.
        self._dc.set(key, data, expire=expire)

    def delete(self, key: str) -> bool:
        return bool(self._dc.delete(key))

    def clear(self) -> None:
        self._dc.clear()

    def keys(self) -> list[str]:
        """Every stored key. O(entries): for sweeps and tools, never for calls."""
        return [k for k in self._dc.iterkeys() if isinstance(k, str)]

    def expire(self) -> int:
        """Reclaim rows whose diskcache expiry has passed."""
        return int(self._dc.expire(retry=True))

    def volume(self) -> int:
        """Bytes used on disk by the entries."""
        return int(self._dc.volume())

    def __len__(self) -> int:
        return len(self._dc)

    def close(self) -> None:
        self._dc.close()

    def __repr__(self) -> str:
        return f"DiskTier({self.directory!r}, size_limit={self.size_limit})"
