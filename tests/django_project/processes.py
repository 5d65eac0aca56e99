"""Driving worker processes of the test project (``worker.py``) from a test, bounded in time."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # seconds any one answer may take on a loaded machine


class Worker:
    """One ``python -m tests.django_project.worker`` process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.django_project.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        self.pid = self.proc.pid

    def send(self, op: str, *args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps([op, *args]) + "\n").encode())
        self.proc.stdin.flush()

    def answer(self) -> Any:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(WAIT):
                raise TimeoutError(f"worker {self.pid} did not answer within {WAIT:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.pid} exited (status {self.proc.poll()})")
        status, value = json.loads(line)
        if status == "error":
            raise RuntimeError(f"worker {self.pid}: {value}")
        return value

    def call(self, op: str, *args: Any) -> Any:
        self.send(op, *args)
        return self.answer()

    def stop(self) -> None:
        proc = self.proc
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=WAIT)
        if proc.stdout is not None:
            proc.stdout.close()


@contextmanager
def workers(count: int, **extra_env: str) -> Iterator[list[Worker]]:
    """``count`` ready workers on this test's cache directory (``CACHEPLUG_DIR``), stopped after."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "tests.django_project.settings"}
    env.update(extra_env)
    started: list[Worker] = []
    try:
        for _ in range(count):
            started.append(Worker(env))
        for worker in started:
            assert worker.answer() == worker.pid  # ["ready", pid]: Django is set up
        yield started
    finally:
        for worker in started:
            worker.stop()
