"""benchmarks/featurizer_bound.py: with a featurizer that computes only the mask, the players
decide exactly as with the real one (the bound it prints is about the same battles), in one
collecting process or in one per core (the mask-only featurizer reaches collect's instances)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "featurizer_bound.py"


@pytest.mark.parametrize("instances", [1, 2])
def test_the_mask_only_featurizer_plays_the_same_battles(instances):
    proc = subprocess.run([sys.executable, str(BENCH), "--battles", str(2 * instances + 1),
                           "--rounds", "1", "--instances", str(instances), "--ceiling"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{instances} instance(s)" in proc.stdout
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "vs" in line]
    assert len(rows) == 4 and sum("mask only" in r for r in rows) == 2
    assert "two-process ceiling" in proc.stdout
