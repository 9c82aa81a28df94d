"""Collection throughput: battles/s and peak memory, gen1ou, for random vs random and
simple_heuristics vs simple_heuristics at concurrency 1 and 10, in one run.

    python benchmarks/collect_throughput.py [--battles 100] [--battles-c1 30]

Each configuration runs in a fresh process (so its peak memory is its own) through the real
`collect` path: featurizing and recording both sides, writing shards. Battles/s counts play time
from the players logged in to the last shard written (`collect.PlayClock`; before 2026-12-07
the server's start was in it); the start (~3 s) is reported apart.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MATCHUPS = (("random", "random"), ("simple_heuristics", "simple_heuristics"))
CONCURRENCY = (1, 10)


def run_one(p1: str, p2: str, concurrency: int, battles: int) -> dict:
    from metamon_sp.collect import collect
    from metamon_sp.config import load_config

    cfg = load_config([f"collect.p1={p1}", f"collect.p2={p2}", f"collect.battles={battles}",
                       f"collect.concurrency={concurrency}", "collect.shard_battles=50"])
    with tempfile.TemporaryDirectory() as out:
        t0 = time.monotonic()
        s = collect(cfg, Path(out), show_progress=False)
        wall = time.monotonic() - t0
    inst = s["instances"][0]
    return {
        "matchup": f"{p1} vs {p2}", "concurrency": concurrency, "battles": s["battles"],
        "battles_per_s": s["battles_per_s"], "decisions_per_s": round(s["decisions"] / s["play_seconds"], 1),
        "wall_s": round(wall, 2), "startup_s": round(wall - s["play_seconds"], 2),
        "invalid_rate": s["invalid_rate"], "p1_win_rate": s["p1_win_rate"],
        "python_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "server_peak_mb": round((inst["server_peak_rss_bytes"] or 0) / 2**20, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--battles", type=int, default=100, help="battles per run at concurrency 10")
    ap.add_argument("--battles-c1", type=int, default=30, help="battles per run at concurrency 1")
    ap.add_argument("--one", nargs=4, metavar=("P1", "P2", "CONCURRENCY", "BATTLES"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        p1, p2, c, n = args.one
        print(json.dumps(run_one(p1, p2, int(c), int(n))))
        return

    from metamon_sp.showdown import ensure_installed
    ensure_installed()
    rows = []
    for p1, p2 in MATCHUPS:
        for c in CONCURRENCY:
            n = args.battles if c > 1 else args.battles_c1
            proc = subprocess.run([sys.executable, __file__, "--one", p1, p2, str(c), str(n)],
                                  capture_output=True, text=True, check=True)
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    cols = ("matchup", "concurrency", "battles", "battles_per_s", "decisions_per_s", "startup_s",
            "invalid_rate", "python_peak_mb", "server_peak_mb")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
