"""The learned set: saved beside the disk tier as JSON by one process, warmed from by the next,
and refused whole (counted, logged, nothing run) when it is not what cacheplug writes."""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cacheplug import Cache, DiskTier, MemoryTier, cached, warm_from_history
from cacheplug.cache.history import MAX_BYTES, history_path

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = Path(__file__).resolve().parent / "learning_support.py"
WAIT = 60.0


def _run(mode: str, directory: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEPLUG_")}
    env["PYTHONPATH"] = str(ROOT)
    env["CACHEPLUG_DIR"] = str(directory)
    proc = subprocess.Popen(
        [sys.executable, str(SUPPORT), mode],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)
    assert proc.returncode == 0, err
    found: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return found


def test_the_learned_set_survives_a_process_restart(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    learned = _run("learn", directory)
    assert sorted(map(tuple, learned["computed"])) == [
        ("label", "a", "fr"),
        ("price", 1),
        ("price", 2),
        ("price", 3),
    ]
    path = next((directory / "learned").glob("*.json"))
    body = json.loads(path.read_text())  # JSON, not a pickle
    calls = sorted((c["function"].rsplit(".", 1)[-1], c["args"], c["kwargs"]) for c in body["calls"])
    assert calls == [
        ("label", ["a"], {"lang": "fr"}),
        ("price", [1], {}),
        ("price", [2], {}),
    ]  # price(3) was cold
    warmed = _run("warm", directory)
    assert warmed["warmed"] == 3
    assert sorted(map(tuple, warmed["by_warming"])) == [("label", "a", "fr"), ("price", 1), ("price", 2)]
    assert warmed["served"] == [10, 20, "a:fr"] and warmed["after"] == []  # hits, not computations


@pytest.fixture
def disk_cache(tmp_path: Path) -> Iterator[Cache]:
    disk = DiskTier(tmp_path / "cache")
    cache = Cache([MemoryTier(), disk])
    yield cache
    cache.close()
    disk.close()


def _plant(cache: Cache, data: bytes) -> Path:
    where = history_path(cache)
    assert where is not None
    path = Path(where)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o600)
    return path


class _Payload:
    """What a pickle-reading loader would run: touching a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.marker,))


def _valid(**change: Any) -> bytes:
    call = {"function": f"{__name__}.price", "args": [1], "kwargs": {}, "score": 5.0}
    body = {"format": "cacheplug-learned/1", "namespace": "", "calls": [call]}
    body.update(change)
    return json.dumps(body).encode()


TAMPERED = {
    "garbage": b"\x00\x01not json at all",
    "another format": _valid(format="cacheplug-stats/1"),
    "another namespace": _valid(namespace="other"),
    "an object as argument": _valid(
        calls=[{"function": "m.f", "args": [{"x": 1}], "kwargs": {}, "score": 1}]
    ),
    "a list as argument": _valid(calls=[{"function": "m.f", "args": [[1, 2]], "kwargs": {}, "score": 1}]),
    "an extra field": _valid(calls=[{"function": "m.f", "args": [], "kwargs": {}, "score": 1, "code": "x"}]),
    "a negative score": _valid(calls=[{"function": "m.f", "args": [], "kwargs": {}, "score": -1}]),
    "NaN": b'{"format": "cacheplug-learned/1", "namespace": "", "calls": [{"function": "m.f", '
    b'"args": [NaN], "kwargs": {}, "score": 1}]}',
    "not a list of calls": _valid(calls={"function": "m.f"}),
    "too large": b" " * (MAX_BYTES + 1),
}


@pytest.mark.parametrize("data", TAMPERED.values(), ids=TAMPERED.keys())
def test_a_tampered_learned_set_is_refused_counted_and_warms_nothing(disk_cache: Cache, data: bytes) -> None:
    computed: list[int] = []

    @cached(cache=disk_cache, ttl=300)
    def price(item: int) -> int:
        computed.append(item)
        return item

    _plant(disk_cache, data)
    report = warm_from_history(disk_cache)
    assert report.warmed == 0 and computed == []
    assert disk_cache.faults.counts() == {"learning.history": 1}


def test_a_pickled_learned_set_runs_nothing(disk_cache: Cache, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    _plant(disk_cache, pickle.dumps(_Payload(marker)))
    assert pickle.loads(pickle.dumps(_Payload(tmp_path / "proof"))) is None  # the payload does run...
    assert (tmp_path / "proof").exists()
    assert warm_from_history(disk_cache).warmed == 0
    assert not marker.exists()  # ...but never from the learned set
    assert disk_cache.faults.counts() == {"learning.history": 1}


@pytest.mark.parametrize("make_unsafe", ["group-writable file", "symlinked file", "world-writable folder"])
def test_a_learned_set_others_could_write_is_refused(
    disk_cache: Cache, tmp_path: Path, make_unsafe: str
) -> None:
    computed: list[int] = []

    @cached(cache=disk_cache, ttl=300)
    def price(item: int) -> int:
        computed.append(item)
        return item

    path = _plant(disk_cache, _valid())
    if make_unsafe == "group-writable file":
        path.chmod(0o660)
    elif make_unsafe == "symlinked file":
        real = tmp_path / "elsewhere.json"
        real.write_bytes(path.read_bytes())
        path.unlink()
        path.symlink_to(real)
    else:
        path.parent.chmod(0o777)
    assert warm_from_history(disk_cache).warmed == 0 and computed == []
    assert disk_cache.faults.counts() == {"learning.history": 1}
    path.parent.chmod(0o700)


def test_a_valid_learned_set_warms_only_functions_this_process_has(disk_cache: Cache) -> None:
    computed: list[int] = []

    @cached(cache=disk_cache, ttl=300)
    def price(item: int) -> int:
        computed.append(item)
        return item

    calls = [
        {"function": f"{__name__}.{price.__qualname__}", "args": [7], "kwargs": {}, "score": 3.0},
        {"function": "os.system", "args": ["touch /tmp/pwned"], "kwargs": {}, "score": 9.0},  # not registered
        {
            "function": f"{__name__}.{price.__qualname__}",
            "args": [1, 2, 3],
            "kwargs": {},
            "score": 2.0,
        },  # no fit
    ]
    _plant(disk_cache, _valid(calls=calls))
    report = warm_from_history(disk_cache)
    assert report.warmed == 1 and computed == [7]
    assert disk_cache.faults.counts() == {}
    assert price(7) == 7 and computed == [7]


def test_no_disk_tier_no_learned_set() -> None:
    cache = Cache([MemoryTier()], learn=True)
    assert history_path(cache) is None
    assert warm_from_history(cache).warmed == 0
    cache.close()  # saving without a disk tier is nothing, not a fault
    assert cache.faults.counts() == {}
