"""The example applications under ``docs/examples/`` pass their own tests.

Each folder of ``docs/examples/`` holding ``test_*.py`` files is an application with its
tests, written as its users would write them (``from app import app``). Each runs here as
``python -m pytest`` in a fresh interpreter, in its own folder, with this checkout on the
path and ``CACHEPLUG_DIR`` pointing at a temporary directory, so its tests see nothing of
this suite's fixtures. A test the example skips (a framework is not installed) skips here
too, and so does an example whose framework is not installed; both fail instead with
``CACHEPLUG_REQUIRE_SERVICES=1``.
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
EXAMPLES = sorted(
    p for p in (ROOT / "docs" / "examples").glob("*") if p.is_dir() and any(p.glob("test_*.py"))
)


def test_the_examples_are_found() -> None:
    assert {p.name for p in EXAMPLES} >= {"fastapi_app", "flask_app"}


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_app_passes_its_tests(example: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEPLUG_") or k.endswith("_URL")}
    env["CACHEPLUG_DIR"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = os.pathsep.join([str(example), str(ROOT)])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:randomly",
         "--rootdir", str(example), "-c", os.devnull, str(example)],
        cwd=example,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    missing = re.search(r"ModuleNotFoundError: No module named '([^']+)'", output)
    if (
        result.returncode != 0
        and missing is not None
        and missing[1].split(".")[0] not in ("app", "cacheplug")
    ):
        _service_unavailable(f"{example.name} needs {missing[1]}, which is not installed")
    assert result.returncode == 0, f"{example.name}'s tests failed:\n{output[-4000:]}"
    skipped = re.findall(r"^SKIPPED .*$", output, re.M)
    if skipped:
        _service_unavailable(f"{example.name}: " + "; ".join(skipped))
    assert re.search(r"\d+ passed", output), output[-2000:]
