"""The Django example project's tests (docs/examples/django_app) run as part of the suite.

They are collected here rather than by this suite's pytest: the example is its own
project, with its own ``pytest.ini`` (pytest-django, ``DJANGO_SETTINGS_MODULE`` =
``shopsite.settings``, SQLite), so a copy of it runs in a pytest subprocess, which must pass.
The copy keeps the example's folder clean of databases, caches and bytecode.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import _service_unavailable

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "django_app"


def test_the_django_example_projects_tests_pass(tmp_path: Path) -> None:
    for module in ("django", "pytest_django"):
        if importlib.util.find_spec(module) is None:
            _service_unavailable(f"the Django example needs {module}: pip install -e '.[dev]'")
    project = tmp_path / "django_app"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", ".cacheplug", "*.sqlite3"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CACHEPLUG_", "DJANGO_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["SHOP_CACHE_DIR"] = str(tmp_path / "cache")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:benchmark"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"--- stdout ---\n{run.stdout}\n--- stderr ---\n{run.stderr}"
    assert " passed" in run.stdout and "failed" not in run.stdout
