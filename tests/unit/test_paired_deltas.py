"""Paired Elo differences between generations: mirrored team pairs resample as one unit, and a
difference takes its interval from the same resamples as both ratings (the anchor's noise
cancels)."""

from __future__ import annotations

import json
import random

import pytest

from metamon_sp.config import load_config
from metamon_sp.elo import DELTAS_TITLE, generation_deltas, pair_clusters, rate, rate_rows
from metamon_sp.pipeline import Run, final_result, rate_generation
from metamon_sp.report import build_report
from metamon_sp.results import append_games


def game(a: str, b: str, score: float, folder: str, half: str, i: int, a_team: str, b_team: str
         ) -> dict:
    """A results row as evaluate.play_pairing writes it (`a`'s point of view)."""
    source = f"{folder}/a-is-{half}"
    return {"game_id": f"{source}/battle-gen1ou-{i}", "a": a, "b": b, "a_spec": a, "b_spec": b,
            "a_side": half, "a_team": a_team, "b_team": b_team, "score_a": score, "turns": 30,
            "a_decisions": 30, "a_invalid": 0, "b_decisions": 30, "b_invalid": 0,
            "truncated": False, "source": source}


def pairing(a: str, b: str, elo_a: float, elo_b: float, n_pairs: int, folder: str,
            rng: random.Random, correlated: bool = False) -> list[dict]:
    """n_pairs mirrored pairs of a against b with known strengths: the first half has a as p1
    with the pair's first team, the second half swaps seats (and so teams)."""
    p = 1 / (1 + 10 ** ((elo_b - elo_a) / 400))
    first = [float(rng.random() < p) for _ in range(n_pairs)]
    second = first if correlated else [float(rng.random() < p) for _ in range(n_pairs)]
    teams = [(f"{folder}:T{2 * i}", f"{folder}:T{2 * i + 1}") for i in range(n_pairs)]
    return ([game(a, b, s, folder, "p1", i, ta, tb)
             for i, (s, (ta, tb)) in enumerate(zip(first, teams))]
            + [game(a, b, s, folder, "p2", i, tb, ta)
               for i, (s, (ta, tb)) in enumerate(zip(second, teams))])


def test_cluster_keys_pair_mirrored_games_and_keep_repeated_team_pairs_apart():
    f = "runs/r/gen-001/eval/games/random"
    rows = [game("g1", "random", 1.0, f, "p1", 1, "X", "Y"),
            game("g1", "random", 0.0, f, "p1", 2, "Z", "W"),
            game("g1", "random", 1.0, f, "p1", 3, "X", "Y"),  # the same team pair drawn again
            game("g1", "random", 0.0, f, "p2", 1, "Y", "X"),
            game("g1", "random", 1.0, f, "p2", 2, "W", "Z"),
            game("g1", "random", 1.0, f, "p2", 3, "Y", "X"),
            game("g1", "random", 1.0, "runs/r/tournament/g1-vs-random", "p1", 1, "X", "Y"),
            game("g1", "random", 1.0, f, "p1", 4, "Q", "R")]  # its mirror was never played
    c = pair_clusters(rows)
    assert c[0] == c[3] and c[1] == c[4] and c[2] == c[5]
    assert len({c[0], c[1], c[2], c[6], c[7]}) == 5
    assert len(set(c)) == 5
    # rows with no half in their source (or no teams) are each their own cluster
    assert len(set(pair_clusters([{"a": "x", "b": "y", "score_a": 1.0}] * 3))) == 3


def test_without_clusters_each_game_is_its_own_unit_and_order_does_not_matter():
    rng = random.Random(0)
    rows = pairing("x", "random", 1200, 1000, 20, "f", rng)
    games = [(r["a"], r["b"], r["score_a"]) for r in rows]
    plain, singletons = rate(games, bootstrap=30), rate(games, bootstrap=30,
                                                        clusters=list(range(len(games))))
    assert plain.to_dict() == singletons.to_dict() and plain.units == len(games)
    clusters = pair_clusters(rows)
    order = list(range(len(games)))
    random.Random(1).shuffle(order)
    a = rate(games, bootstrap=30, clusters=clusters)
    b = rate([games[i] for i in order], bootstrap=30, clusters=[clusters[i] for i in order])
    assert a.to_dict() == b.to_dict() and a.units == 20
    with pytest.raises(ValueError, match="cluster keys"):
        rate(games, clusters=[0])


def weak_anchor_rows(elo_g1: float, seed: int = 0) -> list[dict]:
    """Few games against the anchor, many between the generations."""
    rng = random.Random(seed)
    return (pairing("g0", "random", 1150, 1000, 10, "e0/random", rng)
            + pairing("g1", "random", elo_g1, 1000, 10, "e1/random", rng)
            + pairing("g1", "g0", elo_g1, 1150, 200, "e1/g0", rng))


def test_paired_delta_is_narrow_where_absolute_intervals_are_wide():
    r = rate_rows(weak_anchor_rows(elo_g1=1250), bootstrap=200)
    g0, g1 = r.by_player()["g0"], r.by_player()["g1"]
    assert g1.ci_low < g0.ci_high  # absolute intervals overlap: no step looks significant
    point, lo, hi = r.delta("g1", "g0")
    assert point == pytest.approx(g1.elo - g0.elo, abs=0.11)
    assert 0 < lo < point < hi  # paired, the 100-Elo step is significant
    assert abs(point - 100) < 50
    assert hi - lo < 0.5 * min(g0.ci_high - g0.ci_low, g1.ci_high - g1.ci_low)


def test_paired_delta_interval_holds_zero_for_equal_players():
    r = rate_rows(weak_anchor_rows(elo_g1=1150), bootstrap=200)
    point, lo, hi = r.delta("g1", "g0")
    assert lo < 0 < hi
    assert r.delta("g0", "g1") == pytest.approx((-point, -hi, -lo), abs=0.11)  # antisymmetric


def test_resampling_pairs_widens_intervals_when_a_pairs_games_agree():
    rows = pairing("x", "random", 1100, 1000, 60, "f", random.Random(0), correlated=True)
    games = [(r["a"], r["b"], r["score_a"]) for r in rows]
    by_game = rate(games, bootstrap=300).by_player()["x"]
    by_pair = rate_rows(rows, bootstrap=300).by_player()["x"]
    assert by_pair.elo == by_game.elo  # same games, same fit; only the resampling differs
    # perfectly correlated pairs: the effective sample is the pairs, so the width grows by ≈ √2
    assert (by_pair.ci_high - by_pair.ci_low) > 1.2 * (by_game.ci_high - by_game.ci_low)


def test_generation_deltas_rows():
    r = rate_rows(weak_anchor_rows(elo_g1=1250), bootstrap=50)
    rows = generation_deltas(r, ["g0", "g1", "g2"])  # g2 not rated yet: no row
    assert [d["player"] for d in rows] == ["g1"]
    d = rows[0]
    assert d["vs_previous"] == d["vs_gen0"] == r.delta("g1", "g0")[0]
    assert d["vs_previous_ci"] == list(r.delta("g1", "g0")[1:])


def test_ratings_files_metrics_final_result_and_report_carry_the_deltas(tmp_path):
    run = Run(tmp_path / "run-abc")
    names = [f"run-abc/gen-{k:03d}" for k in range(3)]
    rng = random.Random(0)
    rows = (pairing(names[0], "random", 1150, 1000, 6, str(run.gen(0) / "eval/games/random"), rng)
            + pairing(names[1], names[0], 1250, 1150, 30, str(run.gen(1) / "eval/games/g0"), rng)
            + pairing(names[2], names[1], 1350, 1250, 30, str(run.gen(2) / "eval/games/g1"), rng)
            + pairing(names[2], "random", 1350, 1000, 6, str(run.gen(2) / "eval/games/r"), rng))
    append_games(run.gen(2) / "eval" / "games.parquet", rows)
    for k in range(3):
        (run.checkpoint(k) / "checkpoint.json").parent.mkdir(parents=True)
        (run.checkpoint(k) / "checkpoint.json").write_text("{}")
    cfg = load_config(["elo.games_per_pair=0", "elo.bootstrap=40"])
    rate_generation(cfg, run, 2)

    doc = json.loads((run.dir / "ratings.json").read_text())
    assert doc["resampled_units"] == len(rows) // 2
    assert [d["player"] for d in doc["deltas"]] == names[1:]
    last = doc["deltas"][-1]
    assert last["vs_previous_ci"][0] <= last["vs_previous"] <= last["vs_previous_ci"][1]
    md = (run.gen(2) / "ratings.md").read_text()
    assert DELTAS_TITLE in md and f"| {names[2]} | {last['vs_previous']:+.0f}" in md

    metrics = json.loads((run.dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert metrics["elo_delta_prev/gen-002"] == last["vs_previous"]
    assert metrics["elo_delta_gen0_ci_low/gen-002"] == last["vs_gen0_ci"][0]
    assert "elo_delta_gen0/gen-001" in metrics and "elo_delta_prev/gen-000" not in metrics

    final = final_result(run)
    assert (final["elo_delta_gen0"], final["elo_delta_gen0_ci_low"],
            final["elo_delta_gen0_ci_high"]) == (last["vs_gen0"], *last["vs_gen0_ci"])
    assert final["elo_delta_prev"] == last["vs_previous"]

    report = build_report(run.dir)
    assert (report.parent / "deltas.png").stat().st_size > 0
    text = report.read_text()
    assert DELTAS_TITLE in text and "deltas.png" in text and names[1] in text
