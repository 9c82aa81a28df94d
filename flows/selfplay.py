"""The self-play flow: generation 0, then per generation collect → filter → train → evaluate → elo.

    prefect deployment run selfplay/gen1 --param generations=5      (a served deployment)
    python -m flows.selfplay generations=2 scale=smoke run_name=bar runs_dir=DIR
    python -m flows.selfplay -m damping.kl_coef_init=0.01,0.05 damping.ent_power_alpha=0.5,0.7

Each generation is a subflow named `gen-NNN`; its collection shards fan out through the task
runner chosen by `runner=` (threads, processes, dask). Generation k's checkpoint seeds k+1 and
is its damping reference.
"""

# No `from __future__ import annotations`: a served deployment loads this module under another
# name, and Prefect validates flow parameters from the annotations, so they must be real objects.
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from metamon_sp.config import Config, load_config
from metamon_sp.pipeline import open_run
from tasks.common import run_slug
from tasks.stages import (collect_shard, elo_stage, evaluate_stage, filter_stage, finish_collect,
                          generation_zero, prepare_collect, report_stage, train_stage)


def task_runner(cfg: Config):
    """Where collection shards run: local threads or processes, or a Dask cluster."""
    n = cfg.collect.parallel_instances
    if cfg.runner == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.dask_address:
            return DaskTaskRunner(address=cfg.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": n, "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None})
    if cfg.runner == "processes":
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
    create_markdown_artifact(
        f"## Ratings after generation {k}\n\n| player | Elo | 95% interval | games |\n"
        f"|---|---|---|---|\n{rows}\n\nAnchor: {ratings['anchor']} = {ratings['anchor_elo']:.0f}."
        f"\n\nReport: `{report}`\n",
        key=f"{slug}-gen-{k:03d}-ratings", description=f"Elo after generation {k}; report path")


@flow(name="generation-0", flow_run_name="gen-000")
def generation_zero_flow(cfg: Config, run_dir: str, init_checkpoint: str | None = None) -> dict:
    ckpt = generation_zero(cfg, run_dir, init_checkpoint)
    evaluation = evaluate_stage(cfg, run_dir, 0)
    ratings = elo_stage(cfg, run_dir, 0)
    _publish(run_dir, 0, evaluation, ratings, report_stage(run_dir))
    return {"checkpoint": ckpt, "evaluation": evaluation}


@flow(name="generation", flow_run_name=_generation_name)
def generation_flow(cfg: Config, run_dir: str, k: int) -> dict:
    log = get_run_logger()
    prepare_collect(cfg, run_dir, k)
    t0 = time.monotonic()
    shards = [collect_shard.submit(cfg, run_dir, k, i)
              for i in range(cfg.collect.parallel_instances)]
    collected = finish_collect(cfg, run_dir, k, [s.result() for s in shards],
                               time.monotonic() - t0)
    filter_stage(cfg, run_dir, k)
    trained = train_stage(cfg, run_dir, k)
    evaluation = evaluate_stage(cfg, run_dir, k)
    ratings = elo_stage(cfg, run_dir, k)
    report = report_stage(run_dir)
    _publish(run_dir, k, evaluation, ratings, report)
    log.info("generation %d done: checkpoint %s, report %s", k, trained["checkpoint"], report)
    return {"collect": collected, "checkpoint": trained["checkpoint"], "report": report}


def _selfplay_name() -> str:
    p = flow_run.parameters
    return f"{p.get('run_name') or 'selfplay'}-{p.get('generations')}-generations"


@flow(name="selfplay", flow_run_name=_selfplay_name)
def selfplay(generations: int = 5, overrides: list[str] | None = None,
             run_name: str | None = None, init_checkpoint: str | None = None) -> dict:
    """Run `generations` self-play generations of the config composed from `overrides`."""
    extra = [f"generations={generations}"] + ([f"run_name={run_name}"] if run_name else [])
    cfg = load_config(list(overrides or []) + extra)
    run = open_run(cfg)
    run_dir = str(run.dir.resolve())
    log = get_run_logger()
    log.info("run folder %s (config hash %s)", run_dir, cfg.hash())
    timings = {}
    t0 = time.monotonic()
    generation_zero_flow(cfg, run_dir, init_checkpoint)
    timings[0] = time.monotonic() - t0
    for k in range(1, cfg.generations + 1):
        t0 = time.monotonic()
        generation_flow.with_options(task_runner=task_runner(cfg))(cfg, run_dir, k)
        timings[k] = time.monotonic() - t0
    ratings = (Path(run_dir) / "ratings.md").read_text()
    report = str(Path(run_dir) / "report" / "report.md")
    create_markdown_artifact(f"# {run.dir.name}\n\n{ratings}\n\nReport: `{report}`\n",
                             key=f"{run_slug(run_dir)}-summary", description="final ratings")
    return {"run_dir": run_dir, "report": report, "generation_seconds": timings}


def main() -> None:
    """Hydra entry point: `python -m flows.selfplay key=value ...` (and `-m` for sweeps)."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from metamon_sp.config import CONF_DIR, register_configs

    register_configs()

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
    def _run(cfg: DictConfig) -> None:
        overrides = [o for o in HydraConfig.get().overrides.task
                     if not o.startswith(("generations=", "hydra"))]
        result = selfplay(generations=int(cfg.generations), overrides=overrides)
        print((Path(result["run_dir"]) / "ratings.md").read_text())
        print(f"run: {result['run_dir']}\nreport: {result['report']}")

    _run()


if __name__ == "__main__":
    main()
