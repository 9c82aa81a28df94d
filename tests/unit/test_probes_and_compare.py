from __future__ import annotations

import json

import numpy as np

from metamon_sp import dex
from metamon_sp.cli import split_args
from metamon_sp.compare import group_runs
from metamon_sp.features import FACTS, FEATURE_SPEC, N_CAT
from metamon_sp.pipeline import Run
from metamon_sp.probes import behaviour_probes, position_class
from tests.factories import make_traj

MOVE0 = FEATURE_SPEC.cat.index("move0_id")
MOVE1 = FEATURE_SPEC.cat.index("move1_id")


def _facts(own_fainted: int, opp_fainted: int) -> np.ndarray:
    row = np.zeros(len(FACTS), np.float32)
    row[FACTS.index("own_hp")], row[FACTS.index("opp_hp")] = 6 - own_fainted, 6 - opp_fainted
    row[FACTS.index("own_fainted")], row[FACTS.index("opp_fainted")] = own_fainted, opp_fainted
    return row


def test_position_classes():
    assert position_class(_facts(3, 0)) == "lost"
    assert position_class(_facts(0, 3)) == "won"
    assert position_class(_facts(1, 1)) == "even"


def test_probes_count_recovery_status_and_switches_by_position():
    vocab = dex.move_vocab()
    steps = 4
    cat = np.zeros((steps, N_CAT), np.int16)
    cat[:, MOVE0] = vocab["recover"]
    cat[:, MOVE1] = vocab["thunderwave"]
    facts = np.stack([_facts(3, 0), _facts(3, 0), _facts(0, 3), _facts(0, 3), _facts(0, 3)])
    t = make_traj(steps=steps, obs_cat=cat, facts=facts,
                  actions=np.array([0, 0, 1, 5], np.int8))  # recover, recover | t-wave, switch
    p = behaviour_probes([t])
    assert p["lost"] == {"decisions": 2, "recovery_rate": 1.0, "status_rate": 0.0,
                         "switch_rate": 0.0, "attack_rate": 0.0}
    assert p["won"]["status_rate"] == 0.5 and p["won"]["switch_rate"] == 0.5
    assert p["move_diversity"]["distinct_moves"] == 2


def _fake_run(tmp_path, name, **cfg):
    d = tmp_path / name
    d.mkdir()
    base = {"seed": 0, "run_name": name, "damping": {"name": "none", "kl_coef_init": 0.0},
            "reward": {"name": "binary"}}
    base.update(cfg)
    (d / "config.json").write_text(json.dumps(base))
    return Run(d)


def test_runs_differing_only_by_seed_form_one_group(tmp_path):
    a = _fake_run(tmp_path, "a")
    b = _fake_run(tmp_path, "b", seed=1)
    c = _fake_run(tmp_path, "c", damping={"name": "dynamic", "kl_coef_init": 0.05})
    groups = group_runs([a, b, c])
    assert {k: [r.dir.name for r in v] for k, v in groups.items()} == {
        "damping.name=none": ["a", "b"], "damping.name=dynamic": ["c"]}


def test_report_and_compare_take_run_folders():
    io, overrides = split_args("compare", ["runs/a", "runs/b", "elo.games_per_pair=4"])
    assert io["runs"] == "runs/a,runs/b" and overrides == ["elo.games_per_pair=4"]
