"""benchmarks/featurizer_bound.py: with a featurizer that computes only the mask, the players
decide exactly as with the real one (the bound it prints is about the same battles)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "featurizer_bound.py"


def test_the_mask_only_featurizer_plays_the_same_battles():
    proc = subprocess.run([sys.executable, str(BENCH), "--battles", "3", "--rounds", "1"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "vs" in line]
    assert len(rows) == 4 and sum("mask only" in r for r in rows) == 2
