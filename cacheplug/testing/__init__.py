"""cacheplug's pytest plugin: isolated caches, a fake clock, a marker, assertion helpers.

Installed with cacheplug, it is loaded by pytest through the ``pytest11`` entry point
``cacheplug.testing`` (disable it with ``-p no:cacheplug.testing``; without the entry
point, load it with ``-p cacheplug.testing`` or ``pytest_plugins = ["cacheplug.testing"]``
in the root ``conftest.py``).

* Every test is bracketed by :func:`cacheplug.state.snapshot` and
  :func:`cacheplug.state.restore`: whatever a test does to cacheplug's process-global state
  (a default cache built or configured, caches opened, write rules added, one-time warnings
  given) is undone when it ends, and what existed before it (a default cache configured at
  import time or by a session fixture, your module-level caches and rules) is put back.
* ``cacheplug_cache``: a fresh :class:`~cacheplug.Cache` with a memory and a disk tier on a
  temporary directory, installed as the default cache for the test (so every ``@cached``
  function without ``cache=`` uses it) and closed afterwards. ``CACHEPLUG_DIR`` points at
  its directory during the test, so processes the test starts share it.
* ``cacheplug_clock``: a :class:`FakeClock` driving every expiry of that cache; requesting
  it installs ``cacheplug_cache`` too.
* ``@pytest.mark.cacheplug(enabled=False)``: caching off for the test.
* :func:`assert_hit`, :func:`assert_miss`, :func:`assert_invalidated` (and the async
  :func:`aassert_hit`, :func:`aassert_miss`): see :mod:`cacheplug.testing.asserts`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .. import state
from ..cache import Cache
from ..defaults import configure
from ..tiers import DiskTier, MemoryTier
from .asserts import aassert_hit, aassert_miss, assert_hit, assert_invalidated, assert_miss
from .clock import FakeClock

__all__ = [
    "FakeClock",
    "aassert_hit",
    "aassert_miss",
    "assert_hit",
    "assert_invalidated",
    "assert_miss",
    "cacheplug_cache",
    "cacheplug_clock",
]

_MARKER = "cacheplug"
_MARKER_HELP = (
    "cacheplug(enabled=True): enabled=False turns caching off for the test (every @cached call "
    "runs the function); see cacheplug.testing"
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)


def _caching_enabled(node: pytest.Item) -> bool:
    """What the closest ``cacheplug`` marker says (True without one)."""
    marker = node.get_closest_marker(_MARKER)
    if marker is None:
        return True
    unknown = sorted(set(marker.kwargs) - {"enabled"})
    enabled = marker.kwargs.get("enabled", True)
    if marker.args or unknown or not isinstance(enabled, bool):
        pytest.fail(
            f"{node.nodeid}: the cacheplug marker takes one keyword, enabled=True or False: "
            f"write @pytest.mark.cacheplug(enabled=False), got args={marker.args!r}, "
            f"kwargs={marker.kwargs!r}",
            pytrace=False,
        )
    return enabled


@pytest.fixture(autouse=True)
def _cacheplug_isolation(request: pytest.FixtureRequest) -> Iterator[None]:
    """Undo what the test does to cacheplug's process state; apply the ``cacheplug`` marker."""
    saved = state.snapshot()
    if _caching_enabled(request.node):
        try:
            yield
        finally:
            state.restore(saved)
        return
    # Caching off: the caches open now (and the default, if any) until the end of the test;
    # a default built during the test reads CACHEPLUG_ENABLED. Caches the test builds
    # itself with Cache(...) are as it builds them.
    switched = [c for c in {*saved.caches, saved.default} - {None} if c.enabled]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CACHEPLUG_ENABLED", "false")
        for cache in switched:
            cache.enabled = False
        try:
            yield
        finally:
            for cache in switched:
                if not cache.closed:
                    cache.enabled = True
            state.restore(saved)


@pytest.fixture
def _cacheplug_fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cacheplug_cache(
    request: pytest.FixtureRequest,
    _cacheplug_isolation: None,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Cache]:
    """An isolated cache (memory + disk on a temporary directory), the default for the test.

    Every ``@cached`` function without ``cache=`` uses it during the test (they read the
    default cache on every call). Its expiry clock is ``cacheplug_clock`` when the test
    uses that fixture, else the wall clock. Caching is off in it under
    ``@pytest.mark.cacheplug(enabled=False)``. ``CACHEPLUG_DIR`` is set to its directory
    for the test. Closed, with its tiers and version store, when the test ends.
    """
    directory: Path = tmp_path_factory.mktemp("cacheplug")
    wants_clock = "cacheplug_clock" in request.fixturenames
    clock = request.getfixturevalue("_cacheplug_fake_clock") if wants_clock else None
    monkeypatch.setenv("CACHEPLUG_DIR", str(directory))
    memory, disk = MemoryTier(), DiskTier(directory)
    cache = Cache([memory, disk], clock=clock, enabled=_caching_enabled(request.node))
    versions = cache.versions  # the directory's host version store, with its watcher thread
    try:
        configure(cache=cache)
        yield cache
    finally:
        cache.close()
        disk.close()
        memory.close()
        # Stop its watcher now rather than when the store is collected: the directory may be
        # deleted next (pytest empties its temporary directories), and a watcher that sees
        # its directory gone recreates it.
        versions.close()


@pytest.fixture
def cacheplug_clock(_cacheplug_fake_clock: FakeClock, cacheplug_cache: Cache) -> FakeClock:
    """A :class:`FakeClock` driving every expiry of ``cacheplug_cache`` (installed with it).

    ``cacheplug_clock.advance(seconds)`` moves time for every TTL of the default cache;
    pass it to caches you build yourself (``Cache(tiers, clock=cacheplug_clock)``).
    """
    return _cacheplug_fake_clock
