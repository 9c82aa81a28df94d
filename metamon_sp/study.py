"""A study: one generation 0, then arms × seeds branching from it, every run rated on one scale,
and a verdict that accounts for seed variance (issue 11: does damping help? which reward?).

    runs_dir/study-<name>-<hash>/
      study.json                    arms, seeds, generations, overrides; the shared gen 0's hash
      gen0-<hash>/                  the shared generation 0: a run folder (bootstrap, evaluation)
      runs/<arm>-s<seed>-<hash>/    one self-play run per arm and seed; its gen-000 is a copy of
                                    the shared one (data, filtered data, checkpoint) and
                                    gen-000/shared.json records the checkpoint's file hash
      rating/                       games between the runs' final generations
      verdict.{json,md}             the ratings on one scale, per-run gains, the verdict

The study folder's hash covers the shared config and the arms, not the seeds or generations: a
study asked for more of either extends the one it has. Each run resumes like any run (its
finished stages are skipped), so an interrupted study redoes nothing it finished. Evaluation
draws its teams and battle seeds from the players' roles and the seed, so the runs of one seed
would replay the very same generation-0 evaluation: it is played once per seed and copied, and
the study's rating counts every game once.

The verdict treats each run's gain over the shared generation 0 (its final generation's Elo less
generation 0's, on the common scale) as one observation: the difference between two arms' mean
gains gets a Welch t interval over seeds, whose spread holds both the seed-to-seed variance and
the game noise of each measured gain; an exact permutation test over the seed labels and a
hierarchical bootstrap (seeds, then mirrored team pairs) are reported beside it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from metamon_sp import atomic
from metamon_sp.config import Config, ConfigError, _digest, load_config
from metamon_sp.elo import Ratings, rate_rows
from metamon_sp.pipeline import Run, evaluated, open_run, rate_generation, run_dir_for, run_selfplay
from metamon_sp.results import GAMES, SCHEMA, label, read_games
from metamon_sp.runlock import run_lock
from metamon_sp.tournament import round_robin
from metamon_sp.tracking import read_metrics

log = logging.getLogger(__name__)

STUDY_JSON, VERDICT = "study.json", "verdict"
GEN0_RECIPE = ("format", "team_set", "model", "bootstrap")
"""What every arm must share with the study's generation 0 (an arm that changes these is a
different generation 0: a separate study)."""
GEN0_FILES = ("data", "filtered", "train", "bootstrap_summary.json")
SHARED = "shared.json"
NO_DIFFERENCE = "no difference detected at this budget"


@dataclass
class StudyPlan:
    name: str
    dir: Path
    overrides: list[str]
    """The study's own Hydra overrides (scale, generations, ...), shared by every run."""
    arms: dict[str, list[str]]
    seeds: list[int]
    generations: int
    base: Config = field(repr=False)

    def gen0_config(self) -> Config:
        return load_config([*self.overrides, f"seed={self.seeds[0]}", "run_name=gen0",
                            f"runs_dir={self.dir}", "generations=0"])

    def arm_config(self, arm: str, seed: int) -> Config:
        return load_config([*self.overrides, *self.arms[arm], f"seed={seed}",
                            f"run_name={arm}-s{seed}", f"runs_dir={self.dir / 'runs'}",
                            f"generations={self.generations}"])

    def runs(self) -> list[tuple[str, int]]:
        """(arm, seed) in the order they run: seed by seed, so a study cut short has every arm
        at the same number of seeds."""
        return [(arm, seed) for seed in self.seeds for arm in self.arms]


def plan_study(overrides: Sequence[str]) -> StudyPlan:
    """The study a command line describes: `study=damping seeds=3 generations=3 scale=laptop`
    (`seeds=N` is short for `study.seeds=N`)."""
    overrides = [f"study.{o}" if o.startswith("seeds=") else o for o in overrides]
    base = load_config(overrides)
    st = base.study
    if not st.name or len(st.arms) < 2:
        raise ConfigError("a study needs a name and at least two arms: pick one with study=damping "
                          "or study=reward (conf/study/), or give study.name and study.arms.")
    for arm, arm_overrides in st.arms.items():
        arm_cfg = load_config([*overrides, *arm_overrides])
        differ = [k for k in GEN0_RECIPE if getattr(arm_cfg, k) != getattr(base, k)]
        if differ:
            raise ConfigError(f"study arm {arm!r} ({' '.join(arm_overrides)}) changes "
                              f"{', '.join(differ)}, which generation 0 is made with; arms of one "
                              f"study share generation 0, so run that comparison as its own study.")
    # what each run sets for itself, or the study folder sets: not shared
    shared = [o for o in overrides if not o.startswith(("study.seeds=", "generations=", "seed=",
                                                        "runs_dir=", "run_name="))]
    digest = _digest({"config": base.hash(), "arms": st.arms, "seed": base.seed})
    return StudyPlan(name=st.name, dir=Path(base.runs_dir) / f"study-{st.name}-{digest}",
                     overrides=shared, arms=dict(st.arms),
                     seeds=[base.seed + i for i in range(st.seeds)],
                     generations=base.generations, base=base)


def checkpoint_digest(ckpt: Path) -> str:
    """SHA-256 of a checkpoint's weights file: the same generation 0 in every run, or not."""
    h = hashlib.sha256()
    with open(Path(ckpt) / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def copy_generation_zero(source: Path, dest: Path) -> None:
    """Copy a generation-0 folder's data, filtered data and checkpoint into `dest`, all at once
    (through a temporary folder renamed into place; nothing finished lives in `dest` yet)."""
    tmp = dest.with_name(f".{dest.name}.copying")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in GEN0_FILES:
        src = source / name
        if src.is_dir():
            shutil.copytree(src, tmp / name)
        elif src.exists():
            shutil.copy2(src, tmp / name)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def share_generation_zero(source: Run, run: Run) -> str:
    """Copy the study's generation 0 (data, filtered data, checkpoint) into `run`, once, and
    record where it came from and its checkpoint's hash; returns the hash."""
    if not (run.checkpoint(0) / "checkpoint.json").exists():
        copy_generation_zero(source.gen(0), run.gen(0))
    digest = checkpoint_digest(run.checkpoint(0))
    expected = checkpoint_digest(source.checkpoint(0))
    if digest != expected:
        raise RuntimeError(f"{run.checkpoint(0)} is not the study's generation 0 "
                           f"({source.checkpoint(0)}): hashes {digest[:12]} and {expected[:12]}; "
                           f"delete {run.dir} to let the study copy it again.")
    atomic.write_json(run.gen(0) / SHARED, {"from": str(source.checkpoint(0).resolve()),
                                            "sha256": digest})
    return digest


RunOne = Callable[[Config], Any]


def run_study(plan: StudyPlan, run_one: RunOne | None = None,
              run_all: Callable[[list[Config]], Any] | None = None) -> dict[str, Any]:
    """Generation 0, every arm × seed run (skipping what is done), the rating, the verdict.

    `run_one(cfg)` runs one self-play run (default: `run_selfplay`); `run_all(cfgs)` may run
    them all (an orchestrator fanning them out); the library runs them one after another."""
    plan.dir.mkdir(parents=True, exist_ok=True)
    gen0 = prepare_generation_zero(plan, run_one)
    cfgs = prepare_runs(plan, gen0)
    if run_all is not None:
        run_all(cfgs)
    else:
        for (arm, seed), cfg in zip(plan.runs(), cfgs):
            prepare_run(plan, gen0, arm, seed)  # now that its seed's first run may be done
            (run_one or run_selfplay)(cfg)
    return rate_study(plan)


def prepare_generation_zero(plan: StudyPlan, run_one: RunOne | None = None) -> Run:
    cfg = plan.gen0_config()
    (run_one or run_selfplay)(cfg)
    gen0 = Run(run_dir_for(cfg))
    write_plan(plan, gen0)
    return gen0


def write_plan(plan: StudyPlan, gen0: Run) -> None:
    atomic.write_json(plan.dir / STUDY_JSON, {
        "name": plan.name, "arms": plan.arms, "seeds": plan.seeds,
        "generations": plan.generations, "overrides": plan.overrides,
        "gen0": str(gen0.dir), "gen0_sha256": checkpoint_digest(gen0.checkpoint(0)),
        "runs": {f"{arm}-s{seed}": str(run_dir_for(plan.arm_config(arm, seed)))
                 for arm, seed in plan.runs()}})


def prepare_runs(plan: StudyPlan, gen0: Run) -> list[Config]:
    """Every arm × seed run's config, its folder opened and generation 0 shared into it."""
    return [prepare_run(plan, gen0, arm, seed) for arm, seed in plan.runs()]


def prepare_run(plan: StudyPlan, gen0: Run, arm: str, seed: int) -> Config:
    """Open the run of `arm` × `seed`, copy generation 0 into it and, where a run already
    evaluated generation 0 with this seed (the generation-0 run, or another arm's run of the
    seed), its evaluation too: the same roles, seed and teams replay the very same games."""
    cfg = plan.arm_config(arm, seed)
    with run_lock(run_dir_for(cfg), owner="metamon-sp study"):
        run = open_run(cfg)
        share_generation_zero(gen0, run)
        siblings = [Run(run_dir_for(plan.arm_config(a, seed))) for a in plan.arms if a != arm]
        source = next((r for r in [gen0, *siblings]
                       if evaluated(cfg, r, 0) and plays_alike(cfg, r)), None)
        if source is not None:
            share_evaluation(cfg, source, run)
    return cfg


EVAL_PLAY = ("seed", "format", "team_set", "collect", "policy", "eval", "elo")
"""What decides the games of generation 0's evaluation, beside the (shared) checkpoint."""


def plays_alike(cfg: Config, other: Run) -> bool:
    mine, theirs = cfg.to_dict(), other.config
    return all(mine[k] == theirs.get(k) for k in EVAL_PLAY)


def share_evaluation(cfg: Config, source: Run, run: Run) -> None:
    """Generation 0's evaluation and the baselines' round robin (results tables, summary,
    probes, diagnostics), copied from `source` under `run`'s name, then rated (~35 s of battles
    saved per run on the laptop scale). Every path and label of `source` becomes `run`'s; games
    of `source`'s later generations stay behind. Generation 1's diagnostics then have no parent
    games to compare with (the recorded battles stay in `source`)."""
    if evaluated(cfg, run, 0):
        return
    later = f"{source.dir.name}/gen-"

    def relabel(text: str) -> str:
        return text.replace(str(source.dir), str(run.dir)).replace(f"{source.dir.name}/",
                                                                   f"{run.dir.name}/")

    for src, dst in ((source.gen(0) / "eval", run.gen(0) / "eval"),
                     (source.dir / "tournament", run.dir / "tournament")):
        if dst.exists() or not src.exists():
            continue
        # the results tables and summaries, not the pairings' recorded battles: those carry
        # the source's player paths in their dataset hash, and a later re-evaluation (other
        # eval settings) replays into fresh folders instead of refusing a foreign dataset
        tmp = dst.with_name(f".{dst.name}.sharing")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for path in src.iterdir():
            if path.name == GAMES:
                rows = [r for r in pq.read_table(path).to_pylist()
                        if not any(r[s].startswith(later) and not r[s].endswith("/gen-000")
                                   for s in ("a", "b"))]
                rows = [{k: relabel(v) if isinstance(v, str) else v for k, v in r.items()}
                        for r in rows]
                pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp / GAMES)
            elif path.suffix == ".json":
                (tmp / path.name).write_text(relabel(path.read_text()))
        tmp.rename(dst)
    rate_generation(cfg, run, 0)  # every game is there: it only rates


# ------------------------------------------------------------------------------ rating, verdict
def study_runs(plan: StudyPlan) -> dict[str, list[tuple[int, Run]]]:
    """The finished runs (all generations trained and rated) by arm, as (seed, run)."""
    out: dict[str, list[tuple[int, Run]]] = {arm: [] for arm in plan.arms}
    for arm, seed in plan.runs():
        run = Run(run_dir_for(plan.arm_config(arm, seed)))
        ratings = run.dir / "ratings.json"
        if ratings.exists() and json.loads(ratings.read_text())["generation"] >= plan.generations:
            out[arm].append((seed, run))
    return out


def rate_study(plan: StudyPlan) -> dict[str, Any]:
    """Rate every generation of every run, the shared generation 0 and the baselines on one
    scale (each run's copy of generation 0 is the same player), after the final generations have
    played each other `study.cross_games_per_pair` games; write the verdict."""
    gen0 = Run(run_dir_for(plan.gen0_config()))
    runs = study_runs(plan)
    done = [r for members in runs.values() for _, r in members]
    if not done:
        raise RuntimeError(f"{plan.dir}: no run of the study has finished yet.")
    cfg = plan.base
    finals = [r.spec(plan.generations) for r in done]
    if cfg.study.cross_games_per_pair and len(finals) > 1:
        round_robin(cfg, finals, cfg.study.cross_games_per_pair, plan.dir / "rating",
                    known=[r.dir for r in done])
    shared = label(gen0.spec(0))
    rows = study_games(gen0, done, plan.dir / "rating")
    ratings = rate_rows(rows, anchor=cfg.elo.anchor, anchor_elo=cfg.elo.anchor_elo,
                        bootstrap=max(cfg.elo.bootstrap, 200), seed=cfg.seed,
                        prior_sigma=cfg.elo.prior_sigma)
    finals_by_arm = {arm: [(seed, label(r.spec(plan.generations))) for seed, r in members]
                     for arm, members in runs.items()}
    result = verdict(ratings, shared, finals_by_arm, seed=cfg.seed)
    result.update(study=plan.name, generations=plan.generations, gen0=shared,
                  probes=arm_probes({arm: [r.gen(plan.generations) / "eval" / "probes.json"
                                           for _, r in members] for arm, members in runs.items()}),
                  training=training_checks(runs, plan.generations),
                  ratings=ratings.to_dict())
    atomic.write_json(plan.dir / f"{VERDICT}.json", result)
    atomic.write_text(plan.dir / f"{VERDICT}.md", verdict_markdown(plan, result, ratings))
    return result


def study_games(gen0: Run, runs: Sequence[Run], cross: Path) -> list[dict[str, Any]]:
    """Every game of the study once. Each run replays what the shared generation 0 already
    played (its evaluation, the baselines' round robin: same roles, same seed, same teams), so a
    run contributes only games that involve one of its own generations ≥ 1; the generation-0
    run contributes its own; each run's copy of generation 0 becomes the shared player."""
    shared = label(gen0.spec(0))
    rows = [dict(r) for r in read_games([gen0.dir, cross])]
    for run in runs:
        copy = label(run.spec(0))
        own = f"{run.dir.name}/"
        for row in read_games([run.dir]):
            if not any(row[s].startswith(own) and row[s] != copy for s in ("a", "b")):
                continue
            rows.append({**row, **{s: shared for s in ("a", "b") if row[s] == copy}})
    return rows


def verdict(ratings: Ratings, gen0: str, finals: dict[str, list[tuple[int, str]]],
            seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Per arm: each seed's gain Elo(final) − Elo(gen 0) (paired interval from the ratings'
    resamples) and their mean; per two arms: the difference of the mean gains with a Welch t
    interval over seeds (the verdict's), an exact permutation p-value, and a hierarchical
    bootstrap interval (seeds resampled within each arm, then the ratings' team-pair resamples)."""
    arms: dict[str, Any] = {}
    col = {p: i for i, p in enumerate(ratings.players)}
    samples = ratings.samples
    for arm, members in finals.items():
        gains = []
        for s, player in members:
            point, lo, hi = ratings.delta(player, gen0)
            gains.append({"seed": s, "player": player, "gain": point, "ci": [lo, hi]})
        values = [g["gain"] for g in gains]
        arms[arm] = {"runs": gains, "n": len(values),
                     "mean_gain": round(float(np.mean(values)), 1) if values else None,
                     "sd_gain": (round(float(np.std(values, ddof=1)), 1) if len(values) > 1
                                 else None)}
    rng = np.random.default_rng(seed)
    comparisons = []
    pairs = list(itertools.combinations(finals, 2))
    # More than two arms make several comparisons: each interval is widened (Bonferroni) so that
    # the chance of any false "A > B" among them stays at 1 − level.
    pair_level = 1 - (1 - level) / max(1, len(pairs))
    tail = 100 * (1 - pair_level) / 2
    for a, b in pairs:
        ga = [g["gain"] for g in arms[a]["runs"]]
        gb = [g["gain"] for g in arms[b]["runs"]]
        row: dict[str, Any] = {"arms": [a, b], "n": [len(ga), len(gb)]}
        if len(ga) < 2 or len(gb) < 2:
            row.update(diff=None, verdict="needs at least 2 seeds per arm to account for seed "
                                          "variance")
            comparisons.append(row)
            continue
        diff = float(np.mean(ga) - np.mean(gb))
        lo, hi = welch_interval(ga, gb, pair_level)
        boot = None
        if samples is not None and len(samples):
            pa = [col[p] for _, p in finals[a]]
            pb = [col[p] for _, p in finals[b]]
            draws = []  # gen 0 cancels: both arms' gains are measured from it
            for k in range(len(samples)):
                ia = rng.choice(pa, len(pa))
                ib = rng.choice(pb, len(pb))
                draws.append(samples[k, ia].mean() - samples[k, ib].mean())
            boot = [round(float(x), 1) for x in np.percentile(draws, [tail, 100 - tail])]
        p = permutation_p(ga, gb)
        outcome = f"{a} > {b}" if lo > 0 else f"{a} < {b}" if hi < 0 else NO_DIFFERENCE
        row.update(diff=round(diff, 1), ci=[round(float(lo), 1), round(float(hi), 1)],
                   permutation_p=float(p),
                   bootstrap_ci=boot, verdict=outcome)
        comparisons.append(row)
    return {"arms": arms, "comparisons": comparisons, "level": level,
            "pair_level": pair_level,
            "method": "Welch t interval over seeds of the gains over the shared generation 0"
                      + (f", Bonferroni-adjusted for {len(pairs)} comparisons"
                         if len(pairs) > 1 else "")}


PROBES = (("lost", "recovery_rate", "recovery when lost"), ("won", "recovery_rate",
                                                              "recovery when won"),
          ("lost", "status_rate", "status when lost"), ("all", "status_rate", "status moves"),
          ("all", "switch_rate", "switch rate"))


def arm_probes(files: dict[str, list[Path]], level: float = 0.95) -> dict[str, Any]:
    """The behaviour probes of each run's final generation (on its evaluation games), per arm:
    the mean over seeds with a t interval over seeds (the reward study's question: does a sparser
    reward cure recovery moves in lost positions?)."""
    out: dict[str, Any] = {}
    for arm, paths in files.items():
        probes = [json.loads(p.read_text()) for p in paths if p.exists()]
        out[arm] = {}
        for cls, key, name in PROBES:
            values = [p[cls][key] for p in probes if p.get(cls, {}).get(key) is not None]
            if not values:
                continue
            mean = float(np.mean(values))
            ci = None
            if len(values) > 1:
                half = t_quantile(0.5 + level / 2, len(values) - 1) * float(
                    np.std(values, ddof=1)) / math.sqrt(len(values))
                ci = [round(max(0.0, mean - half), 4), round(mean + half, 4)]
            out[arm][name] = {"mean": round(mean, 4), "ci": ci, "seeds": len(values)}
    return out


def training_checks(runs: dict[str, list[tuple[int, Run]]], generations: int
                    ) -> dict[str, list[dict[str, Any]]]:
    """Per arm and generation, the mean over seeds of: KL(π ‖ π_ref) after warmup (at the steps
    both arms measure it, every 10th), the damping controller's checks (damped arms), and the
    training time. What the damping question needs beside strength: did damping hold the
    policy nearer its reference, and did its controller control?"""
    out: dict[str, list[dict[str, Any]]] = {}
    for arm, members in runs.items():
        rows = []
        for k in range(1, generations + 1):
            kl, band, bound, secs = [], [], [], []
            for _, run in members:
                train = run.gen(k) / "train"
                if not (train / "train_summary.json").exists():
                    continue
                summary = json.loads((train / "train_summary.json").read_text())
                warmup = run.config["train"]["warmup_steps"]
                values = [m["damping/kl_ref"] for m in read_metrics(train / "metrics.jsonl")
                          if m["step"] > warmup and m["step"] % 10 == 0 and "damping/kl_ref" in m]
                if values:
                    kl.append(float(np.mean(values)))
                checks = summary.get("damping_checks") or {}
                if checks.get("steps"):
                    band.append(checks["in_band_frac"])
                    bound.append(max(checks["lr_scale_at_bound_frac"],
                                     checks["kl_scale_at_bound_frac"]))
                secs.append(summary["seconds"])
            mean = lambda xs: round(float(np.mean(xs)), 4) if xs else None  # noqa: E731
            rows.append({"generation": k, "runs": len(secs), "kl_ref": mean(kl),
                         "in_band_frac": mean(band), "at_bound_frac": mean(bound),
                         "seconds": mean(secs)})
        out[arm] = rows
    return out


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95
                   ) -> tuple[float, float]:
    """The `level` interval of mean(a) − mean(b) with unequal variances (Welch–Satterthwaite)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = a.mean() - b.mean()
    se = math.sqrt(va + vb)
    if se == 0:
        return float(diff), float(diff)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    t = t_quantile(0.5 + level / 2, df)
    return float(diff - t * se), float(diff + t * se)


def t_quantile(p: float, df: float) -> float:
    """The Student t distribution's p-quantile (p > 0.5), by bisection on its CDF."""
    lo, hi = 0.0, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for t ≥ 0: 1 − I_x(df/2, 1/2) / 2 with x = df / (df + t²)."""
    return 1.0 - 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (Lentz's continued fraction)."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log(1 - x)) / a
    tiny, f, c, d = 1e-300, 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if abs(1.0 - c * d) < 1e-12:
            break
    return front * (f - 1.0)


def permutation_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided exact permutation p-value of mean(a) − mean(b) over every relabelling of the
    pooled runs (with 3 seeds per arm: 20 relabellings, so p ≥ 0.1)."""
    pooled = list(a) + list(b)
    observed = abs(np.mean(a) - np.mean(b))
    hits = total = 0
    for idx in itertools.combinations(range(len(pooled)), len(a)):
        rest = [pooled[i] for i in range(len(pooled)) if i not in idx]
        total += 1
        hits += abs(np.mean([pooled[i] for i in idx]) - np.mean(rest)) >= observed - 1e-9
    return round(float(hits / total), 4)


def _fmt(x: float | None, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def _pct(level: float) -> str:
    return f"{100 * level:.1f}".rstrip("0").rstrip(".") + "%"


def verdict_markdown(plan: StudyPlan, result: dict[str, Any], ratings: Ratings) -> str:
    lines = [f"# Study `{plan.name}`: {', '.join(plan.arms)}", "",
             f"{len(plan.seeds)} seed(s) × {plan.generations} generation(s) per arm, all from one "
             f"generation 0 (`{result['gen0']}`); overrides: `{' '.join(plan.overrides) or '-'}`.",
             "Arms: " + "; ".join(f"**{a}** `{' '.join(o)}`" for a, o in plan.arms.items()), "",
             "## Verdict", ""]
    for c in result["comparisons"]:
        a, b = c["arms"]
        if c["diff"] is None:
            lines.append(f"- {a} vs {b}: {c['verdict']}.")
            continue
        boot = c.get("bootstrap_ci")
        lines.append(f"- **{c['verdict']}**: mean gain {a} − {b} = {c['diff']:+.0f} Elo, "
                     f"{_pct(result['pair_level'])} interval "
                     f"[{c['ci'][0]:+.0f}, "
                     f"{c['ci'][1]:+.0f}] (Welch, over {c['n'][0]} and {c['n'][1]} seeds); "
                     f"permutation p = {c['permutation_p']}"
                     + (f"; hierarchical bootstrap [{boot[0]:+.0f}, {boot[1]:+.0f}]"
                        if boot else "")
                     + ".")
    n_pairs = len(result["comparisons"])
    if n_pairs > 1:
        lines += ["", f"{n_pairs} comparisons: each interval is at "
                      f"{_pct(result['pair_level'])} (Bonferroni), so that all of them hold "
                      f"together at {_pct(result['level'])}; p-values are per comparison."]
    lines += ["", "## Gain over the shared generation 0, per run", "",
              "| arm | seed | final generation | Elo(final) − Elo(gen 0) | 95% interval |",
              "|---|---|---|---|---|"]
    for arm, info in result["arms"].items():
        for g in info["runs"]:
            lines.append(f"| {arm} | {g['seed']} | {g['player']} | {g['gain']:+.0f} | "
                         f"[{g['ci'][0]:+.0f}, {g['ci'][1]:+.0f}] |")
        if info["mean_gain"] is not None:
            sd = f" (sd {info['sd_gain']:.0f})" if info["sd_gain"] is not None else ""
            lines.append(f"| **{arm}** | mean of {info['n']} | | "
                         f"**{info['mean_gain']:+.0f}**{sd} | |")
    probes = result.get("probes") or {}
    names = [name for _, _, name in PROBES]
    if any(probes.values()):
        lines += ["", "## Behaviour probes of the final generations", "",
                  "On each run's evaluation games (held-out teams); mean over seeds, 95% interval "
                  "over seeds. Lost/won: trailing/leading by ≥ 2 Pokémon or ≥ 2 team HP.", "",
                  "| arm | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for arm, values in probes.items():
            cells = []
            for name in names:
                v = values.get(name)
                cells.append("–" if v is None else f"{100 * v['mean']:.1f}%" + (
                    f" [{100 * v['ci'][0]:.1f}, {100 * v['ci'][1]:.1f}]" if v["ci"] else ""))
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    training = result.get("training") or {}
    if training:
        lines += ["", "## Training", "",
                  "Per generation, means over seeds: KL(π ‖ π_ref) after warmup (π_ref: the "
                  "parent), the damping controller's share of steps with its smoothed per-step KL "
                  "in the band and with a factor at a bound (damped arms), training seconds.", "",
                  "| arm | generation | KL(π ‖ π_ref) | KL in band | factor at a bound | seconds |",
                  "|---|---|---|---|---|---|"]
        for arm, rows in training.items():
            for r in rows:
                lines.append(f"| {arm} | {r['generation']} | {_fmt(r['kl_ref'], '.3f')} | "
                             f"{_fmt(r['in_band_frac'], '.0%')} | "
                             f"{_fmt(r['at_bound_frac'], '.0%')} | "
                             f"{_fmt(r['seconds'], '.0f')} |")
    lines += ["", "## Ratings on one scale", "", ratings.markdown()]
    return "\n".join(lines) + "\n"
