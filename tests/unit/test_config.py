from __future__ import annotations

import pytest

from metamon_sp.config import ConfigError, load_config


def test_defaults_and_groups_compose():
    cfg = load_config()
    assert cfg.format == "gen1ou" and cfg.filter.max_invalid_rate == 0.05
    smoke = load_config(["scale=smoke", "reward=binary"])
    assert smoke.scale_name == "smoke" and smoke.reward.name == "binary"
    assert smoke.collect.battles < cfg.collect.battles


@pytest.mark.parametrize("override, named", [
    ("collect.battles=abc", "collect.battles"),          # wrong type
    ("collect.batles=3", "collect.batles"),               # unknown key
    ("collect.battles=0", "collect.battles"),             # out of range
    ("filter.max_invalid_rate=1.5", "filter.max_invalid_rate"),
    ("collect.record=nobody", "collect.record"),
    ("reward=nonsense", "reward"),                        # unknown group option
    ("format=gen9ou", "format"),
    ("train.first_steps=-1", "train.first_steps"),
    ("train.first_lr=-0.001", "train.first_lr"),
    ("train.critic_warmup=-1", "train.critic_warmup"),
    ("train.first_critic_warmup=-5", "train.first_critic_warmup"),
    ("train.lr_schedule=linear", "train.lr_schedule"),
    ("train.lr_final=1.5", "train.lr_final"),
    ("train.q_beta=-1", "train.q_beta"),
    ("damping.generations=-1", "damping.generations"),
])
def test_bad_values_fail_naming_the_key(override, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config([override])


def test_hash_is_stable_and_tracks_values():
    a, b = load_config(["seed=1"]), load_config(["seed=1"])
    assert a.hash() == b.hash() != load_config(["seed=2"]).hash()


@pytest.mark.parametrize("override", [
    "eval.battles=7", "eval.opponents=[random]", "elo.bootstrap=3", "elo.games_per_pair=2",
    "train.progress=false", "train.threads=1", "train.checkpoint_every=7",
    "collect.shard_battles=3", "policy.threads=2", "generations=9", "run_name=other",
])
def test_what_only_changes_evaluation_or_speed_keeps_the_run_folder(override):
    assert load_config([override]).hash() == load_config().hash()


@pytest.mark.parametrize("override", [
    "collect.battles=7", "train.steps=7", "reward=binary", "damping=dynamic", "policy.temperature=0.5",
    "model=small", "bootstrap.battles=8",
])
def test_what_changes_data_or_checkpoints_changes_the_run_folder(override):
    assert load_config([override]).hash() != load_config().hash()


def test_eval_hash_tracks_evaluation_settings_only():
    base = load_config()
    assert load_config(["eval.battles=7"]).eval_hash() != base.eval_hash()
    assert load_config(["elo.bootstrap=3"]).eval_hash() != base.eval_hash()
    assert load_config(["train.steps=7"]).eval_hash() == base.eval_hash()


def test_dataset_hash_ignores_the_battle_target_only():
    from metamon_sp.collect import dataset_hash

    assert dataset_hash(load_config(["collect.battles=7"])) == dataset_hash(load_config())
    assert dataset_hash(load_config(["collect.p2=self"])) != dataset_hash(load_config())


def test_auto_runner_uses_processes_for_several_instances():
    assert load_config().resolved_runner == "threads"
    assert load_config(["collect.parallel_instances=2"]).resolved_runner == "processes"
    assert load_config(["collect.parallel_instances=2", "runner=dask"]).resolved_runner == "dask"


def test_group_choices_come_from_the_conf_folder():
    from metamon_sp.config import config_choices

    assert config_choices("scale") == ("gpu", "laptop", "smoke")
    assert "binary" in config_choices("reward")
    with pytest.raises(ConfigError, match="nonexistent"):
        config_choices("nonexistent")


def test_a_knob_added_later_leaves_old_runs_folders_alone_at_its_default():
    # runs made before a knob existed (train.precision, train.adv_margin, collect.explore, …)
    # keep their hash while it stays at the value that reproduces the old behaviour
    from metamon_sp.config import _digest, _without, EVAL_KEYS, HASH_OMITTED_AT, RUN_KEYS, SPEED_KEYS
    old_values = [f"{k}={v}" for k, v in HASH_OMITTED_AT.items()]
    cfg = load_config(old_values)
    old = _without(cfg.to_dict(), (*RUN_KEYS, *EVAL_KEYS, *SPEED_KEYS, *HASH_OMITTED_AT))
    assert cfg.hash() == _digest(old)
    for other in ("train.precision=bf16", "train.adv_margin=0.003", "collect.explore=critic",
                  "policy.explore=critic", "gate.battles=200", "gate.candidates=[0.5,1.0]",
                  "gate.min_win_rate=0.55", "train.first_steps=1500", "train.first_lr=1e-4",
                  "damping.generations=1", "train.critic_warmup=500",
                  "train.first_critic_warmup=1500"):
        assert load_config([*old_values, other]).hash() != cfg.hash(), other
    with pytest.raises(ConfigError, match=r"collect\.explore"):
        load_config(["collect.explore=greedy"])
    with pytest.raises(ConfigError, match=r"train\.precision"):
        load_config(["train.precision=fp16"])


def test_the_strong_experiment_is_the_strength_benchmarks_recipe():
    recipe = ["train.steps=4500", "train.augment=true", "train.first_critic_warmup=3000",
              "bootstrap.train_steps=3000", "collect.battles=2000", "train.compile=true",
              "gate.battles=400", "gate.lineage=learner"]
    strong = load_config(["experiment=strong"])
    assert strong.hash() == load_config(recipe).hash() != load_config().hash()
    assert strong.run_name == "strong" and strong.train.compile  # pinned: laptop does not


def test_only_the_first_fine_tune_takes_the_first_steps_and_lr():
    from metamon_sp.pipeline import generation_train_config

    cfg = load_config(["train.steps=4500", "train.epochs=2", "train.first_steps=1500",
                       "train.first_lr=1e-4"])
    first = generation_train_config(cfg, 1).train
    assert (first.steps, first.epochs, first.lr) == (1500, 0.0, 1e-4)  # steps, not epochs
    for k in (0, 2, 5):
        assert generation_train_config(cfg, k) is cfg
    plain = load_config()
    assert generation_train_config(plain, 1) is plain
    lr_only = generation_train_config(load_config(["train.first_lr=1e-4"]), 1).train
    assert (lr_only.steps, lr_only.lr) == (plain.train.steps, 1e-4)
    warm = load_config(["train.critic_warmup=200", "train.first_critic_warmup=1500"])
    assert generation_train_config(warm, 1).train.critic_warmup == 1500
    assert generation_train_config(warm, 2) is warm and warm.train.critic_warmup == 200


def test_damping_generations_damps_the_first_fine_tunes_only():
    from metamon_sp.config import DampingConfig
    from metamon_sp.pipeline import generation_train_config

    cfg = load_config(["damping=dynamic", "damping.generations=1"])
    assert generation_train_config(cfg, 1) is cfg and cfg.damping.kl_coef_init > 0
    later = generation_train_config(cfg, 2)
    assert later.damping == DampingConfig() and later.train == cfg.train
    every = load_config(["damping=dynamic"])
    assert all(generation_train_config(every, k) is every for k in (1, 2, 5))
