"""``make demo`` stays true: the demo runs on the embedded default and shows what it claims."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_runs_and_shows_each_capability(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEPLUG_")}
    env.update(CACHEPLUG_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    run = subprocess.run(
        [sys.executable, "-m", "cacheplug._demo"], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "tier hits: {'memory': 1, 'disk': 1}" in out  # the second process read the disk tier
    assert "a save of order 7:  order 7 = 24.99, order 8 = 5.49; recomputed [7]" in out
    assert "a bulk table write: order 7 = 22.49, order 8 = 4.99; recomputed [7, 8]" in out
    assert "1 computation; 31 callers waited for it and shared its value" in out
    assert "the call after expiry: 101.5 in" in out and "once the background refresh landed: 104.25" in out
    assert "3 entries warmed" in out
    assert "1 alert(s): ['firing']" in out
    report = out.split("HTML report (no network needed): ")[1].split()[0]
    assert Path(report).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
