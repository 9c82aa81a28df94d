from __future__ import annotations

import random

import numpy as np
import pytest

from metamon_sp.elo import ELO_PER_NAT, rate, rate_rows
from metamon_sp.results import pairing_summary, wilson

TRUE = {"random": 1000.0, "weak": 1100.0, "mid": 1300.0, "strong": 1600.0}


def synthetic_games(n_per_pair: int = 300, seed: int = 0, tie_rate: float = 0.05):
    rng = random.Random(seed)
    players = list(TRUE)
    games = []
    for i, a in enumerate(players):
        for b in players[i + 1:]:
            p = 1 / (1 + 10 ** ((TRUE[b] - TRUE[a]) / 400))
            for _ in range(n_per_pair):
                u = rng.random()
                games.append((a, b, 0.5 if u < tie_rate else 1.0 if u < tie_rate + (1 - tie_rate) * p else 0.0))
    return games


def test_recovers_known_strengths():
    r = rate(synthetic_games(tie_rate=0.0), bootstrap=50).by_player()
    assert [p for p, _ in sorted(r.items(), key=lambda kv: -kv[1].elo)] == ["strong", "mid", "weak", "random"]
    assert r["random"].elo == 1000.0
    for p, elo in TRUE.items():
        assert abs(r[p].elo - elo) < 40, (p, r[p].elo)
        assert r[p].ci_low <= r[p].elo <= r[p].ci_high
    assert r["strong"].ci_low > r["mid"].ci_high  # 300 Elo apart: intervals separate


def test_independent_of_game_order():
    games = synthetic_games(n_per_pair=60)
    shuffled = games[:]
    random.Random(1).shuffle(shuffled)
    a, b = rate(games, bootstrap=30).to_dict(), rate(shuffled, bootstrap=30).to_dict()
    assert a == b


def test_unbeaten_players_stay_finite_and_intervals_widen_with_fewer_games():
    few = rate([("strong", "random", 1.0)] * 5, bootstrap=50).by_player()
    assert np.isfinite(few["strong"].elo) and few["strong"].elo > 1000
    many = rate(synthetic_games(n_per_pair=400), bootstrap=50).by_player()
    some = rate(synthetic_games(n_per_pair=40), bootstrap=50).by_player()
    width = lambda r: r.ci_high - r.ci_low  # noqa: E731
    assert width(many["mid"]) < width(some["mid"])


def test_without_the_anchor_the_mean_is_anchored():
    r = rate([("x", "y", 1.0), ("x", "y", 0.0), ("x", "y", 1.0)], bootstrap=0)
    assert r.anchor == "mean"
    assert np.mean([x.elo for x in r.ratings]) == pytest.approx(1000.0)


def test_rate_rows_skips_truncated_games():
    rows = [{"a": "x", "b": "random", "score_a": 1.0, "truncated": False},
            {"a": "x", "b": "random", "score_a": 0.0, "truncated": True}]
    assert rate_rows(rows, bootstrap=0).games == 1


def test_wilson_interval():
    lo, hi = wilson(27, 30)
    assert 0.73 < lo < 0.75 and 0.96 < hi < 0.97
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(30, 30)[1] == 1.0


def test_pairing_summary_counts():
    rows = [dict(score_a=s, truncated=False, turns=10, a_decisions=10, a_invalid=i)
            for s, i in ((1.0, 0), (1.0, 1), (0.5, 0), (0.0, 0))]
    s = pairing_summary(rows)
    assert (s["wins"], s["losses"], s["ties"], s["win_rate"]) == (2, 1, 1, 0.625)
    assert s["valid_action_rate"] == pytest.approx(40 / 41, abs=1e-6)
    assert ELO_PER_NAT == pytest.approx(173.72, abs=0.01)
