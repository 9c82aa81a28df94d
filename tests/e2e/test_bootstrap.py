"""Generation 0 from the command line: bootstrap, then self-play and play against random."""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.test_cli import run

pytestmark = pytest.mark.timeout(900)


def test_bootstrap_smoke_then_self_play(tmp_path):
    out = run("bootstrap", "scale=smoke", f"out={tmp_path / 'g0'}")
    ckpt = tmp_path / "g0" / "train" / "checkpoint"
    assert f"checkpoint: {ckpt}" in out
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    assert meta["generation"] == 0 and meta["parent"] is None and meta["step"] == 60
    assert (tmp_path / "g0" / "train" / "metrics.jsonl").exists()
    out = run("collect", f"collect.p1=checkpoint:{ckpt}", "collect.p2=self", "collect.battles=6",
              f"out={tmp_path / 'sp'}")
    assert "invalid-order rate: 0.0000" in out
    manifest = json.loads((tmp_path / "sp" / "manifest.json").read_text())
    assert manifest["battles"] == 6 and manifest["trajectories"] == 12


def test_laptop_generation_zero_beats_random(tmp_path):
    """The quality gate of the default CPU scale's recipe: ≥ 90% of 100 battles against random
    (with half its battles and a third of its steps, to keep the suite's time; the full recipe
    is measured by benchmarks/strength.py)."""
    run("bootstrap", f"out={tmp_path / 'g0'}", "train.progress=false", "bootstrap.battles=500",
        "bootstrap.train_steps=1000", timeout=800)
    ckpt = tmp_path / "g0" / "train" / "checkpoint"
    out = run("collect", f"collect.p1=checkpoint:{ckpt}", "collect.p2=random",
              "collect.battles=100", "collect.record=p1", f"out={tmp_path / 'eval'}")
    rate = float(re.search(r"p1 win rate .*: ([0-9.]+)", out).group(1))
    print(f"generation-0 win rate vs random: {rate}")
    assert rate >= 0.9
