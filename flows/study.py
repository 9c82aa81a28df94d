"""The study flow: one generation 0, then every arm × seed as a self-play subflow, one rating
scale, a verdict that accounts for seed variance (metamon_sp/study.py).

    prefect deployment run study/damping --param seeds=3 --param generations=3 (served)
    prefect deployment run study/reward --param seeds=3 --param generations=3 --param scale=smoke
    python -m flows.study study=damping seeds=3 generations=3 scale=laptop

Every run is the `selfplay` flow itself (a subflow per run, each with its generations, tasks
and artifacts in the UI); they go one after another, or through the task runner when
`study.parallel` > 1 (threads; Dask with `runner=dask`, on `dask_address` when set). Re-running
the same study skips what is finished: generation 0, finished runs, finished generations.
"""

# No `from __future__ import annotations`: Prefect validates flow parameters from the
# annotations, so they must be real objects (see flows/selfplay.py).
import sys
from pathlib import Path
from typing import Any, Literal, Optional

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows.selfplay import Scale, selfplay
from metamon_sp.config import Config, config_choices
from metamon_sp.study import (VERDICT, StudyPlan, plan_study, prepare_run, prepare_runs,
                              rate_study, write_plan)
from metamon_sp.pipeline import Run, run_dir_for

StudyName = Literal[config_choices("study")]


def _study_name() -> str:
    p = flow_run.parameters
    return f"{p.get('study')}-{p.get('seeds')}-seeds-{p.get('generations')}-generations"


def _selfplay_run(plan: StudyPlan, arm: str, seed: int) -> dict:
    """One arm × seed: the self-play flow on the arm's config (the very run folder the study
    planned, whose generation 0 it shared beforehand)."""
    return selfplay.with_options(flow_run_name=f"{plan.name}-{arm}-s{seed}")(
        generations=plan.generations, seed=seed, run_name=f"{arm}-s{seed}",
        runs_dir=str(plan.dir / "runs"), overrides=[*plan.overrides, *plan.arms[arm]])


@task(name="study-run", task_run_name="{arm}-s{seed}")
def study_run(plan: StudyPlan, arm: str, seed: int) -> str:
    return _selfplay_run(plan, arm, seed)["run_dir"]


def fan_out_runner(cfg: Config):
    """Where runs go when `study.parallel` > 1: threads here, or a Dask cluster."""
    if cfg.runner == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.dask_address:
            return DaskTaskRunner(address=cfg.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": cfg.study.parallel,
                                              "threads_per_worker": 1, "processes": True,
                                              "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=cfg.study.parallel)


@flow(name="study-runs")
def study_runs_flow(plan: StudyPlan) -> list[str]:
    return [f.result() for f in [study_run.submit(plan, arm, seed) for arm, seed in plan.runs()]]


@flow(name="study", flow_run_name=_study_name)
def study(study: StudyName = "damping",
          seeds: int = 3,
          generations: int = 3,
          scale: Scale = "laptop",
          seed: int = 0,
          runs_dir: Optional[str] = None,
          overrides: Optional[list[str]] = None) -> dict:
    """Arms × seeds from one generation 0, rated on one scale, with a verdict.

    Args:
        study: Which comparison (conf/study/): damping (none vs dynamic) or reward
            (default_shaped vs binary vs aggressive_shaped).
        seeds: Runs per arm (seeds `seed`, `seed`+1, ...).
        generations: Self-play generations per run after the shared generation 0.
        scale: smoke, laptop or gpu.
        seed: The shared generation 0's seed and the first run seed.
        runs_dir: Where the study folder lives (empty: the config's, `runs`).
        overrides: Any other Hydra overrides shared by every run, e.g. ["study.parallel=2"].
    """
    log = get_run_logger()
    args = [f"study={study}", f"study.seeds={seeds}", f"generations={generations}",
            f"scale={scale}", f"seed={seed}", *([f"runs_dir={runs_dir}"] if runs_dir else []),
            *(overrides or [])]
    plan = plan_study(args)
    plan.dir.mkdir(parents=True, exist_ok=True)
    log.info("study folder %s: arms %s, seeds %s, %d generations", plan.dir, list(plan.arms),
             plan.seeds, plan.generations)
    gen0_cfg = plan.gen0_config()
    selfplay.with_options(flow_run_name=f"{plan.name}-gen0")(
        generations=0, seed=gen0_cfg.seed, run_name="gen0", runs_dir=str(plan.dir),
        overrides=list(plan.overrides))
    gen0 = Run(run_dir_for(gen0_cfg))
    write_plan(plan, gen0)
    prepare_runs(plan, gen0)
    if plan.base.study.parallel > 1:
        study_runs_flow.with_options(task_runner=fan_out_runner(plan.base))(plan)
    else:
        for arm, s in plan.runs():
            prepare_run(plan, gen0, arm, s)  # shares generation 0's evaluation once it exists
            _selfplay_run(plan, arm, s)
    result = rate_study(plan)
    text = (plan.dir / f"{VERDICT}.md").read_text()
    create_markdown_artifact(text, key=f"study-{plan.dir.name.lower()}-verdict"[:100],
                             description=f"study {plan.name}: verdict")
    for c in result["comparisons"]:
        log.info("%s vs %s: %s", *c["arms"], c["verdict"])
    return {"study_dir": str(plan.dir), "verdict": str(plan.dir / f"{VERDICT}.md"),
            "comparisons": result["comparisons"]}


def main(argv: Optional[list[str]] = None) -> Any:
    """`python -m flows.study study=damping seeds=3 generations=3 [key=value ...]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    named = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if "=" in a}
    rest = [a for a in args if a.split("=", 1)[0] not in ("study", "seeds", "generations",
                                                           "scale", "seed", "runs_dir")]
    result = study(study=named.get("study", "damping"), seeds=int(named.get("seeds", 3)),
                   generations=int(named.get("generations", 3)),
                   scale=named.get("scale", "laptop"), seed=int(named.get("seed", 0)),
                   runs_dir=named.get("runs_dir"), overrides=rest)
    print(Path(result["verdict"]).read_text())
    return result


if __name__ == "__main__":
    main()
