"""Policy self-play throughput: battles/s of a checkpoint playing itself at concurrency 1, 10 and
20, with batched vs one-battle-at-a-time inference, next to random vs random in the same run.

    python benchmarks/selfplay_throughput.py [--checkpoint PATH] [--battles 100] [--model tiny]

Without --checkpoint, a freshly initialised model of `--model` size is used (throughput does not
depend on training, though battle length does: compare decisions/s too). Each configuration
runs in a fresh process through the real `collect` path (both sides featurized and recorded).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_one(p1: str, p2: str, concurrency: int, battles: int, batched: bool) -> dict:
    from metamon_sp.collect import collect
    from metamon_sp.config import load_config

    cfg = load_config([f"collect.p1={p1}", f"collect.p2={p2}", f"collect.battles={battles}",
                       f"collect.concurrency={concurrency}", f"policy.batched={batched}"])
    with tempfile.TemporaryDirectory() as out:
        s = collect(cfg, Path(out), show_progress=False)
    from metamon_sp.policy import _POLICIES

    policies = list(_POLICIES.values())
    fwd = sum(p.forward_passes for p in policies)
    dec = sum(p.decisions for p in policies)
    return {"p1": "checkpoint" if p1.startswith("checkpoint:") else p1, "p2": p2,
            "concurrency": concurrency, "batched": batched if policies else None,
            "battles": s["battles"], "battles_per_s": s["battles_per_s"],
            "decisions_per_s": round(s["decisions"] / s["play_seconds"], 1),
            "decisions_per_battle": round(s["decisions"] / s["battles"], 1),
            "mean_batch": round(dec / fwd, 2) if fwd else None,
            "invalid_rate": s["invalid_rate"]}


def fresh_checkpoint(model: str, folder: Path) -> Path:
    from dataclasses import asdict

    import torch

    from metamon_sp.checkpoint import CheckpointMeta, save_checkpoint
    from metamon_sp.config import load_config
    from metamon_sp.model import PolicyModel

    torch.manual_seed(0)
    mc = load_config([f"model={model}"]).model
    return save_checkpoint(folder / f"fresh-{model}", PolicyModel(mc), CheckpointMeta(model=asdict(mc)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", help="checkpoint folder (default: a fresh --model)")
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--battles", type=int, default=100, help="battles per configuration")
    ap.add_argument("--battles-c1", type=int, default=20, help="battles at concurrency 1")
    ap.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        p1, p2, c, n, batched = args.one
        print(json.dumps(run_one(p1, p2, int(c), int(n), batched == "True")))
        return
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(args.checkpoint) if args.checkpoint else fresh_checkpoint(args.model, Path(tmp))
        spec = f"checkpoint:{ckpt}"
        runs = [("random", "random", 10, args.battles, True)]
        for c in (1, 10, 20):
            for batched in ((True,) if c == 1 else (True, False)):
                runs.append((spec, "self", c, args.battles if c > 1 else args.battles_c1, batched))
        rows = []
        for p1, p2, c, n, batched in runs:
            t0 = time.monotonic()
            proc = subprocess.run([sys.executable, __file__, "--one", p1, p2, str(c), str(n),
                                   str(batched)], capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(proc.stderr[-3000:])
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            rows[-1]["wall_s"] = round(time.monotonic() - t0, 1)
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    base = rows[0]["battles_per_s"]
    cols = ("p1", "p2", "concurrency", "batched", "battles", "battles_per_s", "decisions_per_s",
            "decisions_per_battle", "mean_batch", "invalid_rate")
    print("| " + " | ".join(cols) + " | vs random b/s |")
    print("|" + "---|" * (len(cols) + 1))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + f" | {r['battles_per_s'] / base:.0%} |")


if __name__ == "__main__":
    main()
