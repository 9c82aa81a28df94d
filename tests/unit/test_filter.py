from __future__ import annotations

import json

import pytest

from metamon_sp.config import load_config
from metamon_sp.filter import FilterError, filter_datasets
from metamon_sp.trajectories import Dataset, ShardWriter, write_manifest
from tests.factories import make_battle, make_traj


def _write(path, trajs):
    ShardWriter(path, "i00").write(trajs)
    write_manifest(path)
    return path


def test_drops_each_kind_of_bad_trajectory(tmp_path):
    good = make_battle(1)
    bad = [
        make_traj("b-err", errors=["server crashed"]),
        make_traj("b-trunc", truncated=True, outcome=0),
        make_traj("b-invalid", steps=10, invalid_actions=1),   # 0.1 > 0.05
        make_traj("b-short", steps=2, turns=2),
    ]
    data = _write(tmp_path / "in", good + bad)
    cfg = load_config(["filter.min_turns=3"])
    report = filter_datasets(cfg, [data], tmp_path / "out")
    assert report["dropped"] == {"errors": 1, "truncated": 1, "invalid_rate": 1, "too_short": 1}
    kept = list(Dataset(tmp_path / "out"))
    assert {t.battle_id for t in kept} == {"battle-gen1ou-1"}
    dropped = [json.loads(line) for line in (tmp_path / "out" / "filter_dropped.jsonl").open()]
    assert {d["reason"] for d in dropped} == {"errors", "truncated", "invalid_rate", "too_short"}


def test_balance_makes_wins_equal_losses(tmp_path):
    trajs = [make_traj(f"b{i}", outcome=1, seed=i) for i in range(7)]
    trajs += [make_traj(f"c{i}", outcome=-1, seed=i) for i in range(3)]
    data = _write(tmp_path / "in", trajs)
    report = filter_datasets(load_config(["filter.balance_outcomes=true"]), [data],
                             tmp_path / "out")
    assert report["output"]["wins"] == report["output"]["losses"] == 3
    assert report["dropped"] == {"balance_wins": 4}


def test_several_inputs_and_a_used_output_folder(tmp_path):
    a = _write(tmp_path / "a", make_battle(1))
    b = _write(tmp_path / "b", make_battle(2))
    report = filter_datasets(load_config(), [a, b], tmp_path / "out")
    assert report["output"]["battles"] == 2
    with pytest.raises(FilterError, match="already holds a dataset"):
        filter_datasets(load_config(), [a], tmp_path / "out")
