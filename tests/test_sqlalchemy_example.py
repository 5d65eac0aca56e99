"""The SQLAlchemy example application (``docs/examples/sqlalchemy_app``) runs as a script.

Its own tests (``test_app.py``) run with every example's, in tests/test_examples.py.
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


def test_the_example_is_one_the_suite_runs() -> None:
    from .test_examples import _examples

    assert EXAMPLE in _examples()


def test_the_example_runs_as_a_script(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEPLUG_")}
    env["CACHEPLUG_DIR"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "'status': 'cancelled'" in result.stdout
