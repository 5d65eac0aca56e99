"""Another process driven line by line: a real interpreter, bounded in time, stopped by its pid."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60.0


class Peer:
    """``python -c code`` in the repository root with ``env`` added; ``ask`` writes one line and
    returns the answer's words. ``stop`` closes its input and waits (then kills it, by pid)."""

    def __init__(self, code: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        )

    def ask(self, command: str) -> list[str]:
        stdin: IO[str] | None = self.proc.stdin
        stdout: IO[str] | None = self.proc.stdout
        assert stdin is not None and stdout is not None
        stdin.write(command + "\n")
        stdin.flush()
        with selectors.DefaultSelector() as sel:
            sel.register(stdout, selectors.EVENT_READ)
            if not sel.select(TIMEOUT):
                raise TimeoutError(f"process {self.proc.pid} did not answer {command!r} in time")
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"process {self.proc.pid} exited (status {self.proc.wait(TIMEOUT)})")
        return line.split()

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
