"""Who generation k−1 plays (the opponent pool), what generation k trains on (the replay
window), and the learner diagnostics, on hand-made run folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from metamon_sp import atomic
from metamon_sp.config import ConfigError, ModelConfig, load_config
from metamon_sp.diagnostics import auc, diagnose
from metamon_sp.model import PolicyModel
from metamon_sp.pipeline import Run, _apportion, opponent_pool, training_data
from metamon_sp.features import N_CAT
from tests.factories import make_traj


PLAIN = ["scale=smoke"]  # plain self-play, no replay window (the laptop scale sets both)


def _run(tmp_path, generations: int) -> Run:
    run = Run(tmp_path / "run-abc")
    for k in range(generations):
        (run.gen(k) / "filtered").mkdir(parents=True)
        (run.gen(k) / "filtered" / "manifest.json").write_text("{}")
    return run


def test_plain_self_play_needs_no_pool(tmp_path):
    assert opponent_pool(load_config(PLAIN), _run(tmp_path, 3), 3) is None


def test_pool_shares_battles_by_weight_and_records_the_learner(tmp_path):
    cfg = load_config([*PLAIN, "collect.battles=100", "pool.self_play=0.5", "pool.previous=0.3",
                       "pool.previous_k=2", "+pool.baselines.simple_heuristics=0.2"])
    run = _run(tmp_path, 5)
    pool = opponent_pool(cfg, run, 5)  # gen 4 plays itself, gens 2 and 3, the heuristic
    assert [(m.name, m.battles, m.record) for m in pool] == [
        ("self", 50, "both"), ("gen_002", 15, "p1"), ("gen_003", 15, "p1"),
        ("simple_heuristics", 20, "p1")]
    assert pool[1].spec == run.spec(2)
    first = opponent_pool(cfg, run, 1)  # generation 1: nobody earlier, weights renormalised
    assert [(m.name, m.battles) for m in first] == [("self", 71), ("simple_heuristics", 29)]


def test_prioritised_pool_favours_the_generations_that_beat_the_current_one(tmp_path):
    cfg = load_config([*PLAIN, "collect.battles=100", "pool.self_play=0", "pool.previous=1",
                       "pool.previous_k=2", "pool.prioritised=true"])
    run = _run(tmp_path, 4)
    atomic.write_json(run.gen(3) / "eval" / "summary.json", {"opponents": {
        "run-abc/gen-001": {"win_rate": 0.9}, "run-abc/gen-002": {"win_rate": 0.4}}})
    pool = {m.name: m.battles for m in opponent_pool(cfg, run, 4)}
    assert pool["gen_002"] > 4 * pool["gen_001"] and sum(pool.values()) == 100


def test_pool_weights_are_checked():
    with pytest.raises(ConfigError, match="pool.self_play"):
        load_config([*PLAIN, "pool.self_play=0"])  # nobody to play
    with pytest.raises(ConfigError, match="pool.baselines.random"):
        load_config([*PLAIN, "+pool.baselines.random=-1"])


def test_apportion_keeps_the_total():
    assert sorted(_apportion(10, [1 / 3] * 3)) == [3, 3, 4]
    assert sum(_apportion(7, [0.5, 0.25, 0.25])) == 7


def test_replay_window_reaches_generation_zero_with_age_weights(tmp_path):
    run = _run(tmp_path, 4)
    cfg = load_config([*PLAIN, "mix_previous_generations=3", "mix_age_decay=0.5"])
    dirs, weights = training_data(cfg, run, 3)
    assert dirs == [run.gen(j) / "filtered" for j in (3, 2, 1, 0)]
    assert weights == [1.0, 0.5, 0.25, 0.125]
    assert training_data(load_config(PLAIN), run, 3) == ([run.gen(3) / "filtered"], [1.0])
    down = load_config([*PLAIN, "mix_previous_generations=3", "mix_age_decay=0.5",
                        "mix_bootstrap_weight=0.5"])
    assert training_data(down, run, 3)[1] == [1.0, 0.5, 0.25, 0.0625]
    out = load_config([*PLAIN, "mix_previous_generations=3", "mix_bootstrap_weight=0"])
    assert training_data(out, run, 1) == ([run.gen(1) / "filtered"], [1.0])


def test_auc_by_hand():
    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert auc(np.array([1.0, 1.0]), np.array([0, 1])) == 0.5
    assert auc(np.array([1.0, 2.0]), np.array([1, 1])) is None


def test_diagnose_reports_every_figure():
    torch.manual_seed(0)
    model = PolicyModel(ModelConfig(context=4))
    trajs = [make_traj(f"battle-gen1ou-{i}", steps=9, outcome=1 if i % 2 else -1, seed=i,
                       obs_cat=np.zeros((9, N_CAT), np.int16)) for i in range(6)]
    d = diagnose(model, trajs)
    assert d["trajectories"] == 6 and d["decisions"] == 54
    assert 0 <= d["value_auc"] <= 1 and set(d["value_auc_by_turn"]) >= {"0-4", "5-9"}
    assert 0 <= d["adv_positive_frac"] <= 1 and 0 <= d["agreement"] <= 1 and d["entropy"] > 0
    json.dumps(d)  # goes to diagnostics.json as it is


def test_collection_explores_at_its_own_temperature(tmp_path):
    from metamon_sp.pipeline import selfplay_config

    cfg = load_config(["collect.temperature=2.0", "policy.temperature=1.0", "policy.greedy=true",
                       "collect.epsilon=0.1", "collect.explore=critic"])
    ccfg = selfplay_config(cfg, _run(tmp_path, 2), 2)
    assert ccfg.policy.temperature == 2.0 and not ccfg.policy.greedy  # training data
    assert ccfg.policy.epsilon == 0.1 and ccfg.policy.explore == "critic"
    assert cfg.policy.temperature == 1.0 and cfg.policy.greedy  # evaluation as configured
    assert cfg.policy.epsilon == 0.0 and cfg.policy.explore == "uniform"
    # the learner's search settings travel to its collection only
    cfg = load_config(["collect.search_rate=0.2", "collect.search_z=2", "collect.search_top_k=3",
                       "collect.search_hidden=true"])
    run = _run(tmp_path / "search", 2)
    ccfg = selfplay_config(cfg, run, 2)
    assert (ccfg.policy.search_rate, ccfg.policy.search_z, ccfg.policy.search_top_k) == (0.2, 2, 3)
    assert ccfg.policy.search_pool == cfg.team_set == "gen1ou"  # unseen foes drawn from training
    assert cfg.policy.search_rate == 0 and not cfg.policy.search_pool
    hidden_off = selfplay_config(load_config(["collect.search_rate=0.2"]), run, 2)
    assert hidden_off.policy.search_pool == ""
