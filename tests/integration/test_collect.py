"""Real battles on the direct backend (the default) and on a real local server, each started by
the code under test."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from metamon_sp.collect import CollectError, collect
from metamon_sp.config import load_config
from metamon_sp.filter import filter_datasets
from metamon_sp.trajectories import Dataset

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def heuristic_vs_random(tmp_path_factory):
    out = tmp_path_factory.mktemp("collect") / "data"
    cfg = load_config(["collect.battles=20", "collect.p1=simple_heuristics", "collect.p2=random",
                       "collect.shard_battles=8"])
    return cfg, out, collect(cfg, out, show_progress=False)


def test_collect_writes_the_full_count_with_no_invalid_orders(heuristic_vs_random):
    cfg, out, summary = heuristic_vs_random
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["battles"] == summary["battles"] == 20
    assert manifest["trajectories"] == 40  # both perspectives
    assert manifest["invalid_actions"] == 0 and summary["invalid_rate"] == 0.0
    assert summary["p1_win_rate"] >= 0.8
    assert [s["file"] for s in manifest["shards"]] == [f"i00-0000{i}.parquet" for i in range(3)]
    assert (out / "collect_summary.json").exists() and (out / "logs" / "sim-i00.log").exists()


def test_recorded_trajectories_are_consistent(heuristic_vs_random):
    _, out, _ = heuristic_vs_random
    trajs = list(Dataset(out))
    by_battle: dict[str, dict[str, object]] = {}
    for t in trajs:
        by_battle.setdefault(t.battle_id, {})[t.side] = t
        assert t.steps > 0 and t.facts.shape[0] == t.steps + 1
        assert all(t.masks[i, a] for i, a in enumerate(t.actions)), "a recorded action was illegal"
        assert not t.team.startswith("custom:"), "team not identified in the team set"
        assert t.player == ("simple_heuristics" if t.side == "p1" else "random")
        assert not t.truncated and not t.errors
    for sides in by_battle.values():
        p1, p2 = sides["p1"], sides["p2"]
        assert p1.outcome == -p2.outcome  # 0 both: a real tie (e.g. an Explosion double KO)
        assert p1.opponent_team == p2.team and p2.opponent_team == p1.team
        assert p1.turns == p2.turns
    # the final facts agree with the result: a loser has no Pokémon left, a winner has some
    for t in trajs:
        own_fainted, opp_fainted = t.facts[-1][4], t.facts[-1][5]
        if t.outcome:
            assert (own_fainted == 6) == (t.outcome < 0) and (opp_fainted == 6) == (t.outcome > 0)
        else:
            assert own_fainted == opp_fainted == 6


def test_balanced_filter_gives_equal_wins_and_losses(heuristic_vs_random, tmp_path):
    cfg, out, _ = heuristic_vs_random
    from dataclasses import replace
    cfg = replace(cfg, filter=replace(cfg.filter, balance_outcomes=True))
    report = filter_datasets(cfg, [out], tmp_path / "filtered")
    assert report["output"]["wins"] == report["output"]["losses"] > 0


def test_rerun_resumes_and_another_config_is_refused(heuristic_vs_random):
    cfg, out, _ = heuristic_vs_random
    again = collect(cfg, out, show_progress=False)
    assert again["battles_played"] == 0 and again["battles"] == 20
    with pytest.raises(CollectError, match="another config"):
        collect(load_config(["collect.battles=20", "seed=7"]), out, show_progress=False)


@pytest.mark.parametrize("backend,log,sims", [("direct", "sim", 1), ("showdown", "showdown", 1),
                                              ("direct", "sim-i00-s1", 2)])
def test_killed_server_mid_collection_still_yields_the_full_count(tmp_path, backend, log, sims):
    """A killed simulator or server (or one of an instance's simulators) loses only its battles
    in flight; collection completes."""
    out = tmp_path / "data"
    cfg = load_config(["collect.battles=30", "collect.concurrency=5", "collect.shard_battles=5",
                       "collect.p1=random", "collect.p2=random", f"collect.backend={backend}",
                       f"collect.simulators={sims}"])
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(collect(cfg, out, show_progress=False)))
    worker.start()
    pid_file = out / "logs" / (f"{log}.pid" if sims > 1 else f"{log}-i00.pid")
    deadline = time.monotonic() + 120
    while not list(out.glob("i00-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid_file.exists(), "no shard was written in time"
    os.killpg(int(pid_file.read_text()), signal.SIGKILL)
    worker.join(timeout=240)
    assert not worker.is_alive()
    assert result["battles"] == 30 and result["server_restarts"] >= 1
    trajs = list(Dataset(out))  # every shard reads back, both sides of each battle
    assert len(trajs) == 60 and len({t.battle_id for t in trajs}) == 30
    assert not any(t.truncated or t.errors for t in trajs)


@pytest.mark.parametrize("backend,log", [("direct", "sim"), ("showdown", "showdown")])
def test_parallel_instances_each_bring_their_own_server(tmp_path, backend, log):
    out = tmp_path / "data"
    cfg = load_config(["collect.battles=6", "collect.parallel_instances=2", "collect.record=p1",
                       "collect.p1=max_base_power", "collect.p2=self", "collect.concurrency=3",
                       f"collect.backend={backend}"])
    summary = collect(cfg, out, show_progress=False)
    assert summary["battles"] == 6
    assert {p.name.split("-")[0] for p in out.glob("*.parquet")} == {"i00", "i01"}
    assert len(list((out / "logs").glob(f"{log}-i0*.log"))) == 2
    trajs = list(Dataset(out))
    assert len(trajs) == 6 and {t.side for t in trajs} == {"p1"}
    assert {t.player for t in trajs} == {"max_base_power"} == {t.opponent for t in trajs}
    assert np.mean([t.steps for t in trajs]) > 5


def test_an_opponent_pool_records_the_learner_against_each_opponent(tmp_path):
    from metamon_sp.collect import Matchup

    out = tmp_path / "data"
    cfg = load_config(["collect.p1=simple_heuristics", "collect.p2=self", "collect.concurrency=4"])
    pool = [Matchup("self", "self", 4, "both"), Matchup("random", "random", 3, "p1"),
            Matchup("max_base_power", "max_base_power", 3, "both")]
    summary = collect(cfg, out, show_progress=False, pool=pool)
    assert summary["battles"] == 10 and [m["name"] for m in summary["pool"]] == \
        ["self", "random", "max_base_power"]
    trajs = list(Dataset(out))
    by_opponent: dict[str, list] = {}
    for t in trajs:
        by_opponent.setdefault((t.player, t.opponent), []).append(t)
    # self-play: both sides are the learner; random: only the learner's side; kept: both sides
    assert len(by_opponent[("simple_heuristics", "simple_heuristics")]) == 8
    assert len(by_opponent[("simple_heuristics", "random")]) == 3
    assert len(by_opponent[("simple_heuristics", "max_base_power")]) == 3
    assert len(by_opponent[("max_base_power", "simple_heuristics")]) == 3
    assert sorted({p.name.rsplit("-", 1)[0] for p in out.glob("*.parquet")}) == \
        ["i00.vs_max_base_power", "i00.vs_random", "i00.vs_self"]
    assert json.loads((out / "manifest.json").read_text())["meta"]["pool"] == summary["pool"]
    again = collect(cfg, out, show_progress=False, pool=pool)  # resumes: nothing left to play
    assert again["battles_played"] == 0 and again["battles"] == 10
