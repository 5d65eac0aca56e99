"""``manage.py cacheplug ...``: the command line, on the project's configured cache directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import CommandError, call_command
from django.test import override_settings

from cacheplug import cached

from .processes import ROOT

SETTINGS = "tests.django_project.settings_configured"  # given twice: both forms are left out
computed: list[int] = []


@cached(tags=["price"])
def price(item: int) -> int:
    computed.append(item)
    return item * 10


def _manage(directory: Path, *args: str, elsewhere: Path) -> subprocess.CompletedProcess[str]:
    """``python -m django cacheplug ...`` with ``CACHEPLUG["directory"]`` set, CACHEPLUG_DIR elsewhere."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CACHEPLUG_DIR": str(elsewhere),
        "CACHEPLUG_TEST_DJANGO_CACHEPLUG": json.dumps({"directory": str(directory)}),
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "django",
            "cacheplug",
            "--settings",
            SETTINGS,
            *args,
            f"--settings={SETTINGS}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_works_on_the_configured_directory_end_to_end(tmp_path: Path) -> None:
    project = tmp_path / "project-cache"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    computed.clear()
    with override_settings(CACHEPLUG={"directory": str(project)}):
        assert price(3) == 30
        caches["default"].set("greeting", "hi")
        listed = _manage(project, "keys", "--json", elsewhere=elsewhere)
        assert listed.returncode == 0, listed.stderr
        keys = {row["key"] for row in json.loads(listed.stdout)["keys"]}
        assert any("price" in key for key in keys) and any("greeting" in key for key in keys)
        stats = _manage(project, "stats", "--json", elsewhere=elsewhere)
        assert stats.returncode == 0, stats.stderr
        assert json.loads(stats.stdout)["directory"] == str(project)
        invalidated = _manage(project, "invalidate", "--tag", "price", "--yes", elsewhere=elsewhere)
        assert invalidated.returncode == 0, invalidated.stderr
        assert "invalidated" in invalidated.stdout
        assert price(3) == 30
        assert computed == [3, 3]  # the command's invalidation reached this process


def test_help_and_errors_are_the_command_lines(tmp_path: Path) -> None:
    shown = _manage(tmp_path, "--help", elsewhere=tmp_path)
    assert shown.returncode == 0 and "Usage: python -m django cacheplug" in shown.stdout
    assert "stats" in shown.stdout and "invalidate" in shown.stdout
    missing = _manage(tmp_path, "stats", "--dir", str(tmp_path / "absent"), elsewhere=tmp_path)
    assert missing.returncode == 1
    assert "Error: no cache directory at" in missing.stderr and "Traceback" not in missing.stderr


def test_call_command_runs_it_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with override_settings(CACHEPLUG={"directory": str(tmp_path / "c")}):
        price(1)
        call_command("cacheplug", "stats", "--json")
        report: dict[str, Any] = json.loads(capsys.readouterr().out)
        assert report["directory"] == str(tmp_path / "c")
        with pytest.raises(CommandError, match="exited with status 2"):
            call_command("cacheplug", "no-such-command")
