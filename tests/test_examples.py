"""The example applications under ``docs/examples/`` pass their own test suites.

Every directory ``docs/examples/<name>/`` holding ``test_*.py`` files is a small project with
its own ``conftest.py``: its suite runs in a fresh ``python -m pytest`` started in that
directory (so its conftest is the root one, as in a user's project), with cacheplug on the
path, ``CACHEPLUG_DIR`` on a temporary directory, the other ``CACHEPLUG_*`` variables
removed except ``CACHEPLUG_REQUIRE_SERVICES`` and ``CACHEPLUG_TEST_*`` (so an example needing
a service skips or fails as the rest of the suite does). An example whose framework is not
installed, or whose tests skipped, is reported as skipped with its reasons, and fails instead
with ``CACHEPLUG_REQUIRE_SERVICES=1``. (The Django project, laid out as Django projects are,
runs from tests/test_django_example.py.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import _service_unavailable

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
TIMEOUT = 600
_KEPT = ("CACHEPLUG_REQUIRE_SERVICES", "CACHEPLUG_TEST_")


def _examples() -> list[Path]:
    return sorted(d for d in EXAMPLES.iterdir() if d.is_dir() and any(d.glob("test_*.py")))


def test_the_examples_are_found() -> None:
    names = {d.name for d in _examples()}
    assert {"pytest_plugin", "streamlit_app", "fastapi_app", "flask_app"} <= names, names


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
            "-p",
            "no:randomly",
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
    missing = re.search(r"ModuleNotFoundError: No module named '([^']+)'", output)
    if proc.returncode != 0 and missing is not None and missing[1].split(".")[0] != "cacheplug":
        _service_unavailable(f"docs/examples/{example.name} needs {missing[1]}, which is not installed")
    skipped = re.findall(r"^SKIPPED .*$", output, re.M)
    if proc.returncode == 0 and skipped:
        _service_unavailable(f"docs/examples/{example.name}: " + "; ".join(skipped))
    assert proc.returncode == 0 and re.search(r"\d+ passed", summary), (
        f"docs/examples/{example.name} exited with {proc.returncode}\n{output}"
    )
