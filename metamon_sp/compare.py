"""A/B comparison of runs (e.g. baseline vs damped, several seeds each) on one rating scale.

All generations of all runs and the baselines form one pool; games already played inside each
run count, and cross-run games fill each pair up to `elo.games_per_pair`. Runs whose configs
differ only in their seed form a group; the statement compares the groups' mean final-generation
Elo with a bootstrap 95% interval of the difference.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from metamon_sp import atomic
from metamon_sp.config import EVAL_KEYS, RUN_KEYS, SPEED_KEYS, Config
from metamon_sp.elo import Ratings, rate_rows
from metamon_sp.pipeline import Run
from metamon_sp.results import label
from metamon_sp.tournament import round_robin

_IGNORED = set(RUN_KEYS) | set(EVAL_KEYS) | set(SPEED_KEYS) | {"seed", "config_hash", "eval_hash"}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs whose configs differ only by seed share a group, named by what sets it apart."""
    flat = {r.dir: {k: v for k, v in _flatten(r.config).items()
                    if k.split(".")[0] not in _IGNORED and k not in _IGNORED} for r in runs}
    differing = sorted({k for a, b in itertools.combinations(flat.values(), 2) for k in a
                        if a.get(k) != b.get(k)})
    named = [k for k in differing if k.endswith(".name")]  # e.g. damping.name: none vs dynamic
    differing = named or differing
    groups: dict[str, list[Run]] = {}
    for r in runs:
        name = ", ".join(f"{k}={flat[r.dir].get(k)}" for k in differing) or "same config"
        groups.setdefault(name, []).append(r)
    return groups


def compare(cfg: Config, run_dirs: Sequence[Path | str], out_dir: Path | str) -> Path:
    runs = [Run(Path(d)) for d in run_dirs]
    out_dir = Path(out_dir)
    gens = {r.dir: r.generations() for r in runs}
    for r in runs:
        if not gens[r.dir]:
            raise FileNotFoundError(f"{r.dir} has no generation with a checkpoint.")
    pool = list(cfg.eval.opponents) + [r.spec(k) for r in runs for k in gens[r.dir]]
    rows = round_robin(cfg, pool, cfg.elo.games_per_pair, out_dir / "games",
                       known=[r.dir for r in runs])
    ratings = rate_rows(rows, anchor=cfg.elo.anchor, anchor_elo=cfg.elo.anchor_elo,
                        bootstrap=max(cfg.elo.bootstrap, 50), seed=cfg.seed,
                        prior_sigma=cfg.elo.prior_sigma)
    by = ratings.by_player()
    groups = group_runs(runs)
    finals = {name: [label(r.spec(gens[r.dir][-1])) for r in members]
              for name, members in groups.items()}
    statement = _statement(ratings, finals)
    _plot(runs, gens, by, groups, out_dir / "compare.png")
    table = ["| group | run | generation | Elo | 95% interval |", "|---|---|---|---|---|"]
    for name, members in groups.items():
        for r in members:
            for k in gens[r.dir]:
                x = by.get(label(r.spec(k)))
                if x:
                    table.append(f"| {name} | {r.dir.name} | {k} | {x.elo:.0f} | "
                                 f"[{x.ci_low:.0f}, {x.ci_high:.0f}] |")
    md = ["# Comparison", "", f"Runs: {', '.join(r.dir.name for r in runs)}", "",
          "## Verdict", "", *statement["lines"], "", "## Ratings on a common scale", "", *table, "",
          "![Elo by generation](compare.png)", "", "## All players", "", ratings.markdown()]
    atomic.write_text(out_dir / "compare.md", "\n".join(md))
    atomic.write_json(out_dir / "compare.json", {"groups": {n: [str(r.dir) for r in m]
                                                            for n, m in groups.items()},
                                                 "ratings": ratings.to_dict(),
                                                 "statement": statement})
    return out_dir / "compare.md"


def _statement(ratings: Ratings, finals: dict[str, list[str]]) -> dict[str, Any]:
    """Mean final-generation Elo per group and, for each two groups, the bootstrap interval of
    the difference: significant when it excludes 0."""
    by = ratings.by_player()
    lines = []
    means = {g: float(np.mean([by[p].elo for p in ps if p in by])) for g, ps in finals.items()}
    for g, m in means.items():
        lines.append(f"- **{g}**: mean final-generation Elo {m:.0f} over {len(finals[g])} run(s)")
    samples = ratings.samples  # (bootstrap, players): the resamples behind the intervals
    idx = {p: i for i, p in enumerate(ratings.players)}
    diffs = {}
    for ga, gb in itertools.combinations(finals, 2):
        da = samples[:, [idx[p] for p in finals[ga] if p in idx]].mean(axis=1)
        db = samples[:, [idx[p] for p in finals[gb] if p in idx]].mean(axis=1)
        lo, hi = np.percentile(da - db, [2.5, 97.5])
        diff = means[ga] - means[gb]
        outside = lo > 0 or hi < 0
        verdict = (f"the difference lies **outside** the interval of no difference: "
                   f"{ga if diff > 0 else gb} is stronger" if outside else
                   "the interval includes 0: **no significant difference** at this sample size")
        lines.append(f"- {ga} − {gb}: {diff:+.0f} Elo, 95% interval [{lo:+.0f}, {hi:+.0f}]; {verdict}.")
        diffs[f"{ga} - {gb}"] = {"diff": diff, "ci_low": float(lo), "ci_high": float(hi),
                                 "significant": bool(outside)}
    return {"lines": lines, "means": means, "differences": diffs}


def _plot(runs, gens, by, groups, path: Path) -> None:
    from metamon_sp.report import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for gi, (name, members) in enumerate(groups.items()):
        for ri, r in enumerate(members):
            pts = [(k, by[label(r.spec(k))]) for k in gens[r.dir] if label(r.spec(k)) in by]
            ax.errorbar([k + 0.05 * ri for k, _ in pts], [x.elo for _, x in pts],
                        yerr=[[x.elo - x.ci_low for _, x in pts], [x.ci_high - x.elo for _, x in pts]],
                        marker="o", capsize=3, color=colors[gi % len(colors)],
                        label=name if ri == 0 else None)
    ax.set_xlabel("generation")
    ax.set_ylabel("Elo (common scale, 95% interval)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

