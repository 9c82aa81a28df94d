"""Ratings: Bradley–Terry strengths fitted by maximum likelihood over all games, on the Elo scale.

    P(i beats j) = σ(θ_i − θ_j),   Elo_i = anchor_elo + (400 / ln 10)·(θ_i − θ_anchor)

Games are aggregated into a score matrix (a tie is half a win each way) before fitting, so the
fit cannot depend on game order; a weak Gaussian prior on θ keeps unbeaten players finite.
95% intervals come from refitting on bootstrap resamples of the games (seeded, drawn from the
games in a canonical order).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

ELO_PER_NAT = 400.0 / math.log(10.0)


@dataclass
class Rating:
    player: str
    elo: float
    ci_low: float
    ci_high: float
    games: int
    score: float  # mean score (ties 1/2) over its games


@dataclass
class Ratings:
    anchor: str
    anchor_elo: float
    ratings: list[Rating]
    bootstrap: int
    games: int
    players: list[str] = field(default_factory=list)        # the column order of `samples`
    samples: np.ndarray | None = field(default=None, repr=False)  # (bootstrap, players) Elo

    def by_player(self) -> dict[str, Rating]:
        return {r.player: r for r in self.ratings}

    def to_dict(self) -> dict[str, Any]:
        return {"anchor": self.anchor, "anchor_elo": self.anchor_elo, "bootstrap": self.bootstrap,
                "games": self.games, "ratings": [asdict(r) for r in self.ratings]}

    def markdown(self) -> str:
        lines = ["| player | Elo | 95% interval | games | score |", "|---|---|---|---|---|"]
        for r in self.ratings:
            lines.append(f"| {r.player} | {r.elo:.0f} | [{r.ci_low:.0f}, {r.ci_high:.0f}] | "
                         f"{r.games} | {r.score:.3f} |")
        return "\n".join(lines) + f"\n\nAnchor: {self.anchor} = {self.anchor_elo:.0f}; " \
                                  f"{self.games} games; {self.bootstrap} bootstrap resamples.\n"


def score_matrix(players: Sequence[str], games: Iterable[tuple[str, str, float]]) -> np.ndarray:
    """W[i, j]: total score of i against j."""
    index = {p: i for i, p in enumerate(players)}
    W = np.zeros((len(players), len(players)))
    for a, b, s in games:
        W[index[a], index[b]] += s
        W[index[b], index[a]] += 1.0 - s
    return W


def fit_strengths(W: np.ndarray, prior_sigma: float = 3.0, iters: int = 100) -> np.ndarray:
    """Maximum a posteriori θ (natural units) for the score matrix, by Newton's method."""
    n = W.shape[0]
    N = W + W.T
    lam = 1.0 / prior_sigma**2
    theta = np.zeros(n)
    for _ in range(iters):
        d = theta[:, None] - theta[None, :]
        p = 1.0 / (1.0 + np.exp(-d))               # P(i beats j)
        grad = (W - N * p).sum(axis=1) - lam * theta
        w = N * p * (1.0 - p)
        H = w - np.diag(w.sum(axis=1) + lam)       # negative definite
        step = np.linalg.solve(H, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return theta


def _elos(games: Sequence[tuple[str, str, float]], players: Sequence[str], anchor_idx: int | None,
          anchor_elo: float, prior_sigma: float) -> np.ndarray:
    theta = fit_strengths(score_matrix(players, games), prior_sigma)
    ref = theta[anchor_idx] if anchor_idx is not None else theta.mean()
    return anchor_elo + ELO_PER_NAT * (theta - ref)


def rate(games: Sequence[tuple[str, str, float]], anchor: str = "random", anchor_elo: float = 1000.0,
         bootstrap: int = 200, seed: int = 0, prior_sigma: float = 3.0) -> Ratings:
    """Elo-scale ratings with bootstrap 95% intervals from (a, b, score of a) games.
    `Ratings.samples` keeps the (bootstrap, player) resamples for statements about differences."""
    canonical = sorted((str(a), str(b), float(s)) for a, b, s in games)
    if not canonical:
        raise ValueError("no games to rate")
    players = sorted({p for a, b, _ in canonical for p in (a, b)})
    anchor_idx = players.index(anchor) if anchor in players else None  # else: the mean
    point = _elos(canonical, players, anchor_idx, anchor_elo, prior_sigma)
    rng = np.random.default_rng(seed)
    boots = np.array([_elos([canonical[i] for i in rng.integers(0, len(canonical), len(canonical))],
                            players, anchor_idx, anchor_elo, prior_sigma)
                      for _ in range(bootstrap)]) if bootstrap else point[None]
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
    counts = {p: 0 for p in players}
    scores = {p: 0.0 for p in players}
    for a, b, s in canonical:
        counts[a] += 1
        counts[b] += 1
        scores[a] += s
        scores[b] += 1.0 - s
    table = [Rating(p, round(float(point[i]), 1), round(float(lo[i]), 1), round(float(hi[i]), 1),
                    counts[p], round(scores[p] / counts[p], 4)) for i, p in enumerate(players)]
    table.sort(key=lambda r: -r.elo)
    return Ratings(anchor if anchor_idx is not None else "mean", anchor_elo, table, bootstrap,
                   len(canonical), players=players, samples=boots)


def rate_rows(rows: Iterable[dict[str, Any]], **kw: Any) -> Ratings:
    """Ratings from results-table rows (truncated games left out)."""
    return rate([(r["a"], r["b"], r["score_a"]) for r in rows if not r["truncated"]], **kw)
