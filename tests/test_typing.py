"""mypy sees through @cached: tests/typing/accept.py type-checks, tests/typing/reject.py does not."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TYPING = Path(__file__).resolve().parent / "typing"
_ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: (?P<message>.*)  \[(?P<code>[a-z-]+)\]$")
_EXPECT = re.compile(r"#\s*expect:\s*(?P<code>[a-z-]+)\s*$")


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def _mypy(path: Path, cache_dir: Path) -> tuple[int, str]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(cache_dir),
            "--show-error-codes",
            "--no-color-output",
            "--no-pretty",
            str(path.relative_to(ROOT)),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_mypy_strict_accepts_typed_uses_of_cached(mypy_cache: Path) -> None:
    code, output = _mypy(TYPING / "accept.py", mypy_cache)
    assert code == 0, output
    assert "Success" in output


def test_mypy_rejects_wrong_argument_and_return_types(mypy_cache: Path) -> None:
    path = TYPING / "reject.py"
    expected = {
        (number, match["code"])
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if (match := _EXPECT.search(line))
    }
    assert len(expected) >= 8
    code, output = _mypy(path, mypy_cache)
    assert code == 1, output
    found = {
        (int(match["line"]), match["code"])
        for line in output.splitlines()
        if (match := _ERROR.match(line.strip()))
    }
    assert found == expected, output
