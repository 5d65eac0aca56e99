"""The learned set of a cache, saved beside its disk tier as JSON and read back safely.

A cache that learns usage (``Cache(learn=True)``) writes its hot calls to
``<disk tier directory>/learned/<namespace>.json``: for each, the function's identity, its
arguments and its score. ``cacheplug.warm_from_history()`` reads the file in a freshly
started process and computes those calls before anyone asks.

The file is JSON, never pickled, and reading it can run no code: only the functions the
process has itself decorated are ever called (looked up by identity in the registry, never
imported by name), with arguments that are plain ``int``, ``float``, ``str``, ``bool`` or
``None``; calls with other arguments are not saved. A file that is not exactly what this
module writes (garbage, another format, wrong types, larger than :data:`MAX_BYTES`), or that
sits in a folder or file another user could write (a symlink, owned by someone else, group-
or world-writable), is refused whole: the fault is counted in the cache's ledger
(``learning.history``), logged, and nothing is warmed from it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..private_files import directory_problem, write_json

if TYPE_CHECKING:
    from .facade import Cache

__all__ = ["FORMAT", "MAX_BYTES", "MAX_RECORDS", "Learned", "history_path", "jsonable", "read", "write"]

FORMAT = "cacheplug-learned/1"
MAX_BYTES = 4 * 2**20
"""A learned-set file larger than this (4 MiB) is refused."""
MAX_RECORDS = 10_000
_SCALARS = (str, int, float, bool, type(None))


class HistoryRefused(ValueError):
    """The learned-set file is not one this module wrote (or not safely where it should be)."""


@dataclass(frozen=True)
class Learned:
    """One hot call of the learned set: the function's identity, its arguments, its score."""

    function: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    score: float


def jsonable(args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
    """Whether a call's arguments survive JSON exactly (plain scalars, finite floats)."""
    for value in (*args, *kwargs.values()):
        if type(value) not in _SCALARS or (type(value) is float and not math.isfinite(value)):
            return False
    return all(type(name) is str for name in kwargs)


def _directory(cache: Cache) -> str | None:
    """The directory of the cache's first disk tier (proxies unwrapped), or ``None``."""
    for tier in cache.tiers:
        inner: Any = tier
        while not hasattr(inner, "directory") and hasattr(inner, "tier"):
            inner = inner.tier
        directory = getattr(inner, "directory", None)
        if isinstance(directory, str):
            return directory
    return None


def history_path(cache: Cache) -> str | None:
    """Where ``cache``'s learned set lives, or ``None`` when it has no disk tier."""
    directory = _directory(cache)
    if directory is None:
        return None
    namespace = cache.namespace
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in namespace)[:40]
    digest = hashlib.sha256(namespace.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return os.path.join(directory, "learned", f"{safe or 'default'}-{digest}.json")


def write(cache: Cache, learned: Sequence[Learned]) -> str | None:
    """Replace the cache's learned set with ``learned`` (atomically); the path, or ``None``
    without a disk tier. Raises ``OSError`` when it cannot be written."""
    path = history_path(cache)
    if path is None:
        return None
    folder = os.path.dirname(path)
    body = {
        "format": FORMAT,
        "namespace": cache.namespace,
        "calls": [
            {"function": item.function, "args": list(item.args), "kwargs": item.kwargs, "score": item.score}
            for item in learned[:MAX_RECORDS]
        ],
    }
    write_json(folder, path, body, ".saving-", "saving the learned set")
    return path


def read(cache: Cache) -> list[Learned]:
    """The cache's learned set, hottest first; ``[]`` when there is none or it is refused
    (counted in ``cache.faults`` as ``learning.history`` and logged)."""
    path = history_path(cache)
    if path is None:
        return []
    try:
        return _parse(_load(path), cache.namespace)
    except FileNotFoundError:
        return []
    except (OSError, ValueError, RecursionError) as exc:
        cache.faults.report("learning", "history", exc)
        return []


def _load(path: str) -> bytes:
    for where in (os.path.dirname(path), path):
        if not os.path.lexists(where):
            raise FileNotFoundError(where)
        problem = directory_problem(where)
        if problem is not None:
            raise HistoryRefused(f"refusing the learned set {path}: {problem}")
    with open(path, "rb") as source:
        data = source.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise HistoryRefused(f"the learned set {path} is larger than {MAX_BYTES} bytes")
    return data


def _parse(data: bytes, namespace: str) -> list[Learned]:
    try:
        body = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HistoryRefused(f"the learned set is not JSON: {exc}") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise HistoryRefused(f"not a {FORMAT} file")
    if body.get("namespace") != namespace:
        raise HistoryRefused(f"the learned set is for namespace {body.get('namespace')!r}, not {namespace!r}")
    calls = body.get("calls")
    if not isinstance(calls, list) or len(calls) > MAX_RECORDS:
        raise HistoryRefused(f"'calls' must be a list of at most {MAX_RECORDS} calls")
    out = []
    for item in calls:
        if not isinstance(item, dict) or set(item) != {"function", "args", "kwargs", "score"}:
            raise HistoryRefused(f"a call must have exactly function, args, kwargs and score: {item!r:.200}")
        function, args, kwargs, score = item["function"], item["args"], item["kwargs"], item["score"]
        if not isinstance(function, str) or not function or len(function) > 1000:
            raise HistoryRefused(f"a call names no function: {function!r:.200}")
        if not isinstance(args, list) or not isinstance(kwargs, dict) or not jsonable(args, kwargs):
            raise HistoryRefused(f"the arguments of {function} are not plain scalars")
        if type(score) not in (int, float) or not math.isfinite(score) or score < 0:
            raise HistoryRefused(f"the score of {function} is not a number >= 0")
        out.append(Learned(function, tuple(args), kwargs, float(score)))
    return out


def _no_constant(name: str) -> Any:
    raise HistoryRefused(f"the learned set holds {name}, which JSON does not")
