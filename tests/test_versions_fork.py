"""Forked children own their locks and files: no hang, no lost exclusion (issue 6, item 7)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from cacheplug.versions import HostVersions, fresh

from .versions_support import in_child, wait_child

FORKS = 200


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_forking_while_threads_read_and_invalidate_never_hangs_a_child(tmp_path: Path) -> None:
    store = HostVersions(str(tmp_path / "versions"))
    stop = threading.Event()
    thread_errors: list[BaseException] = []

    def invalidate(n: int) -> None:
        try:
            while not stop.is_set():
                store.bump([f"thread{n}"])
                store.sync()
        except BaseException as exc:
            thread_errors.append(exc)

    def read() -> None:
        try:
            while not stop.is_set():
                seq = store.sync()
                fresh(store.mirror, ["thread0", "thread1"], seq)
        except BaseException as exc:
            thread_errors.append(exc)

    threads = [threading.Thread(target=invalidate, args=(n,), daemon=True) for n in range(2)]
    threads.append(threading.Thread(target=read, daemon=True))
    for thread in threads:
        thread.start()
    hangs, errors = 0, 0
    try:
        for i in range(FORKS):
            pid = os.fork()
            if pid == 0:  # pragma: no cover (the child)
                code = 1
                try:
                    for _ in range(3):
                        seq = store.bump([f"child{i}"])
                        if store.sync() < seq or store.mirror.get(f"child{i}") != seq:
                            raise AssertionError("the child does not see its own invalidation")
                    code = 0
                finally:
                    os._exit(code)
            status = wait_child(pid, 10)
            if status is None:
                hangs += 1
            elif os.waitstatus_to_exitcode(status) != 0:
                errors += 1
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert (hangs, errors) == (0, 0), f"{hangs} of {FORKS} children hung, {errors} failed"
    assert not thread_errors, thread_errors[:3]
    seq = store.bump(["after"])
    assert store.sync() == seq and all(store.mirror.get(f"child{i}") for i in range(FORKS))
    store.close()


@pytest.mark.timeout(120)
def test_a_parent_and_its_forked_child_exclude_each_other_when_invalidating(tmp_path: Path) -> None:
    store = HostVersions(str(tmp_path / "versions"))
    start = store.bump(["warm"])
    bumps = 1000
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        failed = 0
        try:
            os.read(go_read, 1)
            for i in range(bumps):
                try:
                    store.bump([f"child{i % 10}"])
                except Exception:
                    failed += 1
        finally:
            os._exit(min(failed, 100))
    failed = 0
    os.write(go_write, b"x")
    for i in range(bumps):
        try:
            store.bump([f"parent{i % 10}"])
        except Exception:
            failed += 1
    status = wait_child(pid, 60)
    os.close(go_read)
    os.close(go_write)
    assert status is not None, "the child hung"
    child_failed = os.waitstatus_to_exitcode(status)
    assert (failed, child_failed) == (0, 0)
    assert store.sync() == store.epoch[0] == start + 2 * bumps
    assert store._journal.high() == start + 2 * bumps
    store.close()


def test_a_forked_child_has_its_own_epoch_file_and_tells_listeners(tmp_path: Path) -> None:
    store = HostVersions(str(tmp_path / "versions"))
    reopened = threading.Event()

    def heard(flag: bool) -> None:
        if flag:
            reopened.set()

    store.add_listener(heard)
    generation, fd, epoch_view = store.generation, store._fd, store.epoch

    def body() -> None:
        assert store.generation == generation + 1
        assert store._fd != fd and store.epoch is not epoch_view  # a new open file description
        assert reopened.wait(5), "the child's watcher did not tell the listener about the reopen"
        seq = store.bump(["child"])
        assert epoch_view[0] == seq  # the old mapping (held by fast paths) still reads the counter

    assert in_child(body) == ""
    assert store.sync() == 1 and store.mirror == {"child": 1}
    assert store.generation == generation and store._fd == fd
    store.close()
