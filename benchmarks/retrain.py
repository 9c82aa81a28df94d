"""Train one generation of a finished run again, on the very data, weights, initial checkpoint
and seed it was trained with, changing only the given overrides: what would this fine-tune have
done with another damping setting (or learning rate, or ...)?

    python benchmarks/retrain.py RUN K OUT --as "damping=dynamic seed=1 damping.lr_scale_max=2" \
        damping.lr_scale_max=4

`--as` are the overrides the run was made with; their config hash must be the run folder's
(`<name>-<hash>`), so the baseline is known to be the run's own. Prints the new training's
damping checks beside the run's.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from metamon_sp.config import load_config
from metamon_sp.pipeline import Run, generation_train_config, training_data
from metamon_sp.train import SUMMARY, train


def checked_run(run_dir: Path, k: int, run_overrides: str) -> tuple[Run, list[str]]:
    """The run and its overrides, once `run_overrides` give the run folder's config hash (so the
    baseline is known to be the run's own) and generation K − 1 exists; else exits saying why."""
    run, base = Run(run_dir.resolve()), shlex.split(run_overrides)
    digest = load_config(base).hash()
    if not run.dir.name.endswith(f"-{digest}"):
        sys.exit(f"--as {run_overrides!r} gives config hash {digest}, but the run folder is "
                 f"{run.dir.name}: pass the overrides the run was made with")
    if k < 1 or not (run.checkpoint(k - 1) / "checkpoint.json").exists():
        sys.exit(f"generation {k}: {run.checkpoint(k - 1)} does not exist (need 1 ≤ K ≤ the "
                 f"run's last generation)")
    return run, base


def train_again(run: Run, k: int, base: list[str], overrides: list[str], out: Path
                ) -> dict[str, Any]:
    """Generation K's fine-tune again into `out` (resumed if it stopped), on the run's data from
    the run's generation K − 1, with `overrides` on top of the run's own; its training summary."""
    # as the pipeline trains generation K (the first fine-tune's own settings)
    cfg = generation_train_config(load_config([*base, *overrides]), k)
    dirs, weights = training_data(cfg, run, k)
    train(cfg, dirs, out, init=run.checkpoint(k - 1), generation=k, weights=weights)
    return json.loads((out / SUMMARY).read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a run folder, <name>-<config hash>")
    ap.add_argument("generation", type=int, help="the generation to train again (≥ 1)")
    ap.add_argument("out", type=Path, help="where the new training writes (must not exist)")
    ap.add_argument("--as", dest="run_overrides", default="",
                    help="the overrides the run was made with (checked against its hash)")
    ap.add_argument("overrides", nargs="*", help="what to change, key=value")
    args = ap.parse_intermixed_args()  # overrides before or after --as
    k = args.generation
    run, base = checked_run(args.run, k, args.run_overrides)
    if args.out.exists():
        sys.exit(f"{args.out} exists: choose a new folder")
    t0 = time.monotonic()
    new = train_again(run, k, base, args.overrides, args.out)
    old_path = run.gen(k) / "train" / SUMMARY
    old = json.loads(old_path.read_text()) if old_path.exists() else {}
    print(f"trained in {time.monotonic() - t0:.0f} s")
    for name, s in (("run", old), ("now", new)):
        print(f"{name}: damping_checks {s.get('damping_checks')}, "
              f"entropy_collapse_at {s.get('entropy_collapse_at')}")


if __name__ == "__main__":
    main()
