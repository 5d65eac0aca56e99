"""A bump killed at any step leaves invalidation working and nothing stale served (issue 6, item 3)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from cacheplug import versions
from cacheplug.versions import HostVersions, fresh

from .versions_support import wait_child

STEPS = ("locked", "inserted", "committed", "published", "snapshot")
DURABLE = {"committed", "published", "snapshot"}  # the record is committed: it must take effect
KILLS_PER_STEP = 40


def _bump_until_killed(directory: str, step: str, tag: str) -> int:
    """Fork a child that bumps ``tag`` and SIGKILLs itself at ``step``; return its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:

            def die_at(name: str) -> None:
                if name == step:
                    os.kill(os.getpid(), signal.SIGKILL)

            versions._STEP = die_at
            versions._SNAPSHOT_EVERY = 4  # so that "snapshot" is reached within a few bumps
            store = HostVersions(directory)
            for _ in range(2 * versions._SNAPSHOT_EVERY):
                store.bump([tag])
        finally:
            os._exit(3)  # never reached the step
    return pid


def _stale(store: HostVersions, tag: str, seq: int) -> bool:
    return seq < store.floor or not fresh(store.mirror, [tag], seq)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bumps_killed_at_every_step_never_wedge_invalidation(tmp_path: Path) -> None:
    directory = str(tmp_path / "versions")
    store = HostVersions(directory)
    kills, failures = 0, []
    try:
        for i in range(KILLS_PER_STEP * len(STEPS)):
            step, tag = STEPS[i % len(STEPS)], f"t{i}"
            checked = store.sync()  # an entry carrying ``tag`` known fresh as of now
            status = wait_child(_bump_until_killed(directory, step, tag), 20)
            assert status is not None and os.WIFSIGNALED(status), f"child at {step!r}: status {status}"
            assert os.WTERMSIG(status) == signal.SIGKILL
            kills += 1
            # Half the rounds bump in the old process first (no reopen, so its bump must find
            # the next number itself), half open a new process first (which repairs on open).
            bump_first = (i // len(STEPS)) % 2 == 1
            if bump_first:
                store.bump(["probe"])  # raised IntegrityError forever after one such kill
            newcomer = HostVersions(directory)
            try:
                if _stale(newcomer, tag, checked) != (step in DURABLE):
                    failures.append((i, step, "new process", newcomer.mirror.get(tag), checked))
            finally:
                newcomer.close()
            if not bump_first:
                store.bump(["probe"])
            store.sync()
            if _stale(store, tag, checked) != (step in DURABLE):
                failures.append((i, step, store.mirror.get(tag), checked, store.floor))
        assert kills == KILLS_PER_STEP * len(STEPS)
        assert not failures, failures[:10]
        # Every process, old or new, still invalidates and sees the others' invalidations.
        last = store.bump(["final"])
        other = HostVersions(directory)
        try:
            assert other.bump(["final2"]) == last + 1
            assert store.sync() == last + 1 and store.mirror["final2"] == last + 1
            assert other.sync() == last + 1
            assert {t: other.mirror.get(t) for t in store.mirror} == store.mirror
            assert store.epoch[0] == store._journal.high()
        finally:
            other.close()
    finally:
        store.close()
