"""Training data at scale: load time and peak resident memory per decision of `OfflineData`.

    python benchmarks/train_data_memory.py [--decisions 1000000] [--keep DIR]

Builds a dataset of `--decisions` decisions from real battles (a short direct-backend collection
of simple_heuristics vs random, its trajectories repeated under new battle ids until the count is
reached, so the shards compress like real data), then loads it in a fresh process and prints the
load time, the arrays' bytes and the peak resident memory added by loading (and by drawing
batches), per decision.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def build(out: Path, decisions: int) -> int:
    from metamon_sp.collect import collect
    from metamon_sp.config import load_config
    from metamon_sp.trajectories import Dataset, ShardWriter, write_manifest

    seed_dir = out.parent / "seed-battles"
    cfg = load_config(["collect.battles=40", "collect.p1=simple_heuristics", "collect.p2=random",
                       "collect.concurrency=20"])
    if not (seed_dir / "manifest.json").exists():
        collect(cfg, seed_dir, show_progress=False)
    base = [t for t in Dataset(seed_dir) if t.steps > 0]
    writer = ShardWriter(out, prefix="synthetic")
    total, i, shard = 0, 0, []
    while total < decisions:
        t = base[i % len(base)]
        shard.append(replace(t, battle_id=f"copy{i // len(base)}:{t.battle_id}"))
        total += t.steps
        i += 1
        if len(shard) == 500:
            writer.write(shard)
            shard = []
    if shard:
        writer.write(shard)
    write_manifest(out)
    return total


def measure(data_dir: str, batches: int) -> dict:
    import numpy as np

    from metamon_sp.config import load_config
    from metamon_sp.rewards import build_reward
    from metamon_sp.train_data import OfflineData

    reward = build_reward(load_config([]).reward)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.monotonic()
    data = OfflineData([data_dir], reward, 0.01)
    load_s = time.monotonic() - t0
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    data.num_stats()
    rng = np.random.default_rng(0)
    for _ in range(batches):
        data.sample(32, 32, rng)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    n = data.n_steps
    nbytes = data.nbytes() if hasattr(data, "nbytes") else None
    return {"decisions": n, "trajectories": data.n_trajectories, "load_s": round(load_s, 1),
            "decisions_per_s_loaded": round(n / load_s),
            "array_bytes_per_decision": round(nbytes / n, 1) if nbytes else None,
            "peak_rss_added_bytes_per_decision_loading": round((loaded - before) / n, 1),
            "peak_rss_added_bytes_per_decision": round((peak - before) / n, 1),
            "peak_rss_gb": round(peak / 2**30, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--decisions", type=int, default=1_000_000)
    ap.add_argument("--batches", type=int, default=100, help="batches drawn after loading")
    ap.add_argument("--keep", help="build (or reuse) the dataset in this folder")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.batches)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp) / "data"
        t0 = time.monotonic()
        if (out / "manifest.json").exists():
            n = json.loads((out / "manifest.json").read_text())["steps"]
        else:
            n = build(out, args.decisions)
        print(f"dataset: {n} decisions, {sum(p.stat().st_size for p in out.glob('*.parquet')) / n:.0f} "
              f"bytes per decision on disk (built in {time.monotonic() - t0:.0f}s)", file=sys.stderr)
        proc = subprocess.run([sys.executable, __file__, "--measure", str(out),
                               "--batches", str(args.batches)], capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(proc.stderr[-3000:])
        row = json.loads(proc.stdout.strip().splitlines()[-1])
    print("| " + " | ".join(row) + " |")
    print("|" + "---|" * len(row))
    print("| " + " | ".join(str(v) for v in row.values()) + " |")


if __name__ == "__main__":
    main()
