"""The host lease store (``cacheplug.lease``): grants, waits, takeovers, fencing, faults.

Two ``LeaseStore`` objects over one directory stand for two processes (``flock`` locks of
two open files exclude each other within one process too); a real forked process is
killed with SIGKILL for the crash case. Time is a fake monotonic clock, and waits are driven
step by step through ``LeaseStore.attempts`` (it yields how long it would sleep), so nothing
sleeps.
"""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Generator
from pathlib import Path

import pytest

from cacheplug.lease import STRIPES, Lease, LeaseFault, LeaseStore

from .conftest import FakeClock
from .versions_support import wait_child

TIMEOUT = 10.0


class Wall:
    """A fake wall clock (the floor of tokens), far behind real time by default."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def store(directory: Path, clock: FakeClock) -> LeaseStore:
    return LeaseStore(directory, clock=clock, wall=Wall())


def granted(steps: Generator[float, None, Lease]) -> Lease:
    """Run ``steps`` expecting a grant without any pause."""
    try:
        pause = steps.send(None)
    except StopIteration as done:
        lease: Lease = done.value
        return lease
    raise AssertionError(f"it waited ({pause} s) instead of granting")


def paused(steps: Generator[float, None, Lease]) -> float:
    """One more attempt of ``steps``, which must pause."""
    try:
        return steps.send(None)
    except StopIteration as done:
        raise AssertionError(f"it was granted {done.value!r} instead of waiting") from None


def lease_files(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".lease"))


@pytest.fixture
def lock_dir(tmp_path: Path) -> Path:
    return tmp_path / "locks"


def test_a_free_key_is_granted_with_a_growing_token_and_released(lock_dir: Path, clock: FakeClock) -> None:
    leases = store(lock_dir, clock)
    first = granted(leases.attempts("k", TIMEOUT))
    assert not first.waited and not first.taken_over
    assert stat.S_IMODE(os.stat(lock_dir).st_mode) == 0o700
    (name,) = lease_files(lock_dir)
    assert stat.S_IMODE(os.stat(lock_dir / name).st_mode) == 0o600
    assert first.fence()
    first.unfence()
    first.release()
    assert lease_files(lock_dir) == []
    second = granted(leases.attempts("k", TIMEOUT))
    assert second.token > first.token
    second.release()
    assert not second.fence()  # released: nothing to fence any more


def test_a_held_key_waits_until_released_and_says_it_waited(lock_dir: Path, clock: FakeClock) -> None:
    holder = store(lock_dir, clock).acquire("k", TIMEOUT)
    other = store(lock_dir, clock)
    steps = other.attempts("k", TIMEOUT)
    pauses = [paused(steps) for _ in range(8)]
    assert pauses[0] > 0 and pauses == sorted(pauses) and max(pauses) <= 0.025  # backoff, capped
    holder.release()
    lease = granted(steps)
    assert lease.waited and not lease.taken_over and lease.token > holder.token
    assert not holder.fence() and lease.fence()
    lease.release()


def test_other_keys_are_not_held_up(lock_dir: Path, clock: FakeClock) -> None:
    leases = store(lock_dir, clock)
    keys = [f"key {i}" for i in range(STRIPES * 2)]  # every stripe, twice over
    held = [leases.acquire(key, TIMEOUT) for key in keys]
    for lease in held:
        assert lease.fence()
        lease.release()
    for key, before in zip(keys, held, strict=True):  # tokens grow per key
        again = leases.acquire(key, TIMEOUT)
        assert again.token > before.token
        again.release()


def test_a_holder_past_its_lease_is_taken_over_and_fenced_off(lock_dir: Path, clock: FakeClock) -> None:
    slow = store(lock_dir, clock).acquire("k", TIMEOUT)
    other = store(lock_dir, clock)
    steps = other.attempts("k", TIMEOUT)
    paused(steps)
    clock.advance(TIMEOUT)  # the lease's expiry
    taker = granted(steps)
    assert taker.waited and taker.taken_over and taker.token > slow.token
    assert not slow.fence()  # its late store would be refused
    assert taker.fence()
    taker.unfence()
    slow.release()  # leaves the taker's file alone
    assert len(lease_files(lock_dir)) == 1
    third = store(lock_dir, clock).attempts("k", TIMEOUT)
    paused(third)  # the taker still holds it
    taker.release()
    assert granted(third).token > taker.token


def test_a_tampered_expiry_is_waited_out_for_the_timeout_only(lock_dir: Path, clock: FakeClock) -> None:
    holder = store(lock_dir, clock).acquire("k", TIMEOUT)
    (name,) = lease_files(lock_dir)
    far = f"cacheplug-lease 1 {holder.token:020d} {9e12:020.6f} {1:010d}\n"
    (lock_dir / name).write_text(far)
    steps = store(lock_dir, clock).attempts("k", TIMEOUT)
    paused(steps)
    clock.advance(TIMEOUT)
    assert granted(steps).taken_over


def test_a_store_in_progress_keeps_a_takeover_out(lock_dir: Path, clock: FakeClock) -> None:
    slow = store(lock_dir, clock).acquire("k", TIMEOUT)
    assert slow.fence()  # storing now: the guard is held
    clock.advance(TIMEOUT + 1)
    steps = store(lock_dir, clock).attempts("k", TIMEOUT)
    for _ in range(5):
        paused(steps)  # waits for the guard, does not take over under the store
    slow.unfence()
    taker = granted(steps)
    assert taker.taken_over and not slow.fence()
    taker.release()
    slow.release()


def test_a_holder_killed_with_sigkill_leaves_the_key_free(lock_dir: Path) -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: hold the lease, say so, wait to be killed
        try:
            os.close(read)
            lease = LeaseStore(lock_dir).acquire("k", 3600.0)
            os.write(write, str(lease.token).encode())
            while True:
                signal.pause()
        finally:
            os._exit(1)
    os.close(write)
    try:
        token = int(os.read(read, 64))
        steps = LeaseStore(lock_dir).attempts("k", 3600.0)  # the child's clocks: the real ones
        paused(steps)  # held by the live child
    finally:
        os.kill(pid, signal.SIGKILL)
        assert wait_child(pid, 30.0) is not None
        os.close(read)
    lease = granted(steps)  # its lock died with it: no waiting for the hour-long lease
    assert lease.waited and not lease.taken_over and lease.token > token
    lease.release()


# -- faults and tampering --------------------------------------------------------------------------


def test_a_corrupt_stripe_is_a_fault_once_then_repaired(lock_dir: Path, clock: FakeClock) -> None:
    leases = store(lock_dir, clock)
    leases.acquire("k", TIMEOUT).release()
    for i in range(STRIPES):
        (lock_dir / f"stripe-{i:02d}").write_bytes(b"\x80garbage" * 100)
    with pytest.raises(LeaseFault, match="not a token; it was reset"):
        leases.acquire("k", TIMEOUT)
    lease = leases.acquire("k", TIMEOUT)
    assert lease.fence()
    lease.release()


def test_an_unreadable_lease_record_is_not_trusted_nor_fatal(lock_dir: Path, clock: FakeClock) -> None:
    leases = store(lock_dir, clock)
    holder = leases.acquire("k", TIMEOUT)
    (name,) = lease_files(lock_dir)
    (lock_dir / name).write_bytes(b"x" * 1_000_000)  # huge and meaningless: read with a bound
    assert not holder.fence()  # not its record any more: its store is refused
    steps = store(lock_dir, clock).attempts("k", TIMEOUT)
    paused(steps)  # still locked by the holder: wait (no expiry to trust)
    clock.advance(TIMEOUT)
    assert granted(steps).taken_over


def test_a_symbolic_link_is_never_followed(lock_dir: Path, clock: FakeClock, tmp_path: Path) -> None:
    leases = store(lock_dir, clock)
    leases.acquire("k", TIMEOUT).release()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    digest_path = Path(leases._paths("k")[0])
    digest_path.symlink_to(victim)
    with pytest.raises(OSError):
        leases.acquire("k", TIMEOUT)
    assert victim.read_text() == "precious"


def test_a_fifo_in_place_of_a_lease_file_does_not_hang(lock_dir: Path, clock: FakeClock) -> None:
    leases = store(lock_dir, clock)
    leases.acquire("k", TIMEOUT).release()
    os.mkfifo(leases._paths("k")[0])
    with pytest.raises(LeaseFault, match="not a regular file"):
        leases.acquire("k", TIMEOUT)


def test_an_untrusted_directory_is_refused(lock_dir: Path, clock: FakeClock) -> None:
    lock_dir.mkdir(mode=0o700)
    lock_dir.chmod(0o777)
    with pytest.raises(LeaseFault, match="group- or world-writable"):
        store(lock_dir, clock).acquire("k", TIMEOUT)


def test_a_deleted_directory_is_made_again(lock_dir: Path, clock: FakeClock) -> None:
    leases = store(lock_dir, clock)
    leases.acquire("a", TIMEOUT).release()
    for name in os.listdir(lock_dir):
        os.unlink(lock_dir / name)
    os.rmdir(lock_dir)
    lease = leases.acquire("b", TIMEOUT)
    assert lease.fence()
    lease.release()


def test_tokens_never_fall_below_the_wall_clock(lock_dir: Path, clock: FakeClock) -> None:
    wall = Wall()
    leases = LeaseStore(lock_dir, clock=clock, wall=wall)
    first = leases.acquire("k", TIMEOUT)
    first.release()
    for name in os.listdir(lock_dir):  # every stripe lost
        os.unlink(lock_dir / name)
    wall.now += 1
    again = leases.acquire("k", TIMEOUT)
    assert again.token > first.token
    again.release()
