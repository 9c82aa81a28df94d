"""Does the student learn the search's corrections, and carry them to new positions?

    python benchmarks/search_adoption.py RUN [RUN ...]

For each generation k of a run made with `collect.search_rate` (a strength run or a pipeline
run): every decision of k's collection that the search overrode (flagged `searched`), the
probability the parent (generation k−1, which played it) gave the search's choice and whether
that choice was its argmax, and the same for the child (generation k, trained on it) on the
same decisions. The child's figures say whether the labels are learned where they were seen;
the next generation's parent figures whether that carries to the positions it meets next.
Prints one table per run; `--json` also writes the rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@torch.no_grad()
def probabilities(model, t) -> np.ndarray:
    """π(·|s_t) (T, A) over the legal actions, in blocks of `context` turns as the diagnostics
    read a trajectory (metamon_sp/diagnostics.py)."""
    from metamon_sp.train import policy_log_probs

    L, out = model.cfg.context, []
    for s in range(0, t.steps, L):
        num = torch.tensor(t.obs_num[s:s + L], dtype=torch.float32)[None]
        cat = torch.tensor(t.obs_cat[s:s + L], dtype=torch.int64)[None]
        mask = torch.tensor(t.masks[s:s + L])[None]
        _, logp0 = policy_log_probs(model.actor(model.trunk(num, cat)), mask)
        out.append((logp0.exp() * mask)[0].numpy())
    return np.concatenate(out)


def adoption(run: Path) -> list[dict]:
    from metamon_sp.checkpoint import load_checkpoint
    from metamon_sp.trajectories import Dataset

    rows = []
    for k in range(1, 1000):
        gen = run / f"gen-{k:03d}"
        child_dir, data = gen / "train" / "checkpoint", gen / "collect"
        if not child_dir.exists() or not data.exists():
            break
        parent = load_checkpoint(run / f"gen-{k - 1:03d}" / "train" / "checkpoint")[0].eval()
        child = load_checkpoint(child_dir)[0].eval()
        found = []
        for t in Dataset(data):
            if not t.searched.any():
                continue
            pp, pc = probabilities(parent, t), probabilities(child, t)
            for i in np.flatnonzero(t.searched):
                a = t.actions[i]
                found.append((pp[i, a], pp[i].argmax() == a, pc[i, a], pc[i].argmax() == a))
        if not found:
            continue
        f = np.asarray(found, dtype=np.float64)
        mean = [round(float(x), 3) for x in f.mean(axis=0)]
        rows.append({"generation": k, "overrides": len(f),
                     "parent_p": mean[0], "parent_argmax": mean[1],
                     "parent_p_below_5pct": round(float((f[:, 0] < 0.05).mean()), 3),
                     "child_p": mean[2], "child_argmax": mean[3]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    out = {}
    for run in args.runs:
        rows = out[str(run)] = adoption(run)
        print(f"\n{run}")
        print("| gen | overrides | parent p | parent argmax | parent p < 5% | child p "
              "| child argmax |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['generation']} | {r['overrides']} | {r['parent_p']:.3f} | "
                  f"{r['parent_argmax']:.1%} | {r['parent_p_below_5pct']:.1%} | "
                  f"{r['child_p']:.3f} | {r['child_argmax']:.1%} |")
        if not rows:
            print("(no generation with searched decisions: was it run with collect.search_rate?)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
