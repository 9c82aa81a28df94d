"""Ratings: Bradley–Terry strengths fitted by maximum likelihood over all games, on the Elo scale.

    P(i beats j) = σ(θ_i − θ_j),   Elo_i = anchor_elo + (400 / ln 10)·(θ_i − θ_anchor)

Games are aggregated into a score matrix (a tie is half a win each way) before fitting, so the
fit cannot depend on game order; a weak Gaussian prior on θ keeps unbeaten players finite.
95% intervals come from refitting on bootstrap resamples (seeded, drawn in a canonical order).
Results rows are resampled by mirrored team pair (`pair_clusters`): the two games of a pair
(same teams, seats swapped) share their teams' luck, so they go in or out of a resample together.
Differences between two players (`Ratings.delta`) take their interval from the same resamples,
so the noise both share (the anchor's, above all) cancels.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Hashable, Iterable, Sequence

import numpy as np

ELO_PER_NAT = 400.0 / math.log(10.0)
HALVES = ("/a-is-p1", "/a-is-p2")  # evaluate.play_pairing's two halves of a pairing
DELTAS_TITLE = "Paired differences (95% interval from resampled mirrored pairs)"


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
    units: int = 0  # what a resample draws from: games, or clusters of games (mirrored pairs)

    def by_player(self) -> dict[str, Rating]:
        return {r.player: r for r in self.ratings}

    def delta(self, a: str, b: str) -> tuple[float, float, float]:
        """Elo(a) − Elo(b) with its paired 95% interval: percentiles of the difference over the
        bootstrap resamples (not of each rating separately)."""
        r = self.by_player()
        point = r[a].elo - r[b].elo
        if self.samples is None or not self.bootstrap:
            return round(point, 1), round(point, 1), round(point, 1)
        diff = self.samples[:, self.players.index(a)] - self.samples[:, self.players.index(b)]
        lo, hi = np.percentile(diff, [2.5, 97.5])
        return round(point, 1), round(float(lo), 1), round(float(hi), 1)

    def to_dict(self) -> dict[str, Any]:
        return {"anchor": self.anchor, "anchor_elo": self.anchor_elo, "bootstrap": self.bootstrap,
                "games": self.games, "resampled_units": self.units,
                "ratings": [asdict(r) for r in self.ratings]}

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
         bootstrap: int = 200, seed: int = 0, prior_sigma: float = 3.0,
         clusters: Sequence[Hashable] | None = None) -> Ratings:
    """Elo-scale ratings with bootstrap 95% intervals from (a, b, score of a) games.
    `clusters` (one key per game): a resample draws clusters with replacement and takes all their
    games; without it, each game is its own cluster. `Ratings.samples` keeps the (bootstrap,
    player) resamples for statements about differences (`Ratings.delta`)."""
    games = [(str(a), str(b), float(s)) for a, b, s in games]
    if clusters is None:
        clusters = range(len(games))
    if len(clusters) != len(games):
        raise ValueError(f"{len(clusters)} cluster keys for {len(games)} games")
    groups: dict[Hashable, list[tuple[str, str, float]]] = {}
    for g, c in zip(games, clusters):
        groups.setdefault(c, []).append(g)
    units = sorted(tuple(sorted(gs)) for gs in groups.values())  # canonical: order-independent
    canonical = sorted(games)
    if not canonical:
        raise ValueError("no games to rate")
    players = sorted({p for a, b, _ in canonical for p in (a, b)})
    anchor_idx = players.index(anchor) if anchor in players else None  # else: the mean
    point = _elos(canonical, players, anchor_idx, anchor_elo, prior_sigma)
    rng = np.random.default_rng(seed)
    boots = np.array([_elos([g for i in rng.integers(0, len(units), len(units)) for g in units[i]],
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
                   len(canonical), players=players, samples=boots, units=len(units))


def pair_clusters(rows: Sequence[dict[str, Any]]) -> list[int]:
    """A cluster id per results row, shared by the two games of a mirrored team pair.

    The key: the unordered players, the unordered teams, the pairing folder (`source` less its
    `/a-is-p1` or `/a-is-p2`) and the occurrence of that key within its half, in row order: the
    k-th game of a team pair as a-is-p1 goes with its k-th as a-is-p2, so a team pair drawn twice
    in one pairing makes two clusters. A game without its mirror (or without a half in its
    source) is a cluster of its own."""
    seen: Counter[tuple] = Counter()
    ids: dict[tuple, int] = {}
    out = []
    for i, r in enumerate(rows):
        source = str(r.get("source") or "")
        half = next((h for h in HALVES if source.endswith(h)), None)
        if half is None or r.get("a_team") is None or r.get("b_team") is None:
            key: tuple = ("alone", i)
        else:
            base = (frozenset((r["a"], r["b"])), frozenset((r["a_team"], r["b_team"])),
                    source[:-len(half)])
            seen[(base, half)] += 1
            key = (base, seen[(base, half)])
        out.append(ids.setdefault(key, len(ids)))
    return out


def rate_rows(rows: Iterable[dict[str, Any]], **kw: Any) -> Ratings:
    """Ratings from results-table rows (truncated games left out), resampled by mirrored team
    pair (clusters keyed on all rows, so a truncated game leaves its mirror alone)."""
    rows = list(rows)
    kept = [(r, c) for r, c in zip(rows, pair_clusters(rows)) if not r["truncated"]]
    return rate([(r["a"], r["b"], r["score_a"]) for r, _ in kept],
                clusters=[c for _, c in kept], **kw)


def generation_deltas(ratings: Ratings, names: Sequence[str]) -> list[dict[str, Any]]:
    """For generations `names` (gen 0 first, in order), every later generation's Elo less the
    previous one's and less gen 0's, each with its paired 95% interval (None where unrated)."""
    rated = ratings.by_player()
    rows = []
    for k in range(1, len(names)):
        if names[k] not in rated:
            continue
        row: dict[str, Any] = {"player": names[k]}
        for key, other in (("vs_previous", names[k - 1]), ("vs_gen0", names[0])):
            point, lo, hi = ratings.delta(names[k], other) if other in rated else (None,) * 3
            row[key], row[f"{key}_ci"] = point, None if point is None else [lo, hi]
        rows.append(row)
    return rows


def deltas_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """`generation_deltas` as a Markdown table (`*`: the interval excludes 0)."""
    def cell(point: float | None, ci: Sequence[float] | None) -> str:
        if point is None or ci is None:
            return "– | –"
        mark = " *" if ci[0] > 0 or ci[1] < 0 else ""
        return f"{point:+.0f}{mark} | [{ci[0]:+.0f}, {ci[1]:+.0f}]"

    lines = ["| player | Δ vs previous | 95% interval | Δ vs gen 0 | 95% interval |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['player']} | {cell(r['vs_previous'], r['vs_previous_ci'])} | "
              f"{cell(r['vs_gen0'], r['vs_gen0_ci'])} |" for r in rows]
    if not rows:
        lines.append("| (no generation after gen 0 yet) | – | – | – | – |")
    return "\n".join(lines) + "\n\n`*`: the interval excludes 0.\n"
