"""benchmarks/battle_backends.py: an older revision's server path runs from its own code (issue
10's targets are against the code of the day it was filed), and the target ratios are computed
from the rows it prints."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "battle_backends.py"


def _bench():
    spec = importlib.util.spec_from_file_location("battle_backends", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_revision_plays_from_its_own_copy_of_the_code(tmp_path):
    tree = _bench().export_revision("HEAD", tmp_path / "HEAD", "--baseline")
    assert (tree / "metamon_sp" / "collect.py").is_file()
    proc = subprocess.run([sys.executable, str(BENCH), "--revision-one", str(tree), "random",
                           "random", "2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]  # it exits if metamon_sp came from elsewhere
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row["backend"] == "server @HEAD" and row["battles"] == 2
    assert row["decisions_per_s"] > 0


def test_an_unknown_revision_is_named():
    proc = subprocess.run([sys.executable, str(BENCH), "--baseline", "no-such-revision",
                           "--battles", "1", "--repeats", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "--baseline no-such-revision" in proc.stderr


def test_the_target_ratios_come_from_the_matching_rows():
    def row(p1, backend, concurrency, rate, instances=1):
        return {"p1": p1, "backend": backend, "instances": instances,
                "concurrency": concurrency, "simulators": instances, "decisions_per_s": rate}

    rows = [row("random", "showdown", 10, 1000), row("policy", "showdown", 10, 500),
            row("random", "direct", 32, 1500), row("policy", "direct", 32, 1200),
            row("policy", "direct", 10, 9999), row("policy", "server @abc", 10, 400),
            row("sim alone (random)", "node only", 10, 5000, instances=2)]
    got = _bench().targets(rows)
    assert got["direct policy play / showdown's policy play (target 2.0)"] == 1200 / 500
    assert got["direct policy play / showdown's random play (target 1.0)"] == 1200 / 1000
    assert got["direct policy play / server @abc's policy play (target 2.0)"] == 1200 / 400
    assert "direct policy play / server @abc's random play (target 1.0)" not in got
    assert got["direct random play / the two-process ceiling (target 0.5)"] == 1500 / 5000
