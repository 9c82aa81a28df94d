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
    # it exits if metamon_sp came from elsewhere, or if the battles were not on the server
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    # today's default backend is the direct one: a revision that has it plays on the server
    assert row["backend"] == "server @HEAD" and row["battles"] == 2
    assert row["decisions_per_s"] > 0


def test_an_unknown_revision_is_named():
    proc = subprocess.run([sys.executable, str(BENCH), "--baseline", "no-such-revision",
                           "--battles", "1", "--repeats", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "--baseline no-such-revision" in proc.stderr


def test_the_target_ratios_come_from_the_matching_rows():
    def row(p1, backend, concurrency, rate, instances=1, simulators=1):
        return {"p1": p1, "backend": backend, "instances": instances,
                "concurrency": concurrency, "simulators": simulators, "decisions_per_s": rate}

    rows = [row("random", "showdown", 10, 1000), row("policy", "showdown", 10, 500),
            row("random", "direct", 32, 1500), row("policy", "direct", 32, 1200),
            row("policy", "direct", 10, 9999), row("policy", "server @abc", 10, 400),
            row("policy", "direct", 32, 8888, simulators=2),
            row("sim alone (uniform random)", "node only", 10, 5000, instances=2, simulators=2)]
    got = _bench().targets(rows)
    assert len(got) == 4  # no rows with one instance per core: no such ratios
    rows += [row("random", "direct", 32, 2600, instances=2), row("policy", "direct", 32, 1400,
                                                                 instances=2)]
    got = _bench().targets(rows)
    assert got["direct, 2 instances, random play / the two-process ceiling"] == (2600 / 5000, 0.5)
    assert got["direct, 2 instances, policy play / showdown's policy play"] == (1400 / 500, 2.0)
    assert got["direct policy play / showdown's policy play"] == (1200 / 500, 2.0)
    assert got["direct policy play / showdown's random play"] == (1200 / 1000, 1.0)
    assert got["direct policy play / server @abc's policy play"] == (1200 / 400, 2.0)
    assert "direct policy play / server @abc's random play" not in got
    assert got["direct random play / the two-process ceiling"] == (1500 / 5000, 0.5)
    # a row of before the ceiling chose as ours: its ratio under its own name
    rows.append(row("sim alone (random)", "node only", 10, 4000, instances=2, simulators=2))
    old = "direct random play / the two-process ceiling of RandomPlayerAI as it comes"
    assert _bench().targets(rows)[old] == (1500 / 4000, 0.5)
    summary = _bench().paired_summary([2.1, 1.9, 2.0], 2.0)
    assert "3 rounds" in summary and "2 of 3 rounds at the target" in summary


def test_runs_written_with_json_pool_into_one_report(tmp_path):
    def row(p1, backend, concurrency, rate, instances=1):
        return {"p1": p1, "p2": "x", "backend": backend, "instances": instances,
                "concurrency": concurrency, "simulators": instances, "decisions_per_s": rate,
                "battles_per_s": 1.0, "with_setup": None, "decisions_per_battle": 50.0,
                "mean_batch": None, "python_cpu_us_per_decision": None,
                "python_peak_rss_mb": None, "backend_peak_rss_mb": 1, "profile_top": []}

    def one_round(policy):
        return [row("policy", "direct", 32, policy), row("policy", "showdown", 10, 500)]

    for i, rounds in enumerate(([one_round(1100)], [one_round(900), one_round(1000)])):
        (tmp_path / f"run{i}.json").write_text(json.dumps({"battles": 3, "rounds": rounds}))
    proc = subprocess.run([sys.executable, str(BENCH), "--pool", str(tmp_path / "run0.json"),
                           str(tmp_path / "run1.json")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "median of 3 interleaved rounds" in proc.stdout
    assert "showdown's policy play (target 2.0): 2.00 from the medians" in proc.stdout
    assert "range 1.80-2.20, 2 of 3 rounds at the target" in proc.stdout

    (tmp_path / "other.json").write_text("[]")
    proc = subprocess.run([sys.executable, str(BENCH), "--pool", str(tmp_path / "other.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "other.json: not a file this benchmark wrote" in proc.stderr
