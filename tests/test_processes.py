"""Real concurrency: processes sharing one disk directory, threads hammering one memory tier."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cacheplug import MISS, Cache, DiskTier, Entry, MemoryTier, cached
from tests.conftest import FakeClock

ROOT = Path(__file__).resolve().parent.parent

WORKER = textwrap.dedent(
    """
    import json, os, sys
    from cacheplug import Cache, DiskTier, MemoryTier, cached

    directory, marker, action = sys.argv[1], sys.argv[2], sys.argv[3]
    # The call path waits at most 50 ms for a lock by default (a store that cannot get it is
    # skipped and counted); these processes contend on purpose, so they wait as long as needed.
    disk = DiskTier(directory, timeout=2.0)
    cache = Cache([MemoryTier(), disk])

    @cached(cache=cache, version="1")
    def slow_square(x):
        with open(marker, "a") as out:
            out.write(f"{os.getpid()} {x}\\n")
        return {"square": x * x, "pid": os.getpid()}

    if action == "compute":
        print(json.dumps(slow_square(int(sys.argv[4]))))
    elif action == "set":
        cache.set(sys.argv[4], {"from": os.getpid()})
        print(json.dumps(os.getpid()))
    elif action == "get":
        print(json.dumps(cache.get(sys.argv[4])))
    elif action == "hammer":
        # Both processes write and read the same keys at the same time.
        me, rounds = sys.argv[4], int(sys.argv[5])
        for i in range(rounds):
            key = f"shared:{i % 20}"
            cache.set(key, [me, i])
            got = cache.get(key)
            assert got is not None and got[1] % 20 == i % 20, got
            cache.get(f"shared:{(i + 7) % 20}")
        print(json.dumps(cache.stats()["faults"]))
    cache.close()
    disk.close()
    """
)


def _run(script: Path, *args: str) -> Any:
    import json

    done = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def worker(tmp_path: Path) -> Path:
    path = tmp_path / "worker.py"
    path.write_text(WORKER)
    return path


def test_value_computed_in_one_process_is_read_from_disk_in_another(
    worker: Path, disk_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "computations.log"
    first = _run(worker, str(disk_dir), str(marker), "compute", "12")
    second = _run(worker, str(disk_dir), str(marker), "compute", "12")
    assert first["square"] == second["square"] == 144
    assert second["pid"] == first["pid"]  # the value the first process computed
    assert len(marker.read_text().splitlines()) == 1
    third = _run(worker, str(disk_dir), str(marker), "compute", "13")
    assert third["pid"] != first["pid"]
    assert len(marker.read_text().splitlines()) == 2


def test_entries_written_by_other_processes_are_read_back(
    worker: Path, disk_dir: Path, tmp_path: Path, clock: FakeClock
) -> None:
    marker = tmp_path / "unused.log"
    writer = _run(worker, str(disk_dir), str(marker), "set", "from-child")
    assert _run(worker, str(disk_dir), str(marker), "get", "from-child") == {"from": writer}
    # And this process reads it too, and a child reads what this process wrote.
    disk = DiskTier(disk_dir)
    with Cache([MemoryTier(), disk], clock=clock) as cache:
        assert cache.get("from-child") == {"from": writer}
        cache.set("from-parent", {"from": "parent"})
    disk.close()
    assert _run(worker, str(disk_dir), str(marker), "get", "from-parent") == {"from": "parent"}


def test_two_processes_hammering_one_disk_directory(worker: Path, disk_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "unused.log"
    procs = [
        subprocess.Popen(
            [sys.executable, str(worker), str(disk_dir), str(marker), "hammer", name, "300"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for name in ("p1", "p2")
    ]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            outputs.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    for code, out, err in outputs:
        assert code == 0, err
        assert out.strip() == "{}"  # no tier faults under contention
    disk = DiskTier(disk_dir)
    try:
        with Cache([disk]) as reader:
            values = [reader.get(f"shared:{i}") for i in range(20)]
        assert all(v is not None and v[0] in ("p1", "p2") and v[1] % 20 == i for i, v in enumerate(values))
    finally:
        disk.close()


def test_threads_hammering_one_memory_tier_keep_its_invariants() -> None:
    tier = MemoryTier(max_entries=64)
    shelves = [tier.shelf(("test", f"fn{i}")) for i in range(3)]
    errors: list[BaseException] = []
    start = threading.Barrier(8)
    deadline = time.monotonic() + 20

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            start.wait(timeout=10)
            for i in range(4000):
                if time.monotonic() > deadline:
                    break
                n = rng.randrange(200)
                op = rng.random()
                if op < 0.35:
                    tier.set(f"k{n}", Entry(("k", n), created=0.0, expires=None, seq=0))
                elif op < 0.55:
                    shelf = shelves[n % 3]
                    tier.put(shelf, n, Entry(("s", n), created=0.0, expires=None, seq=0))
                elif op < 0.8:
                    got = tier.get(f"k{n}")
                    assert got is MISS or got.value == ("k", n)
                    if got is not MISS:
                        got.ref = True
                    entry = shelves[n % 3].get(n)
                    assert entry is None or entry.value == ("s", n)
                elif op < 0.9:
                    tier.delete(f"k{n}")
                else:
                    tier.discard(shelves[n % 3], n)
                if i % 1000 == 999 and seed == 0:
                    tier.drop(shelves[2])
        except BaseException as exc:
            errors.append(exc)

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often to provoke races
    try:
        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
    finally:
        sys.setswitchinterval(old_interval)

    assert errors == []
    contents = [(shelf, key, entry) for shelf in tier.shelves() for key, entry in list(shelf.items())]
    assert len(tier) == len(contents)
    assert len(tier) <= tier.max_entries
    assert tier.evictions > 0
    for shelf, key, entry in contents:
        assert entry.shelf is shelf and entry.fkey == key


def test_threads_calling_one_cached_function_always_get_correct_values(clock: FakeClock) -> None:
    tier = MemoryTier(max_entries=50)
    errors: list[BaseException] = []
    with Cache([tier], clock=clock) as cache:

        @cached(cache=cache)
        def square(x: int) -> int:
            return x * x

        start = threading.Barrier(8)

        def work(seed: int) -> None:
            rng = random.Random(seed)
            try:
                start.wait(timeout=10)
                for _ in range(2000):
                    x = rng.randrange(120)
                    if rng.random() < 0.05:
                        square.invalidate(x)
                    assert square(x) == x * x
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        info = square.cache_info()
        assert info.hits + info.misses >= 8 * 2000 * 0.9
        assert info.currsize <= 50
        assert len(tier) <= 50
