"""The README's commands, run as a user would (console script, real server)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)
CLI = [str(Path(sys.executable).with_name("metamon-sp"))]


def run(*args: str, timeout: float = 280) -> str:
    proc = subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_collect_then_balanced_filter(tmp_path):
    data, balanced = tmp_path / "data", tmp_path / "balanced"
    out = run("collect", "format=gen1ou", "collect.battles=20", "collect.p1=simple_heuristics",
              "collect.p2=random", f"out={data}")
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["battles"] == 20 and manifest["invalid_actions"] == 0
    assert float(re.search(r"p1 win rate .*: ([0-9.]+)", out).group(1)) >= 0.8
    assert re.search(r"battles/s: [0-9.]+", out) and "invalid-order rate: 0.0000" in out

    run("filter", f"data={data}", f"out={balanced}", "filter.balance_outcomes=true")
    m2 = json.loads((balanced / "manifest.json").read_text())
    assert m2["wins"] == m2["losses"] > 0
    assert (balanced / "filter_report.json").exists()


def test_user_errors_are_one_line_without_traceback(tmp_path):
    proc = subprocess.run(CLI + ["filter", f"data={tmp_path / 'none'}", f"out={tmp_path / 'o'}"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "is not a dataset folder" in proc.stderr


def test_a_run_folder_in_use_is_refused_before_anything_is_written(tmp_path):
    from metamon_sp.config import load_config
    from metamon_sp.pipeline import run_dir_for
    from metamon_sp.runlock import run_lock

    run_dir = run_dir_for(load_config(["scale=smoke", f"runs_dir={tmp_path}"]))
    with run_lock(run_dir, owner="the first run"):
        proc = subprocess.run(CLI + ["selfplay", "scale=smoke", f"runs_dir={tmp_path}"],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "is being written by another run" in proc.stderr and "the first run" in proc.stderr
    assert not (run_dir / "config.json").exists()
