"""The self-play flow: generation 0, then per generation collect → filter → train → evaluate → elo.

    prefect deployment run selfplay/gen1 --param generations=5 --param scale=smoke (served)
    python -m flows.selfplay generations=2 scale=smoke run_name=bar runs_dir=DIR
    python -m flows.selfplay -m damping.kl_coef_init=0.01,0.05 damping.ent_power_alpha=0.5,0.7

Each generation is a subflow named `gen-NNN`; its collection shards fan out through the task
runner chosen by `runner=` (threads, processes, dask). Generation k's checkpoint seeds k+1 and
is its damping reference. Task results are kept in the run folder (tasks.common.RESULTS) and are
trusted only while the stage's files exist; the run folder is locked while the flow writes it.
"""

# No `from __future__ import annotations`: a served deployment loads this module under another
# name, and Prefect validates flow parameters from the annotations, so they must be real objects.
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from metamon_sp import pipeline
from metamon_sp.config import Config, config_choices, load_config
from metamon_sp.elo import DELTAS_TITLE, deltas_markdown
from metamon_sp.pipeline import Run, final_result, open_run, run_dir_for
from metamon_sp.results import label
from metamon_sp.runlock import run_lock
from tasks.common import HOUR, run_slug
from tasks.stages import for_run

# The UI's run form offers these as choices; they are the option files under conf/.
Scale = Literal[config_choices("scale")]
Experiment = Literal[config_choices("experiment")]
Reward = Literal[config_choices("reward")]
Damping = Literal[config_choices("damping")]
Model = Literal[config_choices("model")]


def task_runner(cfg: Config):
    """Where fanned-out work runs: collection shards, and (processes, Dask) generation 0's
    matchups, evaluation pairings and tournament pairs; local threads or processes, or Dask."""
    n = cfg.collect.parallel_instances
    if cfg.resolved_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.dask_address:
            return DaskTaskRunner(address=cfg.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": n, "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None})
    if cfg.resolved_runner == "processes":
        return ProcessPoolTaskRunner(max_workers=n)
    return ThreadPoolTaskRunner(max_workers=n)


def _generation_name() -> str:
    return f"gen-{int(flow_run.parameters['k']):03d}"


def _publish(run_dir: str, k: int, evaluation: dict[str, Any], ratings: dict[str, Any],
             report: str) -> None:
    slug = run_slug(run_dir)
    create_table_artifact(
        [{"opponent": name, "win_rate": s["win_rate"], "ci_low": s["ci_low"],
          "ci_high": s["ci_high"], "games": s["games"], "valid_action_rate": s["valid_action_rate"],
          "mean_turns": s["mean_turns"]} for name, s in evaluation["opponents"].items()],
        key=f"{slug}-gen-{k:03d}-eval",
        description=f"gen {k} ({evaluation['player']}): win rates with 95% Wilson intervals")
    rows = "\n".join(f"| {r['player']} | {r['elo']:.0f} | [{r['ci_low']:.0f}, {r['ci_high']:.0f}] "
                     f"| {r['games']} |" for r in ratings["ratings"])
    written = Run(Path(run_dir)).gen(k) / "ratings.json"  # the elo task's file has the deltas
    deltas = json.loads(written.read_text()).get("deltas", []) if written.exists() else []
    create_markdown_artifact(
        f"## Ratings after generation {k}\n\n| player | Elo | 95% interval | games |\n"
        f"|---|---|---|---|\n{rows}\n\nAnchor: {ratings['anchor']} = {ratings['anchor_elo']:.0f}."
        f"\n\n### {DELTAS_TITLE}\n\n{deltas_markdown(deltas)}\nReport: `{report}`\n",
        key=f"{slug}-gen-{k:03d}-ratings", description=f"Elo after generation {k}; report path")


def _fans_out(cfg: Config) -> bool:
    """Battles of generation 0, evaluation and the tournament go through the task runner when
    it runs tasks in parallel (processes, Dask); with threads each stage plays on one server."""
    return cfg.resolved_runner != "threads"


def _play_pairings(cfg: Config, t: Any, jobs: list) -> None:
    """Play each pairing as a task through the runner; the stage after them only summarises."""
    for future in [t.pairing.submit(cfg, a, b, n, str(folder), f"{label(a)}-vs-{label(b)}")
                   for a, b, n, folder in jobs]:
        future.result()


def _evaluate_and_rate(cfg: Config, run_dir: str, k: int, t: Any) -> tuple[dict, dict]:
    run = Run(Path(run_dir))
    if pipeline.evaluated(cfg, run, k) and pipeline.stage_done(run, "evaluate", k):
        # evaluated and rated with these settings already, outside this flow (a study's
        # generation 0 is evaluated once per seed and shared): as run_selfplay, skip it
        return (json.loads((run.gen(k) / "eval" / "summary.json").read_text()),
                json.loads((run.gen(k) / "ratings.json").read_text()))
    if _fans_out(cfg):
        _play_pairings(cfg, t, pipeline.evaluation_jobs(cfg, run, k))
    evaluation = t.evaluate(cfg, run_dir, k)
    if _fans_out(cfg):
        _play_pairings(cfg, t, pipeline.tournament_jobs(cfg, run, k))
    return evaluation, t.elo(cfg, run_dir, k)


@flow(name="generation-0", flow_run_name="gen-000")
def generation_zero_flow(cfg: Config, run_dir: str, init_checkpoint: Optional[str] = None) -> dict:
    t = for_run(run_dir)
    if _fans_out(cfg) and not init_checkpoint:
        for future in [t.bootstrap_collect.submit(c, str(d), i, n, d.name)
                       for c, d, i, n in pipeline.bootstrap_jobs(cfg, Run(Path(run_dir)))]:
            future.result()
    ckpt = t.generation_zero(cfg, run_dir, init_checkpoint)
    evaluation, ratings = _evaluate_and_rate(cfg, run_dir, 0, t)
    _publish(run_dir, 0, evaluation, ratings, t.report(run_dir))
    return {"checkpoint": ckpt, "evaluation": evaluation}


@flow(name="generation", flow_run_name=_generation_name)
def generation_flow(cfg: Config, run_dir: str, k: int) -> dict:
    log = get_run_logger()
    t = for_run(run_dir)
    t.prepare_collect(cfg, run_dir, k)
    shard = t.collect_shard
    if cfg.resolved_runner != "threads":  # a timeout cannot interrupt a worker thread
        shard = shard.with_options(timeout_seconds=6 * HOUR)
    t0 = time.monotonic()
    shards = [shard.submit(cfg, run_dir, k, i) for i in range(cfg.collect.parallel_instances)]
    collected = t.finish_collect(cfg, run_dir, k, [s.result() for s in shards],
                                 time.monotonic() - t0)
    t.filter(cfg, run_dir, k)
    t.train(cfg, run_dir, k)
    if cfg.gate.battles:
        t.gate(cfg, run_dir, k)
    evaluation, ratings = _evaluate_and_rate(cfg, run_dir, k, t)
    report = t.report(run_dir)
    _publish(run_dir, k, evaluation, ratings, report)
    checkpoint = str(Run(Path(run_dir)).checkpoint(k))  # the gate's choice, if it has one
    log.info("generation %d done: checkpoint %s, report %s", k, checkpoint, report)
    return {"collect": collected, "checkpoint": checkpoint, "report": report}


def _selfplay_name() -> str:
    p = flow_run.parameters
    return f"{p.get('run_name') or 'selfplay'}-{p.get('generations')}-generations"


def compose_overrides(generations: int, overrides: Optional[list[str]] = None,
                      **choices: Any) -> list[str]:
    """Hydra overrides from the typed parameters (those set, unless `overrides` sets the same key)
    and the free-form list."""
    free = list(overrides or [])
    named = {o.split("=", 1)[0].lstrip("+~") for o in free}
    typed = [f"{key}={value}" for key, value in choices.items()
             if value is not None and key not in named]
    return typed + free + [f"generations={generations}"]


@flow(name="selfplay", flow_run_name=_selfplay_name)
def selfplay(generations: int = 5,
             scale: Scale = "laptop",
             experiment: Optional[Experiment] = None,
             reward: Optional[Reward] = None,
             damping: Optional[Damping] = None,
             model: Optional[Model] = None,
             seed: int = 0,
             run_name: Optional[str] = None,
             runs_dir: Optional[str] = None,
             overrides: Optional[list[str]] = None,
             init_checkpoint: Optional[str] = None) -> dict:
    """Generation 0, then `generations` self-play generations of the composed config.

    Args:
        generations: Self-play generations after generation 0.
        scale: smoke (a generation in about a minute), laptop (a small real CPU run), gpu
            (the seed scale: 50k battles per generation, the large model on a GPU).
        experiment: A whole study arm (baseline: no damping, damped: dynamic damping), or
            strong: the strength benchmark's recipe (slower per generation, stronger).
        reward: The reward the learner is trained with (empty: the config's, default_shaped).
        damping: none (the control) or dynamic (empty: the config's or the experiment's).
        model: The policy network's size (empty: the scale's).
        seed: Seeds team sampling, the baselines and the learner.
        run_name: The run folder's name before its config hash (empty: selfplay or the
            experiment's).
        runs_dir: Where run folders live (empty: the config's, `runs`).
        overrides: Any other Hydra overrides, e.g. ["collect.battles=400", "train.steps=3000"];
            they are applied after the choices above.
        init_checkpoint: Adopt this checkpoint as generation 0 instead of bootstrapping one.
    """
    cfg = load_config(compose_overrides(
        generations, overrides, scale=scale, experiment=experiment, reward=reward,
        damping=damping, model=model, seed=seed, run_name=run_name, runs_dir=runs_dir))
    cfg = replace(cfg, train=replace(cfg.train, progress=False))  # no tqdm bars in a flow run
    run_dir = str(run_dir_for(cfg).resolve())
    log = get_run_logger()
    log.info("run folder %s (config hash %s, eval hash %s)", run_dir, cfg.hash(),
             cfg.eval_hash())
    timings = {}
    with run_lock(run_dir, owner=f"flow run {flow_run.id}"):  # before writing anything
        run = open_run(cfg)
        t0 = time.monotonic()
        generation_zero_flow.with_options(task_runner=task_runner(cfg))(cfg, run_dir,
                                                                      init_checkpoint)
        timings[0] = time.monotonic() - t0
        for k in range(1, cfg.generations + 1):
            t0 = time.monotonic()
            generation_flow.with_options(task_runner=task_runner(cfg))(cfg, run_dir, k)
            timings[k] = time.monotonic() - t0
    ratings = (Path(run_dir) / "ratings.md").read_text()
    report = str(Path(run_dir) / "report" / "report.md")
    final = final_result(Run(Path(run_dir)))
    create_markdown_artifact(f"# {run.dir.name}\n\n{ratings}\n\nReport: `{report}`\n",
                             key=f"{run_slug(run_dir)}-summary", description="final ratings")
    return {"run_dir": run_dir, "report": report, "generation_seconds": timings, "final": final}


def main() -> None:
    """Hydra entry point: `python -m flows.selfplay key=value ...` (and `-m` for sweeps).

    Returns the final generation's Elo to Hydra, so a sweeper (e.g. Optuna) can optimise it;
    each job of a multirun adds its row to the sweep's table (metamon_sp.sweep)."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import DictConfig

    from flows.prefect_api import PrefectAPIError, check_api, configured_api_url, sweep_api
    from metamon_sp.config import CONF_DIR, register_configs
    from metamon_sp.sweep import record_job

    register_configs()

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
    def _run(cfg: DictConfig) -> float:
        hc = HydraConfig.get()
        task_overrides = list(hc.overrides.task)
        overrides = [o for o in task_overrides if not o.startswith(("generations=", "hydra"))]
        if hc.mode == RunMode.MULTIRUN:
            _share_cores(hc)
        t0, result, status = time.monotonic(), None, "failed"
        try:
            result = selfplay(generations=int(cfg.generations), overrides=overrides)
            status = "completed"
        finally:
            if hc.mode == RunMode.MULTIRUN:
                table = record_job(hc.sweep.dir, hc.job.num, task_overrides,
                                   result["run_dir"] if result else _run_dir_of(overrides),
                                   time.monotonic() - t0, status)
                print(f"sweep table: {Path(hc.sweep.dir) / 'sweep.csv'} ({len(table)} runs)")
        print((Path(result["run_dir"]) / "ratings.md").read_text())
        final = result["final"]
        print(f"final: gen {final['generation']} Elo {final['elo']:.0f} "
              f"[{final['elo_ci_low']:.0f}, {final['elo_ci_high']:.0f}]")
        if final.get("elo_delta_gen0") is not None:  # the line that says whether it got stronger
            lo, hi = final["elo_delta_gen0_ci_low"], final["elo_delta_gen0_ci_high"]
            verdict = "stronger" if lo > 0 else "weaker" if hi < 0 else "no significant change"
            print(f"gen {final['generation']} vs gen 0: {final['elo_delta_gen0']:+.0f} Elo "
                  f"[{lo:+.0f}, {hi:+.0f}] (paired 95% interval): {verdict}")
        print(f"run: {result['run_dir']}\nreport: {result['report']}")
        return float(final["elo"])

    try:
        if any(a in ("-m", "--multirun") for a in sys.argv[1:]):
            with sweep_api():
                _run()
        else:
            if configured_api_url():
                check_api(configured_api_url())
            _run()
    except PrefectAPIError as e:
        sys.exit(f"python -m flows.selfplay: {e}")


def _share_cores(hc: Any) -> None:
    """Jobs a parallel launcher runs side by side split the cores: torch threads competing for
    the same cores make training ~50x slower (measured on 2 cores)."""
    import os

    import torch

    n_jobs = int(hc.launcher.get("n_jobs", 1) or 1)
    cores = os.cpu_count() or 1
    if n_jobs != 1:
        torch.set_num_threads(max(1, cores // (cores if n_jobs < 0 else n_jobs)))


def _run_dir_of(overrides: list[str]) -> Optional[str]:
    """The run folder a failed job was writing, if its config composes."""
    try:
        cfg = load_config(overrides)
    except Exception:
        return None
    from metamon_sp.pipeline import run_dir_for

    path = run_dir_for(cfg)
    return str(path) if path.exists() else None


if __name__ == "__main__":
    main()
