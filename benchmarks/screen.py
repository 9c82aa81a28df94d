"""Screen changes to the learner in minutes, not in 35-minute runs: generation K of a finished
run trained again once per arm (the run's data, its generation K − 1, its seed; `retrain.py`),
each played against the parent and against the run's own generation K on the held-out teams.

    python benchmarks/screen.py RUN 4 --as "train.steps=4500 seed=3 ..." --out OUT \
        --arm base: --arm seed13:seed=13 --arm lr6:train.lr=6e-4 --games 400

An arm is `name:overrides` (space-separated key=value; empty: the run's recipe on today's
code). Every arm's games use the run's seed, so all arms meet the same battles. A `seed=`
arm shows what the training's own randomness moves: at 400 games a difference between arms
needs ~10 points to stand out (docs/strength.md, "A one-generation screen"). Prints a table
and writes OUT/screen.json; an arm or game set already in OUT is reused (if it is the same
arm's, at the same --games).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from retrain import checked_run, train_again  # noqa: E402

from metamon_sp import atomic  # noqa: E402
from metamon_sp.config import load_config  # noqa: E402
from metamon_sp.evaluate import evaluate  # noqa: E402
from metamon_sp.train import CHECKPOINT_DIR, SUMMARY  # noqa: E402


def parse_arm(text: str) -> tuple[str, list[str]]:
    """`name:key=value key=value` → (name, overrides); the name names a folder."""
    name, sep, overrides = text.partition(":")
    if not sep or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"--arm {text!r}: write NAME:OVERRIDES with a name of letters, digits, "
                         f"- and _ (e.g. lr6:train.lr=6e-4, or base: for none)")
    return name, shlex.split(overrides)


def _cell(result: dict[str, Any]) -> str:
    return (f"{100 * result['win_rate']:.1f}% [{100 * result['ci_low']:.1f}, "
            f"{100 * result['ci_high']:.1f}] ({result['wins']}–{result['losses']}–"
            f"{result['ties']})")


def table(rows: list[dict[str, Any]], k: int) -> str:
    lines = [f"| arm | changes | vs generation {k - 1} (the parent) | vs the run's generation {k}"
             f" | KL to parent | train s |", "|---|---|---|---|---|---|"]
    for r in rows:
        kl = r["kl_to_parent"]
        lines.append(f"| {r['arm']} | {' '.join(r['overrides']) or '–'} | {_cell(r['vs_parent'])}"
                     f" | {_cell(r['vs_run'])} | {'–' if kl is None else f'{kl:.2f}'} | "
                     f"{r['train_seconds']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a finished run folder, <name>-<config hash>")
    ap.add_argument("generation", type=int, help="the generation to train again (≥ 1)")
    ap.add_argument("--as", dest="run_overrides", default="",
                    help="the overrides the run was made with (checked against its hash)")
    ap.add_argument("--arm", action="append", required=True, help="NAME:OVERRIDES, repeatable")
    ap.add_argument("--games", type=int, default=400, help="games per pairing (mirrored pairs)")
    ap.add_argument("--out", type=Path, required=True, help="the screen's folder")
    args = ap.parse_args()
    try:
        arms = [parse_arm(a) for a in args.arm]
    except ValueError as e:
        sys.exit(str(e))
    if len({name for name, _ in arms}) < len(arms):
        sys.exit("--arm: two arms share a name; give each its own")
    k = args.generation
    run, base = checked_run(args.run, k, args.run_overrides)
    cfg = load_config(base)  # every arm's games: the run's seed and evaluation teams
    if not (run.checkpoint(k) / "checkpoint.json").exists():
        sys.exit(f"generation {k}: {run.checkpoint(k)} does not exist (the run's own generation "
                 f"{k} is what each arm is played against)")
    rows = []
    for name, overrides in arms:
        out = args.out / name
        done = out / "train" / SUMMARY
        if done.exists():  # reuse it only if it is this arm's training
            made = json.loads((out / "train" / CHECKPOINT_DIR / "checkpoint.json").read_text())
            if made.get("config_hash") != load_config([*base, *overrides]).hash():
                sys.exit(f"{out} holds a training of other overrides than the arm {name!r}: "
                         f"give the arm another name, or another --out")
            summary = json.loads(done.read_text())
        else:
            summary = train_again(run, k, base, overrides, out / "train")
        player = f"checkpoint:{out / 'train' / CHECKPOINT_DIR}"
        results = {}
        for label, j in (("vs_parent", k - 1), ("vs_run", k)):
            where = out / f"vs-gen-{j:03d}"
            done = where / "summary.json"
            if done.exists():
                s = json.loads(done.read_text())
                if s.get("battles_per_opponent") != args.games:
                    sys.exit(f"{where} played {s.get('battles_per_opponent')} games, not "
                             f"--games {args.games}: use that many, or another --out")
            else:
                s = evaluate(cfg, player, [run.spec(j)], args.games, where, show_progress=False)
            results[label] = next(iter(s["opponents"].values()))
        rows.append({"arm": name, "overrides": overrides, **results,
                     "kl_to_parent": summary.get("damping/kl_ref"),
                     "train_seconds": summary["seconds"],
                     "summary": str(out / "train" / SUMMARY)})
        print(table(rows[-1:], k).splitlines()[-1], flush=True)
    atomic.write_json(args.out / "screen.json", {"run": str(run.dir), "generation": k,
                                                 "run_overrides": base, "games": args.games,
                                                 "arms": rows})
    print(table(rows, k))


if __name__ == "__main__":
    main()
