"""What per-step KL the learner actually takes: the number `damping.target_kl_per_step` is set
from, per scale (conf/scale/*.yaml; docs/studies/damping.md).

    python benchmarks/calibrate_damping.py RUN [RUN ...] [--all-generations]

Reads the training metrics of every generation of each run folder (or of single `train/`
folders), keeps the steps after warmup that measured KL(π_after ‖ π_before), and prints its
quantiles per training and the suggested target: the geometric middle of the undamped
fine-tunes' medians (generation ≥ 1; generation 0 learns from scratch), so that the band
[target/tolerance, target·tolerance] holds every fine-tune's typical step. The first fine-tune
moves about half as far per step as later ones (laptop: 0.00034 against ~0.00065); a target at
the later ones' median leaves it below the band, where the controller can only run its factors
to their bounds. A damped run's own KL is what its controller made of it, so its trainings are
listed but not counted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from metamon_sp.tracking import read_metrics  # noqa: E402

QUANTILES = (0.1, 0.5, 0.9)


def trainings(paths: list[Path]) -> list[tuple[str, int, Path, dict]]:
    """(label, generation, metrics file, config) of every training under the given folders."""
    found = []
    for path in paths:
        cfg_file = path / "config.json"
        config = json.loads(cfg_file.read_text()) if cfg_file.exists() else {}
        for metrics in sorted(path.glob("**/train/metrics.jsonl")) or sorted(path.glob("metrics.jsonl")):
            gen = metrics.parent.parent.name
            k = int(gen.split("-")[1]) if gen.startswith("gen-") else -1
            found.append((f"{path.parent.name}/{path.name}/{gen}", k, metrics, config))
    if not found:
        sys.exit(f"no train/metrics.jsonl under {', '.join(map(str, paths))}: pass run folders "
                 f"(runs_dir/<name>-<hash>) or train/ folders")
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--all-generations", action="store_true",
                    help="count generation 0 too when suggesting the target")
    ap.add_argument("--tolerance", type=float, default=1.5, help="damping.kl_tolerance")
    args = ap.parse_args()
    print("| training | damping | steps | " + " | ".join(f"q{int(q * 100)}" for q in QUANTILES)
          + " |\n|---|---|---|" + "---|" * len(QUANTILES))
    counted = []
    for name, k, metrics, config in trainings(args.runs):
        warmup = config.get("train", {}).get("warmup_steps", 100)
        kl = np.array([r["damping/kl_step"] for r in read_metrics(metrics)
                       if r["step"] > warmup and "damping/kl_step" in r])
        if not kl.size:
            continue
        damping = config.get("damping", {}).get("name", "?")
        print(f"| {name} | {damping} | {kl.size} | "
              + " | ".join(f"{q:.2e}" for q in np.quantile(kl, QUANTILES)) + " |")
        if damping != "dynamic" and (k >= 1 or args.all_generations):
            counted.append(float(np.median(kl)))
    if not counted:
        sys.exit("no undamped fine-tune (generation >= 1) to calibrate from")
    lo, hi = min(counted), max(counted)
    target = float(np.sqrt(lo * hi))
    covered = np.sqrt(hi / lo) <= args.tolerance * (1 + 1e-9)  # the band, centred, holds both
    print(f"\nundamped fine-tunes: {len(counted)}, their medians {lo:.2g}-{hi:.2g} (median "
          f"{np.median(counted):.2g})\nsuggested damping.target_kl_per_step: {target:.2g} (the "
          f"geometric middle); band at tolerance {args.tolerance}: [{target / args.tolerance:.2g}, "
          f"{target * args.tolerance:.2g}], "
          + ("holds every fine-tune's median" if covered else
             f"too narrow for them all: kl_tolerance >= {np.sqrt(hi / lo):.3f} would hold them"))


if __name__ == "__main__":
    main()
