"""The study's verdict on games whose true strengths are known: identical arms must give "no
difference", an arm whose learner is broken (its final generation is generation 0 again) must
be found weaker, and the interval must widen with seed-to-seed variance."""

from __future__ import annotations

import numpy as np
import pytest

from metamon_sp.elo import ELO_PER_NAT, rate
from metamon_sp.study import (NO_DIFFERENCE, permutation_p, t_quantile, verdict,
                              welch_interval)


def simulate(gains: dict[str, list[float]], games: int = 200, seed: int = 0):
    """Games of every run's final generation against the shared generation 0 and `random`, and
    of generation 0 against `random`, drawn from a Bradley–Terry model with these true gains."""
    rng = np.random.default_rng(seed)
    strength = {"random": -400.0, "gen0": 0.0}
    finals: dict[str, list[tuple[int, str]]] = {}
    for arm, values in gains.items():
        for s, g in enumerate(values):
            name = f"{arm}-s{s}/gen-003"
            strength[name] = g
            finals.setdefault(arm, []).append((s, name))
    rows = []
    for a in strength:
        for b in (["gen0", "random"] if a not in ("gen0", "random") else
                  ["random"] if a == "gen0" else []):
            p = 1 / (1 + np.exp(-(strength[a] - strength[b]) / ELO_PER_NAT))
            rows += [(a, b, float(rng.random() < p)) for _ in range(games)]
    return rate(rows, bootstrap=100, seed=seed), finals


def test_identical_arms_show_no_difference():
    rng = np.random.default_rng(1)
    same = [100 + 40 * rng.standard_normal() for _ in range(3)]
    other = [100 + 40 * rng.standard_normal() for _ in range(3)]
    ratings, finals = simulate({"control": same, "damped": other})
    [c] = verdict(ratings, "gen0", finals)["comparisons"]
    assert c["verdict"] == NO_DIFFERENCE
    assert c["ci"][0] < 0 < c["ci"][1]


def test_a_broken_learner_is_found_weaker():
    rng = np.random.default_rng(2)
    working = [150 + 40 * rng.standard_normal() for _ in range(3)]
    broken = [0.0, 0.0, 0.0]  # learning rate 0: every final generation is generation 0
    ratings, finals = simulate({"working": working, "broken": broken})
    result = verdict(ratings, "gen0", finals)
    [c] = result["comparisons"]
    assert c["verdict"] == "working > broken" and c["ci"][0] > 0
    assert abs(result["arms"]["broken"]["mean_gain"]) < 40
    assert c["bootstrap_ci"][0] > 0


def test_seed_variance_widens_the_interval():
    """Same mean gains, more spread between seeds: the verdict's interval must grow with it
    (a test on pooled games alone would not)."""
    def judged(gains):  # many games: what varies is the seeds, not the measurement
        ratings, finals = simulate(gains, games=1000)
        return verdict(ratings, "gen0", finals)["comparisons"][0]

    tight = judged({"a": [160, 150, 140], "b": [60, 50, 40]})
    loose = judged({"a": [260, 150, 40], "b": [160, 50, -60]})
    assert loose["ci"][1] - loose["ci"][0] > 2 * (tight["ci"][1] - tight["ci"][0])
    assert tight["verdict"] == "a > b" and loose["verdict"] == NO_DIFFERENCE


def test_three_arms_widen_each_interval_for_three_comparisons():
    """The reward study compares three arms pairwise: each interval is at 1 − 0.05/3, so a
    difference that two arms' 95% interval calls is not called among three."""
    gains = {"a": [120, 60, 90], "b": [40, -10, 20], "c": [50, 0, 30]}
    ratings, finals = simulate(gains, games=1000)
    two = verdict(ratings, "gen0", {k: finals[k] for k in ("a", "b")})
    three = verdict(ratings, "gen0", finals)
    assert three["pair_level"] == pytest.approx(1 - 0.05 / 3)
    [ab2] = two["comparisons"]
    ab3 = next(c for c in three["comparisons"] if c["arms"] == ["a", "b"])
    assert ab3["diff"] == ab2["diff"]
    assert ab3["ci"][0] < ab2["ci"][0] and ab3["ci"][1] > ab2["ci"][1]
    assert [c["arms"] for c in three["comparisons"]] == [["a", "b"], ["a", "c"], ["b", "c"]]


def test_one_seed_per_arm_cannot_give_a_verdict():
    ratings, finals = simulate({"a": [100.0], "b": [0.0]})
    [c] = verdict(ratings, "gen0", finals)["comparisons"]
    assert c["diff"] is None and "2 seeds" in c["verdict"]


def test_the_statistics_against_known_values():
    assert t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-3)
    assert t_quantile(0.975, 1e6) == pytest.approx(1.96, abs=1e-3)
    lo, hi = welch_interval([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert lo == pytest.approx(-hi) and hi == pytest.approx(2.7764 * np.sqrt(2 / 3), rel=1e-3)
    assert permutation_p([10, 11, 12], [0, 1, 2]) == pytest.approx(0.1)  # 2 of 20 relabellings
    assert permutation_p([1, 2, 3], [1, 2, 3]) == 1.0


def test_a_study_plan_from_the_command_line_and_from_the_flow_is_the_same_study(tmp_path):
    from metamon_sp.config import ConfigError
    from metamon_sp.pipeline import run_dir_for
    from metamon_sp.study import plan_study

    cli = plan_study(["study=damping", "seeds=3", "generations=3", "scale=laptop",
                      f"runs_dir={tmp_path}"])
    flow = plan_study(["study=damping", "study.seeds=3", "generations=3", "scale=laptop", "seed=0",
                       f"runs_dir={tmp_path}"])
    assert cli.dir == flow.dir and cli.seeds == flow.seeds == [0, 1, 2]
    assert cli.arms == {"control": ["damping=none"], "damped": ["damping=dynamic"]}
    control, damped = cli.arm_config("control", 1), cli.arm_config("damped", 1)
    assert (control.damping.name, damped.damping.name, damped.seed) == ("none", "dynamic", 1)
    assert run_dir_for(damped).parent == cli.dir / "runs"
    # generation 0 is made with the shared config: the control's, apart from the run's name
    assert cli.gen0_config().hash() == cli.arm_config("control", 0).hash()
    # more seeds or generations extend the same study; another seed is another study
    assert plan_study(["study=damping", "seeds=5", "generations=4", "scale=laptop",
                       f"runs_dir={tmp_path}"]).dir == cli.dir
    assert plan_study(["study=damping", "seed=7", f"runs_dir={tmp_path}"]).dir != cli.dir
    with pytest.raises(ConfigError, match="study=damping or study=reward"):
        plan_study([f"runs_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="changes model"):
        plan_study(["study.name=width", "++study.arms={a:['model.d_model=128'],b:[]}"])
