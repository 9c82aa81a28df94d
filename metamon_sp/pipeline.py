"""The self-play pipeline's steps as plain functions over a run folder (no orchestration here:
`flows/` wraps each step in a Prefect task; `metamon-sp selfplay` runs them in a loop).

    runs_dir/<run_name>-<config hash>/
      config.json                   the resolved config
      gen-000/                      bootstrap (data/, filtered/, train/checkpoint) or adopted
      gen-NNN/collect/              self-play of gen-(N-1) against itself
      gen-NNN/filtered/             what gen-N trains on
      gen-NNN/train/checkpoint/     gen-N, trained from gen-(N-1) (also its damping reference)
      gen-NNN/train-I/checkpoint/   learner I of gen-N, its own seed (gate.learners >= I >= 2)
      gen-NNN/gate/checkpoint/      gen-N as chosen by match play against gen-(N-1), with
                                    gate.json (gate.battles > 0: see gate.py)
      gen-NNN/eval/                 games + summary.json + probes.json + diagnostics.json
      gen-NNN/ratings.{json,md}     ratings of everything played so far
      tournament/                   games that fill the round robin's budget
      ratings.{json,md}             the latest ratings
      metrics.jsonl                 evaluation win rates and Elo per generation (step = k)
      wandb/                        wandb's offline files (logger=wandb), one place per run
      .lock                         held by the run writing the folder (see runlock.py)
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

from metamon_sp import atomic
from metamon_sp.bootstrap import bootstrap, matchups
from metamon_sp.checkpoint import load_checkpoint, read_meta
from metamon_sp.collect import SUMMARY as COLLECT_SUMMARY
from metamon_sp.collect import (InstanceResult, Matchup, collect, finish_collection,
                                instance_share, prepare_collection, run_instance, split_battles)
from metamon_sp.config import Config, DampingConfig
from metamon_sp.diagnostics import diagnose
from metamon_sp.elo import DELTAS_TITLE, Ratings, deltas_markdown, generation_deltas, rate_rows
from metamon_sp.evaluate import evaluate, pairing_dir
from metamon_sp.filter import filter_datasets
from metamon_sp.gate import GATE_DIR, RECORD, run_gate
from metamon_sp.players import CHECKPOINT_PREFIX
from metamon_sp.probes import behaviour_probes
from metamon_sp.results import label, read_games
from metamon_sp.runlock import run_lock
from metamon_sp.tournament import missing_games, round_robin
from metamon_sp.tracking import MetricsLogger, RunInfo
from metamon_sp.train import CHECKPOINT_DIR, SUMMARY, candidate_path, candidate_steps, train
from metamon_sp.trajectories import MANIFEST, Dataset

log = logging.getLogger(__name__)


class RunError(RuntimeError):
    pass


@dataclass(frozen=True)
class Run:
    dir: Path

    def gen(self, k: int) -> Path:
        return self.dir / f"gen-{k:03d}"

    def checkpoint(self, k: int) -> Path:
        """Generation k: as its gate chose it where it went through one, else its training's end."""
        gated = self.gen(k) / GATE_DIR / "checkpoint"
        if (gated / "checkpoint.json").exists():
            return gated
        return self.trained(k)

    def trained(self, k: int) -> Path:
        """Generation k's training's end, whatever a gate chose."""
        return self.learner(k, 1) / CHECKPOINT_DIR

    def learner(self, k: int, i: int) -> Path:
        """Where generation k's i-th learner trains (`gate.learners`; the first in `train/`)."""
        return self.gen(k) / ("train" if i == 1 else f"train-{i}")

    def spec(self, k: int) -> str:
        return f"{CHECKPOINT_PREFIX}{self.checkpoint(k)}"

    def generations(self) -> list[int]:
        """Generations whose checkpoint exists, in order."""
        return sorted(int(p.name[4:]) for p in self.dir.glob("gen-[0-9][0-9][0-9]")
                      if (p / "train" / "checkpoint" / "checkpoint.json").exists())

    @property
    def config(self) -> dict[str, Any]:
        return json.loads((self.dir / "config.json").read_text())

    def short(self, player: str) -> str:
        """A player's name within this run: `<run folder>/gen-003` → `gen-003`."""
        return player.removeprefix(f"{self.dir.name}/")

    def info(self, k: int) -> RunInfo:
        """Generation k's place for trackers: `<run>/gen-NNN`, grouped by the run folder."""
        return RunInfo(name=f"{self.dir.name}/gen-{k:03d}", group=self.dir.name, dir=self.dir)


def run_dir_for(cfg: Config) -> Path:
    return Path(cfg.runs_dir) / f"{cfg.run_name}-{cfg.hash()}"


def open_run(cfg: Config) -> Run:
    """The run folder of this config, with the config it was last run with (its hashed part is
    the same every time; evaluation settings may change, see `eval_hash`)."""
    run = Run(run_dir_for(cfg))
    run.dir.mkdir(parents=True, exist_ok=True)
    atomic.write_json(run.dir / "config.json", {**cfg.to_dict(), "config_hash": cfg.hash(),
                                                "eval_hash": cfg.eval_hash()})
    return run


def stage_done(run: Run, stage: str, k: int, instance: int | None = None) -> bool:
    """Whether what `stage` leaves on disk for generation k is there. A cached record that a
    stage finished is only as good as these files (an orchestrator must not trust one without)."""
    g = run.gen(k)
    if stage == "collect-shard":
        prefix = f"i{instance or 0:02d}"  # plain self-play, or any matchup of a pool
        return any((g / "collect").glob(f"{prefix}-*.parquet")) or \
            any((g / "collect").glob(f"{prefix}.vs_*-*.parquet"))
    outputs = {
        "gen0-checkpoint": [run.checkpoint(0) / "checkpoint.json"],
        "prepare-collect": [g / "collect"],
        "finish-collect": [g / "collect" / COLLECT_SUMMARY, g / "collect" / MANIFEST],
        "filter": [g / "filtered" / MANIFEST, g / "filtered" / "filter_report.json"],
        "train": [g / "train" / "checkpoint" / "checkpoint.json",
                  g / "train" / "train_summary.json"],
        "gate": [g / GATE_DIR / RECORD],
        "evaluate": [g / "eval" / "summary.json"],
        "elo": [g / "ratings.json"],
    }
    if stage not in outputs:
        raise ValueError(f"unknown stage {stage!r}")
    return all(p.exists() for p in outputs[stage])


# ------------------------------------------------------------------------------- generation 0
def generation_zero(cfg: Config, run: Run, init_checkpoint: str | Path | None = None,
                    show_progress: bool = True,
                    on_battles: Callable[[int, int], None] | None = None,
                    on_steps: Callable[[int, int], None] | None = None) -> Path:
    """Generation 0: adopt `init_checkpoint`, or bootstrap from heuristic battles."""
    if (run.checkpoint(0) / "checkpoint.json").exists():
        return run.checkpoint(0)
    if init_checkpoint:
        read_meta(init_checkpoint)  # a clear error now rather than mid-run
        tmp = run.checkpoint(0).with_name(".adopting")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(init_checkpoint, tmp)
        tmp.rename(run.checkpoint(0))
        atomic.write_json(run.gen(0) / "adopted.json", {"from": str(Path(init_checkpoint).resolve())})
        return run.checkpoint(0)
    return bootstrap(cfg, run.gen(0), show_progress=show_progress, on_battles=on_battles,
                     on_steps=on_steps, run=run.info(0))


# ------------------------------------------------------------------------- generation k >= 1
def grows_from(cfg: Config, run: Run, k: int) -> Path:
    """Generation k's place in the learner's lineage: what generation k+1 collects with, trains
    from and plays as an earlier generation in the pool (see `GateConfig.lineage`)."""
    if k > 0 and cfg.gate.battles and cfg.gate.lineage == "learner":
        return run.trained(k)
    return run.checkpoint(k)


def selfplay_config(cfg: Config, run: Run, k: int) -> Config:
    """Generation k's collection: generation k-1 plays itself (or its pool), both sides
    recorded, sampling at `collect.temperature` with `collect.epsilon` random legal actions and
    `collect.search_rate` searched ones (evaluation plays at `policy.temperature` and
    `policy.epsilon`, and never searches)."""
    p1 = f"{CHECKPOINT_PREFIX}{grows_from(cfg, run, k - 1)}"
    return replace(cfg, collect=replace(cfg.collect, p1=p1, p2="self", record="both"),
                   policy=replace(cfg.policy, temperature=cfg.collect.temperature,
                                  epsilon=cfg.collect.epsilon, explore=cfg.collect.explore,
                                  greedy=False, search_rate=cfg.collect.search_rate,
                                  search_forks=cfg.collect.search_forks,
                                  search_depth=cfg.collect.search_depth,
                                  search_z=cfg.collect.search_z,
                                  search_top_k=cfg.collect.search_top_k,
                                  search_pool=cfg.team_set if cfg.collect.search_hidden else ""))


def opponent_pool(cfg: Config, run: Run, k: int) -> list[Matchup] | None:
    """Generation k's collection matchups from `pool` weights: generation k−1 against itself,
    earlier generations (latest `pool.previous_k`, evenly or by how often each beat it in its
    evaluation) and baselines. None when it only plays itself (plain self-play)."""
    pc = cfg.pool
    earlier = list(range(max(0, k - 1 - pc.previous_k), k - 1))
    if pc.previous == 0 or not earlier:
        earlier = []
    if not earlier and not any(pc.baselines.values()):
        return None
    weights: dict[tuple[str, str], float] = {}
    if pc.self_play > 0:
        weights[("self", "self")] = pc.self_play
    if earlier:
        share = _prioritised(run, k - 1, earlier) if pc.prioritised else \
            {j: 1.0 / len(earlier) for j in earlier}
        for j in earlier:
            spec = f"{CHECKPOINT_PREFIX}{grows_from(cfg, run, j)}"
            weights[(f"gen_{j:03d}", spec)] = pc.previous * share[j]
    for name, w in sorted(pc.baselines.items()):
        if w > 0:
            weights[(name, name)] = w
    total = sum(weights.values())
    names = list(weights)
    counts = _apportion(cfg.collect.battles, [weights[n] / total for n in names])
    record = "both" if pc.record_opponents else "p1"
    return [Matchup(name, spec, n, "both" if spec == "self" else record)
            for (name, spec), n in zip(names, counts) if n > 0]


def _prioritised(run: Run, current: int, earlier: list[int]) -> dict[int, float]:
    """Each earlier generation's share ∝ how often it beat `current` in `current`'s evaluation
    (prioritised fictitious self-play, f(p) = 1 − p), even where it was not played."""
    summary = run.gen(current) / "eval" / "summary.json"
    opponents = json.loads(summary.read_text())["opponents"] if summary.exists() else {}
    loss = {}
    for j in earlier:
        s = opponents.get(label(run.spec(j)))
        loss[j] = 1.0 - s["win_rate"] + 0.05 if s else 0.5  # +0.05: never drop one entirely
    total = sum(loss.values())
    return {j: v / total for j, v in loss.items()}


def _apportion(total: int, shares: list[float]) -> list[int]:
    """Integers summing to `total` in proportion to `shares` (largest remainders)."""
    raw = [total * s for s in shares]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])[:total - sum(counts)]:
        counts[i] += 1
    return counts


def generation_pool(cfg: Config, run: Run, k: int) -> list[Matchup] | None:
    """Generation k's pool: as recorded in `collect/pool.json` once its collection was prepared
    (so a resumed collection plays the same), else as the config and run give it now."""
    path = run.gen(k) / "collect" / "pool.json"
    if path.exists():
        return [Matchup(**m) for m in json.loads(path.read_text())] or None
    return opponent_pool(cfg, run, k)


def prepare_generation_collection(cfg: Config, run: Run, k: int) -> list[Matchup] | None:
    """Check players, teams and folder, and record the pool (`collect/pool.json`)."""
    pool = generation_pool(cfg, run, k)
    prepare_collection(selfplay_config(cfg, run, k), run.gen(k) / "collect", pool)
    path = run.gen(k) / "collect" / "pool.json"
    if not path.exists():
        atomic.write_json(path, [asdict(m) for m in pool or ()])
    return pool


def collect_generation(cfg: Config, run: Run, k: int, show_progress: bool = True) -> Path:
    data = run.gen(k) / "collect"
    pool = prepare_generation_collection(cfg, run, k)
    collect(selfplay_config(cfg, run, k), data, generation=k, show_progress=show_progress,
            pool=pool)
    return data


def collect_shard(cfg: Config, run: Run, k: int, instance: int,
                  progress: Callable[[int], None] | None = None) -> InstanceResult:
    """One of `collect.parallel_instances` shards of generation k's collection, on its own
    server: what a distributed task runner fans out (prepare first, finish after)."""
    ccfg = selfplay_config(cfg, run, k)
    pool = generation_pool(cfg, run, k)  # prepared (checked and recorded) before the shards
    parts = ccfg.collect.parallel_instances
    n = split_battles(ccfg.collect.battles, parts)[instance]
    return run_instance(ccfg, run.gen(k) / "collect", instance, n, generation=k, progress=progress,
                        opponents=instance_share(pool, instance, parts))


def finish_generation_collection(cfg: Config, run: Run, k: int, results: list[InstanceResult],
                                 seconds: float) -> dict[str, Any]:
    return finish_collection(selfplay_config(cfg, run, k), run.gen(k) / "collect", results,
                             seconds, generation=k, pool=generation_pool(cfg, run, k))


def filter_generation(cfg: Config, run: Run, k: int) -> Path:
    out = run.gen(k) / "filtered"
    if not (out / "manifest.json").exists():
        filter_datasets(cfg, [run.gen(k) / "collect"], out)
    return out


def training_data(cfg: Config, run: Run, k: int) -> tuple[list[Path], list[float]]:
    """The replay window: generation k's filtered data and that of the
    `mix_previous_generations` before it (generation 0's heuristic data when the window reaches
    it and it was bootstrapped here, times `mix_bootstrap_weight`), newest first, with weights
    decaying by age."""
    earliest = max(0, k - cfg.mix_previous_generations)
    dirs, weights = [], []
    for j in range(k, earliest - 1, -1):
        d = run.gen(j) / "filtered"
        weight = cfg.mix_age_decay ** (k - j)
        if j == 0:
            if not (d / MANIFEST).exists():
                continue  # an adopted generation 0 has no data of its own
            weight *= cfg.mix_bootstrap_weight if k > 0 else 1.0
            if weight == 0:
                continue
        dirs.append(d)
        weights.append(weight)
    return dirs, weights


def train_generation(cfg: Config, run: Run, k: int,
                     on_progress: Callable[[int, int], None] | None = None) -> Path:
    """Fine-tune generation k-1 (`grows_from`) into generation k; k-1 is also its damping
    reference. With `gate.learners` > 1 the other learners train first, each with its own seed,
    so the first learner's end (what `stage_done` looks for) means all of them are done."""
    dirs, weights = training_data(cfg, run, k)
    tcfg = generation_train_config(cfg, k)
    for i in [*range(2, cfg.gate.learners + 1), 1]:
        end = train(replace(tcfg, seed=learner_seed(cfg.seed, i)), dirs, run.learner(k, i),
                    init=grows_from(cfg, run, k - 1), generation=k, on_progress=on_progress,
                    run=run.info(k), weights=weights,
                    keep=cfg.gate.candidates if cfg.gate.battles else ())
    return end


def learner_seed(seed: int, i: int) -> int:
    """The i-th learner's training seed: the run's for the first, so one learner trains as
    before; a large odd stride keeps the others clear of seeds runs use."""
    return seed + 1_000_003 * (i - 1)


def generation_train_config(cfg: Config, k: int) -> Config:
    """`cfg` as generation k trains: the first fine-tune (k = 1) takes `train.first_steps`,
    `train.first_lr` and `train.first_critic_warmup` where they are set, and
    `damping.generations` > 0 leaves later ones undamped."""
    tc, dc = cfg.train, cfg.damping
    if k == 1 and tc.first_steps:
        tc = replace(tc, steps=tc.first_steps, epochs=0.0)
    if k == 1 and tc.first_lr:
        tc = replace(tc, lr=tc.first_lr)
    if k == 1 and tc.first_critic_warmup:
        tc = replace(tc, critic_warmup=tc.first_critic_warmup)
    if dc.generations and k > dc.generations:
        dc = DampingConfig()
    return cfg if (tc, dc) == (cfg.train, cfg.damping) else replace(cfg, train=tc, damping=dc)


def gate_generation(cfg: Config, run: Run, k: int, show_progress: bool = True
                    ) -> dict[str, Any] | None:
    """Choose generation k among its training's candidates by match play against generation
    k−1 (`gate.battles` > 0; see gate.py). None without a gate."""
    if not cfg.gate.battles or k == 0:
        return None
    record = run.gen(k) / GATE_DIR / RECORD
    if record.exists():
        return json.loads(record.read_text())
    candidates = {}
    for i in range(1, cfg.gate.learners + 1):
        out = run.learner(k, i)
        if not (out / SUMMARY).exists():
            raise RunError(f"{out} has no finished training (learner {i} of gate.learners="
                           f"{cfg.gate.learners}): delete {run.learner(k, 1)} and run again; "
                           f"generation {k}'s finished learners are kept.")
        steps = json.loads((out / SUMMARY).read_text())["steps"]
        for step in candidate_steps(cfg.gate.candidates, steps):
            path = candidate_path(out, step, steps)
            if not (path / "checkpoint.json").exists():
                raise RunError(f"{path} is missing: generation {k} was trained without "
                               f"gate.candidates={cfg.gate.candidates}; delete {out} to retrain "
                               "it.")
            name = "end" if path.name == CHECKPOINT_DIR else path.name
            candidates[name if i == 1 else f"learner{i}-{name}"] = path
    return run_gate(cfg, candidates, run.checkpoint(k - 1), run.gen(k) / GATE_DIR, k,
                    show_progress=show_progress)


# ----------------------------------------------------------------------------- yardsticks
def opponents_for(cfg: Config, run: Run, k: int) -> list[str]:
    opponents = list(cfg.eval.opponents)
    opponents += [run.spec(j) for j in range(max(0, k - cfg.eval.previous_generations), k)]
    reference = reference_spec(cfg, run)
    if k > 0 and reference not in opponents:
        opponents.append(reference)
    return opponents


def reference_spec(cfg: Config, run: Run) -> str:
    return f"{CHECKPOINT_PREFIX}{cfg.eval.reference}" if cfg.eval.reference else run.spec(0)


def evaluate_generation(cfg: Config, run: Run, k: int, show_progress: bool = True
                        ) -> dict[str, Any]:
    out = run.gen(k) / "eval"
    summary = evaluate(cfg, run.spec(k), opponents_for(cfg, run, k), cfg.eval.battles, out,
                       show_progress=show_progress)
    # What this evaluation was made with: evaluation settings can change on a finished run.
    summary.update(eval=asdict(cfg.eval), elo=asdict(cfg.elo), eval_hash=cfg.eval_hash())
    atomic.write_json(out / "summary.json", summary)
    probes = behaviour_probes(player_trajectories(out))
    atomic.write_json(out / "probes.json", probes)
    atomic.write_json(out / "diagnostics.json", diagnose_generation(run, k))
    return summary


def diagnose_generation(run: Run, k: int) -> dict[str, Any]:
    """Generation k's learner diagnostics on games it never trained on: its own evaluation
    games, and (`parent`) its parent's, i.e. how often it now chooses what generation k−1 did."""
    model, _ = load_checkpoint(run.checkpoint(k))
    out = {"own_games": diagnose(model, player_trajectories(run.gen(k) / "eval"))}
    if k > 0 and (run.gen(k - 1) / "eval" / "games").exists():
        out["parent_games"] = diagnose(model, player_trajectories(run.gen(k - 1) / "eval"))
    return out


def player_trajectories(eval_dir: Path):
    """The evaluated player's own trajectories (it is p1 in a-is-p1, p2 in a-is-p2)."""
    for half, side in (("a-is-p1", "p1"), ("a-is-p2", "p2")):
        for data in sorted((eval_dir / "games").glob(f"*/{half}")):
            yield from (t for t in Dataset(data) if t.side == side)


def rating_pool(cfg: Config, run: Run, k: int) -> list[str]:
    """Who is rated after generation k: the baselines, generations 0..k, the reference."""
    pool = list(cfg.eval.opponents) + [run.spec(j) for j in range(k + 1)]
    reference = reference_spec(cfg, run)
    if reference not in pool:
        pool.append(reference)
    return pool


def rate_generation(cfg: Config, run: Run, k: int) -> Ratings:
    """Fill the round robin's budget over the pool, then rate everything played so far."""
    if cfg.elo.games_per_pair:
        round_robin(cfg, rating_pool(cfg, run, k), cfg.elo.games_per_pair, run.dir / "tournament",
                    known=[run.dir])
    ratings = rate_rows(read_games([run.dir]), anchor=cfg.elo.anchor,
                        anchor_elo=cfg.elo.anchor_elo, bootstrap=cfg.elo.bootstrap, seed=cfg.seed,
                        prior_sigma=cfg.elo.prior_sigma)
    deltas = run_deltas(run, k, ratings)
    for folder in (run.gen(k), run.dir):
        atomic.write_json(folder / "ratings.json", {"generation": k, "eval_hash": cfg.eval_hash(),
                                                    **ratings.to_dict(), "deltas": deltas})
        atomic.write_text(folder / "ratings.md", f"{ratings.markdown()}\n### {DELTAS_TITLE}\n\n"
                                                 f"{deltas_markdown(deltas)}")
    log_evaluation(cfg, run, k, ratings)
    return ratings


def run_deltas(run: Run, k: int, ratings: Ratings) -> list[dict[str, Any]]:
    """Generations 1..k: Elo less the previous generation's and less gen 0's, paired intervals."""
    return generation_deltas(ratings, [label(run.spec(j)) for j in range(k + 1)])


def log_evaluation(cfg: Config, run: Run, k: int, ratings: Ratings) -> None:
    """Generation k's win rates and the ratings to `metrics.jsonl` (and wandb: job `evaluate`)."""
    metrics: dict[str, Any] = {}
    summary_path = run.gen(k) / "eval" / "summary.json"
    if summary_path.exists():
        for name, s in json.loads(summary_path.read_text())["opponents"].items():
            for key in ("win_rate", "ci_low", "ci_high", "valid_action_rate"):
                metrics[f"eval/{key}/{run.short(name)}"] = s[key]
    for r in ratings.to_dict()["ratings"]:
        name = run.short(r["player"])
        metrics[f"elo/{name}"] = r["elo"]
        metrics[f"elo_ci_low/{name}"] = r["ci_low"]
        metrics[f"elo_ci_high/{name}"] = r["ci_high"]
    for d in run_deltas(run, k, ratings):
        name = run.short(d["player"])
        for key, vs in (("prev", "vs_previous"), ("gen0", "vs_gen0")):
            if d[vs] is not None:
                lo, hi = d[f"{vs}_ci"]
                metrics.update({f"elo_delta_{key}/{name}": d[vs],
                                f"elo_delta_{key}_ci_low/{name}": lo,
                                f"elo_delta_{key}_ci_high/{name}": hi})
    with MetricsLogger(run.dir / "metrics.jsonl", cfg.logger, run=run.info(k),
                       job_type="evaluate", wandb_mode=cfg.wandb_mode,
                       config={**cfg.to_dict(), "config_hash": cfg.hash(),
                               "eval_hash": cfg.eval_hash(), "generation": k}) as logger:
        logger.log(k, metrics)


def run_selfplay(cfg: Config, init_checkpoint: str | Path | None = None,
                 show_progress: bool = True) -> Run:
    """Every step of every generation, in order, skipping what is already done (evaluation is
    redone where the evaluation settings changed)."""
    with run_lock(run_dir_for(cfg), owner="metamon-sp selfplay"):  # before writing anything
        run = open_run(cfg)
        generation_zero(cfg, run, init_checkpoint, show_progress)
        for k in range(0, cfg.generations + 1):
            if k > 0 and not stage_done(run, "train", k):
                collect_generation(cfg, run, k, show_progress)
                filter_generation(cfg, run, k)
                train_generation(cfg, run, k)
            gate_generation(cfg, run, k, show_progress)
            if not evaluated(cfg, run, k):
                evaluate_generation(cfg, run, k, show_progress)
                rate_generation(cfg, run, k)
    return run


def evaluated(cfg: Config, run: Run, k: int) -> bool:
    """Generation k was evaluated and rated with the current evaluation settings."""
    path = run.gen(k) / "ratings.json"
    return path.exists() and json.loads(path.read_text()).get("eval_hash") == cfg.eval_hash()


# ------------------------------------------------------------ battles an orchestrator may fan out
# Each job plays into the very folder its stage reads, on a server of its own, and the stage
# resumes from what is written: played beforehand in parallel (processes, a Dask cluster), the
# stage then only summarises. Without them, each stage plays its battles on one server.
Pairing = tuple[str, str, int, Path]  # (player a, player b, games, folder)


def bootstrap_jobs(cfg: Config, run: Run) -> list[tuple[Config, Path, int, int]]:
    """Generation 0's heuristic battles: (matchup config, dataset folder, instance, battles),
    one job per matchup and collection instance."""
    if stage_done(run, "gen0-checkpoint", 0):
        return []
    return [(c, d, i, n) for c, d in matchups(cfg, run.gen(0))
            if not (d / COLLECT_SUMMARY).exists()
            for i, n in enumerate(split_battles(c.collect.battles, c.collect.parallel_instances))]


def evaluation_jobs(cfg: Config, run: Run, k: int) -> list[Pairing]:
    """Generation k's evaluation pairings (none if evaluated with these settings already)."""
    if evaluated(cfg, run, k):
        return []
    return [(run.spec(k), opp, cfg.eval.battles, pairing_dir(run.gen(k) / "eval", label(opp)))
            for opp in opponents_for(cfg, run, k)]


def tournament_jobs(cfg: Config, run: Run, k: int) -> list[Pairing]:
    """The round-robin pairs short of `elo.games_per_pair` after generation k's evaluation."""
    if not cfg.elo.games_per_pair or evaluated(cfg, run, k):
        return []
    return missing_games(cfg, rating_pool(cfg, run, k), cfg.elo.games_per_pair,
                         run.dir / "tournament", known=[run.dir])


def final_result(run: Run) -> dict[str, Any]:
    """The last rated generation: its Elo with the 95% interval, its paired Elo differences from
    gen 0 and from the previous generation (with intervals), and its win rates (what a sweep
    table shows and a sweeper optimises)."""
    ratings = json.loads((run.dir / "ratings.json").read_text())
    k = int(ratings["generation"])
    name = f"{run.dir.name}/gen-{k:03d}"
    [mine] = [r for r in ratings["ratings"] if r["player"] == name]
    out: dict[str, Any] = {"generation": k, "elo": mine["elo"], "elo_ci_low": mine["ci_low"],
                           "elo_ci_high": mine["ci_high"]}
    for d in [d for d in ratings.get("deltas", []) if d["player"] == name]:
        for key, vs in (("gen0", "vs_gen0"), ("prev", "vs_previous")):
            lo, hi = d[f"{vs}_ci"] or (None, None)
            out.update({f"elo_delta_{key}": d[vs], f"elo_delta_{key}_ci_low": lo,
                        f"elo_delta_{key}_ci_high": hi})
    summary = run.gen(k) / "eval" / "summary.json"
    if summary.exists():
        for opp, s in json.loads(summary.read_text())["opponents"].items():
            out[f"win_rate/{run.short(opp)}"] = s["win_rate"]
    return out
