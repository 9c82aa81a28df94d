"""A Hydra multirun as the README writes it, with the joblib launcher: one sweep folder with
Hydra's record and a table of both runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.timeout(900)
ROOT = Path(__file__).resolve().parents[2]


def test_joblib_multirun_leaves_one_sweep_folder_with_a_table(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    proc = subprocess.run([sys.executable, "-m", "flows.selfplay", "-m", "hydra/launcher=joblib",
                           "scale=smoke", "generations=1", "seed=0,1", f"runs_dir={tmp_path}",
                           "eval.opponents=[random]", "elo.games_per_pair=0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=850)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "database is locked" not in out
    [sweep] = list((tmp_path / "sweeps").iterdir())
    assert (sweep / "multirun.yaml").exists()
    for job, seed in (("0", "seed=0"), ("1", "seed=1")):
        assert seed in yaml.safe_load((sweep / job / ".hydra" / "overrides.yaml").read_text())
    table = pd.read_parquet(sweep / "sweep.parquet")
    assert len(table) == 2 and len(pd.read_csv(sweep / "sweep.csv")) == 2
    assert set(table["param/seed"]) == {"0", "1"} and set(table["status"]) == {"completed"}
    assert table["config_hash"].nunique() == 2  # the seed changes results, hence the folder
    for _, row in table.iterrows():
        assert row["elo_ci_low"] <= row["elo"] <= row["elo_ci_high"]
        assert 0 <= row["win_rate/random"] <= 1 and row["wall_s"] > 0
        assert Path(row["run_dir"]).parent == tmp_path
    assert out.count("final: gen 1 Elo") == 2
