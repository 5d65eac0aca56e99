"""The SQLAlchemy example application (``docs/examples/sqlalchemy_app``) passes its own tests.

They run as its users would run them: ``python -m pytest`` in a fresh interpreter, in the
example's folder (``import app``), with this checkout on the path and ``CACHEPLUG_DIR`` on a
temporary directory, so they see nothing of this suite's fixtures.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import require_framework

require_framework("sqlalchemy")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "sqlalchemy_app"


def test_the_sqlalchemy_example_passes_its_tests(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CACHEPLUG_", "PYTEST_"))}
    env["CACHEPLUG_DIR"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = os.pathsep.join([str(EXAMPLE), str(ROOT)])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "--rootdir", str(EXAMPLE), "-c", os.devnull, f"--basetemp={tmp_path / 'basetemp'}", str(EXAMPLE)],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "5 passed" in output, output[-2000:]


def test_the_example_runs_as_a_script(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEPLUG_")}
    env["CACHEPLUG_DIR"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "'status': 'cancelled'" in result.stdout
