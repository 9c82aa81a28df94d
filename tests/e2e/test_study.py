"""A study on the smoke scale with real battles and training: arms × seeds from one generation 0
(the same checkpoint file in every run), an interruption and a resume that redoes nothing
finished, one rating scale, and the verdict for two arms with identical configs."""

from __future__ import annotations

import json

import pytest

from metamon_sp.pipeline import Run, run_dir_for, run_selfplay
from metamon_sp.study import NO_DIFFERENCE, STUDY_JSON, SHARED, plan_study, run_study

pytestmark = pytest.mark.timeout(900)


def test_identical_arms_share_generation_zero_resume_and_show_no_difference(tmp_path):
    # two arms with the same config: seeded battles and training make their runs of one seed
    # the same (no games between the finals, which would tell two copies apart by chance), so
    # the gains are equal seed by seed and the verdict must be "no difference"
    plan = plan_study(["study.name=same", "++study.arms={a:['reward=binary'],b:['reward=binary']}",
                       "seeds=2", "generations=1", "scale=smoke", "study.cross_games_per_pair=0",
                       "elo.games_per_pair=0", f"runs_dir={tmp_path}", "train.progress=false"])
    assert plan.runs() == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    played: list[str] = []

    def interrupted(cfg):
        played.append(cfg.run_name)
        if len(played) == 3:  # generation 0 and a-s0 finished; b-s0 is cut off
            raise KeyboardInterrupt("simulated interruption")
        return run_selfplay(cfg, show_progress=False)

    with pytest.raises(KeyboardInterrupt):
        run_study(plan, run_one=interrupted)
    first = Run(run_dir_for(plan.arm_config("a", 0)))
    stamp = (first.checkpoint(1) / "model.safetensors").stat().st_mtime_ns

    played.clear()
    result = run_study(plan, run_one=lambda cfg: (played.append(cfg.run_name),
                                                  run_selfplay(cfg, show_progress=False)))
    # resumed: every run asked for, nothing finished redone
    assert (first.checkpoint(1) / "model.safetensors").stat().st_mtime_ns == stamp
    study = json.loads((plan.dir / STUDY_JSON).read_text())
    hashes = {json.loads((Run(run_dir_for(plan.arm_config(arm, s))).gen(0) / SHARED).read_text())
              ["sha256"] for arm, s in plan.runs()}
    assert hashes == {study["gen0_sha256"]}  # the very same generation 0 in all four runs
    [comparison] = result["comparisons"]
    assert comparison["arms"] == ["a", "b"] and comparison["n"] == [2, 2]
    assert comparison["verdict"] == NO_DIFFERENCE
    gains = {arm: [g["gain"] for g in info["runs"]] for arm, info in result["arms"].items()}
    assert gains["a"] == gains["b"]  # same seeds, same configs: the same runs
    # generation 0's evaluation is played once per seed and shared by the other arm's run under
    # its own name (a replay would give the same games): each run's own ratings stay exact
    for s in (0, 1):
        a, b = (json.loads((Run(run_dir_for(plan.arm_config(arm, s))).dir / "ratings.json")
                           .read_text()) for arm in ("a", "b"))
        elo = [{r["player"].split("/")[-1]: r["elo"] for r in x["ratings"]} for x in (a, b)]
        assert elo[0] == elo[1] and "gen-000" in elo[0]
    text = (plan.dir / "verdict.md").read_text()
    assert "## Verdict" in text and NO_DIFFERENCE in text
    # all runs on one scale: one generation 0, four final generations
    players = {r["player"] for r in json.loads((plan.dir / "verdict.json").read_text())
               ["ratings"]["ratings"]}
    assert sum(p.endswith("/gen-000") for p in players) == 1
    assert sum(p.endswith("/gen-001") for p in players) == 4
