"""Strength benchmark: does self-play make the agent stronger, on a fixed budget?

Runs generation 0 + N generations at a scale and seed (the pipeline without Prefect), then
prints per generation: the paired Elo difference to generation 0 and to the previous generation
(95% intervals from resampled mirrored pairs), the win rate against `simple_heuristics` (Wilson
interval) and the generation's wall time. The final generation then plays `--final-battles`
games against `simple_heuristics` and `max_base_power` on the evaluation teams (the held-out
split, `eval.team_set`). Everything printed is also written as JSON.

    python benchmarks/strength.py --generations 5 --seeds 0 1 [--out DIR] [override ...]

Each seed is a separate run folder under --out (reruns resume). Overrides are Hydra's, e.g.
`scale=laptop pool.previous=0.5`.

`--gen0-from RUN` (given once per seed, in order) reuses generation 0 of earlier runs made with the same
generation-0 recipe (format, teams, seed, model, bootstrap, reward: checked): its data and
checkpoint are copied, re-evaluated in the new run, and its recorded time counts as generation
0's. Variants of the self-play loop are then compared paired on the same generation 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from metamon_sp import atomic  # noqa: E402
from metamon_sp.config import HASH_OMITTED_AT, load_config  # noqa: E402
from metamon_sp.evaluate import evaluate  # noqa: E402
from metamon_sp.gate import GATE_DIR  # noqa: E402
from metamon_sp.gate import RECORD as GATE_RECORD  # noqa: E402
from metamon_sp.pipeline import (collect_generation, evaluate_generation, evaluated,  # noqa: E402
                                 filter_generation, gate_generation, generation_zero, open_run,
                                 rate_generation, stage_done, train_generation)
from metamon_sp.runlock import run_lock  # noqa: E402
from metamon_sp.study import copy_generation_zero  # noqa: E402

BASELINES = ("simple_heuristics", "max_base_power")
GEN0_RECIPE = ("format", "seed", "model", "bootstrap", "reward")
SPEED_ONLY = ("progress", "threads", "checkpoint_every")
# fine-tunes' own knobs: a training from scratch (generation 0) reads none of them
FINE_TUNE_ONLY = ("first_steps", "first_lr", "critic_warmup", "first_critic_warmup")


def reuse_generation_zero(source: Path, run_dir: Path, config: dict[str, Any]) -> float | None:
    """Copy `source`'s generation 0 into `run_dir` (once); return its recorded seconds."""
    src_cfg_path = source / "config.json"
    if not (source / "gen-000" / "train").is_dir() or not src_cfg_path.exists():
        raise SystemExit(f"--gen0-from {source}: not a run folder with a trained generation 0 "
                         f"(it needs config.json and gen-000/train); pass a run folder such as "
                         f"runs/strength/strength-<hash>.")
    src_cfg = json.loads(src_cfg_path.read_text())
    differ = [k for k in GEN0_RECIPE if src_cfg.get(k) != config.get(k)]
    if differ:
        raise SystemExit(f"--gen0-from {source}: its generation 0 was made with other "
                         f"{', '.join(differ)} than this run; reuse only a generation 0 of the "
                         f"same recipe (or drop --gen0-from).")
    # generation 0 also trains with `train.*` and collects on `team_set` (+ `team_remix`):
    # allowed to differ (what is compared is the loop from one generation 0), but said, so no
    # one forgets it
    # a knob added after the source run was made reads as its value that changes nothing
    also = [f"train.{k}" for k, v in config.get("train", {}).items()
            if k not in SPEED_ONLY + FINE_TUNE_ONLY
            and src_cfg.get("train", {}).get(k, HASH_OMITTED_AT.get(f"train.{k}")) != v]
    also += [k for k in ("team_set", "team_remix") if src_cfg.get(k, 0) != config.get(k, 0)]
    if also:
        print(f"note: --gen0-from {source}: its generation 0 was made with other "
              f"{', '.join(also)} than this run's; the runs compare the self-play loop from it")
    gen0 = run_dir / "gen-000"
    if not (gen0 / "train").exists():
        copy_generation_zero(source / "gen-000", gen0)
    timings = source / "timings.json"
    return json.loads(timings.read_text()).get("0") if timings.exists() else None


def run_seed(overrides: list[str], generations: int, seed: int, runs_dir: Path,
             final_battles: int, gen0_from: Path | None = None) -> dict[str, Any]:
    cfg = load_config([*overrides, f"seed={seed}", f"generations={generations}",
                       f"runs_dir={runs_dir}", "run_name=strength", "train.progress=false"])
    rows: list[dict[str, Any]] = []
    with run_lock(runs_dir / f"strength-{cfg.hash()}", owner="benchmarks/strength.py"):
        run = open_run(cfg)
        gen0_seconds = None
        if gen0_from is not None:
            gen0_seconds = reuse_generation_zero(gen0_from, run.dir,
                                                 json.loads((run.dir / "config.json").read_text()))
        timings_path = run.dir / "timings.json"
        timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
        for k in range(generations + 1):
            t0 = time.monotonic()
            if k == 0:
                generation_zero(cfg, run, show_progress=False)
            elif not stage_done(run, "train", k):
                collect_generation(cfg, run, k, show_progress=False)
                filter_generation(cfg, run, k)
                train_generation(cfg, run, k)
            gate_generation(cfg, run, k, show_progress=False)
            if not evaluated(cfg, run, k):
                evaluate_generation(cfg, run, k, show_progress=False)
                rate_generation(cfg, run, k)
            spent = time.monotonic() - t0
            if k == 0 and gen0_seconds is not None:
                spent = gen0_seconds  # the reused generation 0's own time, not its re-evaluation
            if spent > 5 or str(k) not in timings:  # keep the first full run's time on resume
                timings[str(k)] = round(spent, 1)
                atomic.write_json(timings_path, timings)
        ratings = json.loads((run.dir / "ratings.json").read_text())
        deltas = {d["player"]: d for d in ratings.get("deltas", [])}
        for k in range(generations + 1):
            name = f"{run.dir.name}/gen-{k:03d}"
            sh = json.loads((run.gen(k) / "eval" / "summary.json").read_text())["opponents"].get(
                "simple_heuristics", {})
            d = deltas.get(name, {})
            gate_path = run.gen(k) / GATE_DIR / GATE_RECORD
            gate = json.loads(gate_path.read_text()) if gate_path.exists() else None
            rows.append({"generation": k, "seconds": timings.get(str(k)), "gate": _gate_cell(gate),
                         "vs_gen0": d.get("vs_gen0"), "vs_gen0_ci": d.get("vs_gen0_ci"),
                         "vs_previous": d.get("vs_previous"),
                         "vs_previous_ci": d.get("vs_previous_ci"),
                         "sh_win_rate": sh.get("win_rate"),
                         "sh_ci": [sh.get("ci_low"), sh.get("ci_high")], "sh_games": sh.get("games")})
        final = evaluate(cfg, run.spec(generations), list(BASELINES), final_battles,
                         run.dir / "final_eval", show_progress=False) if final_battles else \
            {"opponents": {}}
    return {"seed": seed, "run": str(run.dir), "config_hash": cfg.hash(),
            "gen0_from": str(gen0_from) if gen0_from else None,
            "eval_team_set": cfg.eval.team_set, "total_seconds": round(sum(
                r["seconds"] or 0 for r in rows), 1),
            "generations": rows,
            "final": {opp: {k: s[k] for k in ("games", "win_rate", "ci_low", "ci_high")}
                      for opp, s in final["opponents"].items()}}


def _gate_cell(record: dict[str, Any] | None) -> str | None:
    """The gate's choice and the win rates behind it: `end 54.2%`, `parent (end 45.5%)`."""
    if record is None:
        return None
    rates = ", ".join(f"{name} {100 * r['win_rate']:.1f}%" for name, r in
                      record["candidates"].items() if r["win_rate"] is not None)
    return f"{record['choice']} ({rates})" if record["choice"] == "parent" else \
        f"{record['choice']} {100 * record['candidates'][record['choice']]['win_rate']:.1f}%"


def _ci(x: Any, ci: Any) -> str:
    if x is None:
        return "–"
    return f"{x:+.0f} [{ci[0]:+.0f}, {ci[1]:+.0f}]"


def print_seed(res: dict[str, Any]) -> None:
    print(f"\nseed {res['seed']}: {res['run']} (evaluation teams: {res['eval_team_set']}), "
          f"{res['total_seconds'] / 60:.1f} min")
    if res.get("gen0_from"):
        print(f"generation 0 reused from {res['gen0_from']}")
    gated = any(r.get("gate") for r in res["generations"])
    print("| gen | Δ Elo vs gen 0 | Δ Elo vs previous | vs simple_heuristics | seconds |"
          + (" gate (win rate vs the released parent) |" if gated else ""))
    print("|---|---|---|---|---|" + ("---|" if gated else ""))
    for r in res["generations"]:
        sh = "–" if r["sh_win_rate"] is None else \
            f"{100 * r['sh_win_rate']:.1f}% [{100 * r['sh_ci'][0]:.1f}, {100 * r['sh_ci'][1]:.1f}]"
        gate = f" {r.get('gate') or '–'} |" if gated else ""
        print(f"| {r['generation']} | {_ci(r['vs_gen0'], r['vs_gen0_ci'])} | "
              f"{_ci(r['vs_previous'], r['vs_previous_ci'])} | {sh} | {r['seconds']} |{gate}")
    for opp, s in res["final"].items():
        print(f"final generation vs {opp}: {100 * s['win_rate']:.1f}% "
              f"[{100 * s['ci_low']:.1f}, {100 * s['ci_high']:.1f}] over {s['games']} games")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--generations", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", type=Path, default=Path("runs/strength"))
    ap.add_argument("--final-battles", type=int, default=200)
    ap.add_argument("--gen0-from", type=Path, action="append", default=None, metavar="RUN",
                    help="an earlier run folder whose generation 0 to reuse; once per seed")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. scale=laptop")
    args = ap.parse_args()
    if args.gen0_from is not None and len(args.gen0_from) != len(args.seeds):
        ap.error(f"--gen0-from takes one run folder per seed ({len(args.seeds)}), "
                 f"got {len(args.gen0_from)}")
    logging.basicConfig(level=logging.WARNING)
    results = []
    for i, seed in enumerate(args.seeds):
        res = run_seed(args.overrides, args.generations, seed, args.out, args.final_battles,
                       args.gen0_from[i] if args.gen0_from else None)
        print_seed(res)
        results.append(res)
        atomic.write_json(args.out / "strength.json", {"overrides": args.overrides,
                                                        "generations": args.generations,
                                                        "results": results})
    print(f"\nwritten: {args.out / 'strength.json'}")


if __name__ == "__main__":
    main()
