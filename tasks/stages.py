"""The pipeline's stages as Prefect tasks: collect (per shard) → filter → train → (gate) →
evaluate → elo, plus generation 0 and the report."""

from __future__ import annotations

import json
from dataclasses import asdict
from types import SimpleNamespace
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from metamon_sp import pipeline
from metamon_sp.collect import InstanceResult, prepare_collection, run_instance
from metamon_sp.config import Config
from metamon_sp.evaluate import play_pairing
from metamon_sp.report import build_report
from tasks.common import HOUR, Progress, StageCache, in_run, run_of, run_slug

RETRY = dict(retries=2, retry_delay_seconds=10)  # a Showdown server can crash; battles resume


def cached(stage: str) -> dict[str, Any]:
    """Persist as JSON (nothing is unpickled on resume) under the stage's cache key; the flow
    puts the records in the run folder (tasks.common.in_run)."""
    return dict(cache_policy=StageCache(stage=stage), persist_result=True,
                result_serializer="json")


@task(name="gen0-checkpoint", **cached("gen0-checkpoint"),
      timeout_seconds=12 * HOUR, **RETRY)
def generation_zero(cfg: Config, run_dir: str, init_checkpoint: str | None = None) -> str:
    slug = run_slug(run_dir)
    battles = Progress(f"{slug}-gen-000-collect", "gen 0 heuristic battles: recorded")
    steps = Progress(f"{slug}-gen-000-train", "gen 0 training: steps")
    ckpt = pipeline.generation_zero(cfg, run_of(run_dir), init_checkpoint, show_progress=False,
                                    on_battles=battles, on_steps=steps)
    get_run_logger().info("generation 0: %s", ckpt)
    return str(ckpt)


@task(name="prepare-collect", **cached("prepare-collect"))
def prepare_collect(cfg: Config, run_dir: str, k: int) -> str:
    run = run_of(run_dir)
    pool = pipeline.prepare_generation_collection(cfg, run, k)
    if pool:
        get_run_logger().info("gen %d opponent pool: %s", k,
                              ", ".join(f"{m.name} {m.battles}" for m in pool))
    return str(run.gen(k) / "collect")


@task(name="collect-shard", task_run_name="collect-gen-{k}-shard-{instance}",
      **cached("collect-shard"), **RETRY)  # the flow adds a timeout where it can interrupt
def collect_shard(cfg: Config, run_dir: str, k: int, instance: int) -> dict[str, Any]:
    run = run_of(run_dir)
    n = pipeline.split_battles(cfg.collect.battles, cfg.collect.parallel_instances)[instance]
    progress = Progress(f"{run_slug(run_dir)}-gen-{k:03d}-collect-{instance}",
                        f"gen {k} self-play, shard {instance}: battles recorded")
    done = {"n": 0}

    def on_battles(new: int) -> None:
        done["n"] += new
        progress(done["n"], n)

    result = pipeline.collect_shard(cfg, run, k, instance, progress=on_battles)
    get_run_logger().info("gen %d shard %d: %d battles in %.0fs (%d server restarts)", k, instance,
                          result.battles_played, result.play_seconds, result.restarts)
    return asdict(result)


@task(name="finish-collect", **cached("finish-collect"))
def finish_collect(cfg: Config, run_dir: str, k: int, shards: list[dict[str, Any]],
                   seconds: float) -> dict[str, Any]:
    summary = pipeline.finish_generation_collection(
        cfg, run_of(run_dir), k, [InstanceResult(**s) for s in shards], seconds)
    get_run_logger().info("gen %d collection: %d battles, %.2f battles/s, invalid-order rate %.4f",
                          k, summary["battles"], summary["battles_per_s"], summary["invalid_rate"])
    return {k_: v for k_, v in summary.items() if k_ != "instances"}


@task(name="filter", **cached("filter"))
def filter_stage(cfg: Config, run_dir: str, k: int) -> dict[str, Any]:
    out = pipeline.filter_generation(cfg, run_of(run_dir), k)
    report = json.loads((out / "filter_report.json").read_text())
    get_run_logger().info("gen %d filter: kept %d of %d trajectories; dropped %s", k,
                          report["kept_trajectories"], report["input_trajectories"],
                          report["dropped"] or "none")
    return report


@task(name="train", **cached("train"), timeout_seconds=24 * HOUR)
def train_stage(cfg: Config, run_dir: str, k: int) -> dict[str, Any]:
    run = run_of(run_dir)
    progress = Progress(f"{run_slug(run_dir)}-gen-{k:03d}-train", f"gen {k} training: steps")
    ckpt = pipeline.train_generation(cfg, run, k, on_progress=progress)
    summaries = {i: json.loads((run.learner(k, i) / "train_summary.json").read_text())
                 for i in range(1, cfg.gate.learners + 1)}  # several for the gate to choose among
    for i, s in summaries.items():
        get_run_logger().info("gen %d trained %d steps at %.0f timesteps/s -> %s", k, s["steps"],
                              s["timesteps_per_s"], run.learner(k, i) / "checkpoint")
    return {"checkpoint": str(ckpt), **summaries[1]}


@task(name="gate", **cached("gate"), timeout_seconds=6 * HOUR, **RETRY)
def gate_stage(cfg: Config, run_dir: str, k: int) -> dict[str, Any]:
    """Generation k chosen by match play against k−1 (`gate.battles` > 0; metamon_sp/gate.py)."""
    record = pipeline.gate_generation(cfg, run_of(run_dir), k, show_progress=False)
    rates = ", ".join(f"{name} {c['win_rate']}" for name, c in record["candidates"].items())
    get_run_logger().info("gen %d gate: %s against gen %d (%d games each) -> %s", k, rates, k - 1,
                          record["battles"], record["choice"])
    return record


@task(name="evaluate", **cached("evaluate"), timeout_seconds=6 * HOUR,
      **RETRY)
def evaluate_stage(cfg: Config, run_dir: str, k: int) -> dict[str, Any]:
    summary = pipeline.evaluate_generation(cfg, run_of(run_dir), k, show_progress=False)
    for name, s in summary["opponents"].items():
        get_run_logger().info("gen %d vs %s: win rate %.3f [%.3f, %.3f]", k, name, s["win_rate"],
                              s["ci_low"], s["ci_high"])
    return summary


@task(name="elo", **cached("elo"), timeout_seconds=6 * HOUR, **RETRY)
def elo_stage(cfg: Config, run_dir: str, k: int) -> dict[str, Any]:
    run = run_of(run_dir)
    ratings = pipeline.rate_generation(cfg, run, k)
    # the file holds the ratings and the paired deltas, the line that says whether it improved
    get_run_logger().info("gen %d ratings:\n%s", k, (run.gen(k) / "ratings.md").read_text())
    return ratings.to_dict()


@task(name="pairing", task_run_name="pairing-{name}", cache_policy=NO_CACHE,
      persist_result=False, **RETRY)
def pairing_task(cfg: Config, a: str, b: str, n: int, out_dir: str, name: str) -> int:
    """Play a pairing's games (on a server of its own) into the folder its stage reads."""
    return len(play_pairing(cfg, a, b, n, out_dir))


@task(name="bootstrap-collect", task_run_name="gen0-{name}-{instance}", cache_policy=NO_CACHE,
      persist_result=False, **RETRY)
def bootstrap_collect(cfg: Config, out_dir: str, instance: int, n: int, name: str) -> int:
    """One instance of one of generation 0's heuristic matchups, into the folder the gen-0
    stage reads (on a server of its own)."""
    prepare_collection(cfg, out_dir)
    return run_instance(cfg, out_dir, instance, n, generation=0).battles_played


@task(name="report", cache_policy=NO_CACHE, persist_result=False)
def report_stage(run_dir: str) -> str:
    return str(build_report(run_dir))


def for_run(run_dir: str) -> SimpleNamespace:
    """Every stage task, keeping its result in the run folder (tasks.common.in_run)."""
    stages = {"generation_zero": generation_zero, "prepare_collect": prepare_collect,
              "collect_shard": collect_shard, "finish_collect": finish_collect,
              "filter": filter_stage, "train": train_stage, "gate": gate_stage,
              "evaluate": evaluate_stage,
              "elo": elo_stage, "report": report_stage, "pairing": pairing_task,
              "bootstrap_collect": bootstrap_collect}
    return SimpleNamespace(**{name: in_run(t, run_dir) for name, t in stages.items()})
