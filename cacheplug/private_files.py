"""Cache folders: where the default one is, owner-only creation, and whether one is safe to trust.

Everything cacheplug writes to a cache directory may be read back by other processes, so
nobody but this user may be able to write there (guarantee 6 of the design). This module is
the one place that creates such folders whatever the umask, and that says why a folder is
unsafe; the disk tier, the version store and the configuration all use it.

The default directory is ``CACHEPLUG_DIR``, or ``<user cache dir>/cacheplug/<project>-<hash>``
where the project is the current working directory: two projects never share entries by
accident, and the workers of one service (started from one folder) share one disk tier.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import tempfile
from typing import Any

__all__ = ["default_directory", "directory_problem", "private_makedirs", "same_file", "write_json"]


def _user_cache_root() -> str:
    if sys.platform == "win32":
        return os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Caches")
    return os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")


def default_directory() -> str:
    """``CACHEPLUG_DIR``, or this project's folder under the per-user cache directory."""
    explicit = os.environ.get("CACHEPLUG_DIR")
    if explicit:
        return os.path.abspath(explicit)
    project = os.path.realpath(os.getcwd())
    digest = hashlib.sha256(project.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    name = os.path.basename(project) or "root"
    return os.path.join(_user_cache_root(), "cacheplug", f"{name}-{digest}")


def private_makedirs(path: str) -> None:
    """``os.makedirs`` whose every created folder is 0700 whatever the umask.

    A folder that another process created meanwhile is left as it is (it went through this
    same function, or it is checked by :func:`directory_problem` before use).
    """
    missing: list[str] = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask; chmod's is not


def directory_problem(path: str) -> str | None:
    """Why ``path`` is unsafe for unsigned entries (``None`` when fine or absent).

    Unsafe: a symlink, owned by another user than this process's, or group- or
    world-writable. Anyone who can write there could plant entries that run code.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return None  # absent (it will be created owner-only) or unreachable (a fault)
    if stat.S_ISLNK(st.st_mode):
        return f"{path!r} is a symbolic link"
    euid = os.geteuid()
    if st.st_uid != euid:
        return f"{path!r} is owned by uid {st.st_uid}, not by this process's user (uid {euid})"
    if st.st_mode & 0o022:
        return f"{path!r} is group- or world-writable (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def write_json(folder: str, path: str, body: Any, prefix: str, what: str) -> None:
    """Write ``body`` as compact JSON to ``path`` in the private ``folder`` (made if missing)
    atomically: a reader sees the old file or the new one, never half of one (a temporary
    file, then ``os.replace``). A folder others could write to raises ``PermissionError``
    ("not ``what``: ..."), as any other failure raises ``OSError``."""
    private_makedirs(folder)
    problem = directory_problem(folder)
    if problem is not None:
        raise PermissionError(f"not {what}: {problem}")
    data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".json")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def same_file(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not unlinked nor replaced since):
    what a lock held by ``flock`` on a file that others may unlink must check once it has it."""
    try:
        there = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)
