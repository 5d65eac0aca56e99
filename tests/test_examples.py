"""The example applications under ``docs/examples/`` pass their own test suites.

Every directory ``docs/examples/<name>/`` holding ``test_*.py`` files is a small project with
its own ``conftest.py``: its suite runs in a fresh ``python -m pytest`` started in that
directory (so its conftest is the root one, as in a user's project), with cacheplug on the
path, ``CACHEPLUG_DIR`` on a temporary directory, the other ``CACHEPLUG_*`` variables
removed except ``CACHEPLUG_REQUIRE_SERVICES`` and ``CACHEPLUG_TEST_*`` (so an example needing
a service skips or fails as the rest of the suite does). A suite that only skipped is
reported as skipped, with its reasons.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
TIMEOUT = 600
_KEPT = ("CACHEPLUG_REQUIRE_SERVICES", "CACHEPLUG_TEST_")


def _examples() -> list[Path]:
    return sorted(d for d in EXAMPLES.iterdir() if d.is_dir() and any(d.glob("test_*.py")))


def test_the_examples_are_found() -> None:
    names = {d.name for d in _examples()}
    assert {"pytest_plugin", "streamlit_app"} <= names, names


@pytest.mark.parametrize("example", _examples(), ids=lambda d: d.name)
def test_example_suite_passes(example: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEPLUG_") or k.startswith(_KEPT)}
    env = {k: v for k, v in env.items() if not k.startswith("PYTEST_")}
    env["CACHEPLUG_DIR"] = str(tmp_path / "cachedir")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'basetemp'}",
        ],
        cwd=example,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    output = proc.stdout + proc.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    if proc.returncode == 0 and not re.search(r"\d+ passed", summary) and "skipped" in summary:
        pytest.skip(f"docs/examples/{example.name}: every test skipped:\n{output}")
    assert proc.returncode == 0 and re.search(r"\d+ passed", summary), (
        f"docs/examples/{example.name} exited with {proc.returncode}\n{output}"
    )
