"""``cacheplug warm --app module:attr`` end to end: a subprocess imports the application, warms
its tasks into the disk tier (a progress bar, a table or JSON), and a second run finds them warm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WAIT = 60.0


def _warm(*args: str, directory: Path, log: Path, fail: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEPLUG_")}
    env.update(PYTHONPATH=str(ROOT), COLUMNS="200", CACHEPLUG_DIR=str(directory), WARMING_APP_LOG=str(log))
    if fail:
        env["WARMING_APP_FAIL"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "cacheplug", "warm", *args],
        env=env,
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


def _computed(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_warm_imports_the_app_warms_by_priority_and_a_second_run_finds_it_warm(tmp_path: Path) -> None:
    directory, log = tmp_path / "cache", tmp_path / "computed.log"
    first = _warm("--app", "tests.warming_app:app", "--workers", "1", directory=directory, log=log)
    assert first.returncode == 0, first.stderr
    assert _computed(log) == ["home", "price 1", "price 2", "price 3"]  # priority 10 first
    assert "warming" in first.stdout and "4/4" in first.stdout  # the progress bar's last frame
    assert "Warmed tests.warming_app:app: 4 computed, 0 fresh already, 0 failed" in first.stdout
    rows = {line.split("│")[1].strip(): line for line in first.stdout.splitlines() if line.startswith("│")}
    assert set(rows) == {"home page", "tests.warming_app.price"}

    second = _warm("--app", "tests.warming_app:app", "--json", directory=directory, log=log)
    assert second.returncode == 0, second.stderr
    doc = json.loads(second.stdout)
    assert (doc["app"], doc["warmed"], doc["skipped"], doc["failed"]) == ("tests.warming_app:app", 0, 4, 0)
    assert {t["name"]: t["skipped"] for t in doc["tasks"]} == {"home page": 1, "tests.warming_app.price": 3}
    assert len(_computed(log)) == 4  # the disk tier served the second process: nothing computed


def test_warm_reports_a_failing_task_and_exits_1(tmp_path: Path) -> None:
    directory, log = tmp_path / "cache", tmp_path / "computed.log"
    result = _warm("--app", "tests.warming_app:app", "--json", directory=directory, log=log, fail=True)
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert (doc["warmed"], doc["failed"]) == (4, 1)
    (reports,) = [t for t in doc["tasks"] if t["name"] == "reports"]
    assert reports["failures"] == 1 and "the reports database is down" in reports["last_error"]
    assert reports["next_due"] is not None  # retried after a backoff
    assert "broken" in _computed(log)


def test_warm_explains_an_app_it_cannot_import(tmp_path: Path) -> None:
    log = tmp_path / "computed.log"
    for spec, message in (
        ("no_such_module:app", "cannot import the application module 'no_such_module'"),
        ("tests.warming_app:nope", "has no attribute 'nope'"),
    ):
        result = _warm("--app", spec, directory=tmp_path / "cache", log=log)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert message in result.stderr
    bad = _warm("--app", "no-colon", directory=tmp_path / "cache", log=log)
    assert bad.returncode == 2 and "module:attribute" in bad.stderr
    assert _computed(log) == []


def test_importing_the_app_computes_nothing(tmp_path: Path) -> None:
    log = tmp_path / "computed.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEPLUG_")}
    env.update(PYTHONPATH=str(ROOT), CACHEPLUG_DIR=str(tmp_path / "cache"), WARMING_APP_LOG=str(log))
    code = "import tests.warming_app, cacheplug; print(len(cacheplug.warming_tasks()))"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2" and _computed(log) == []
