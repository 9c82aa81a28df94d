"""How fast would battles run if featurizing cost nothing? An upper bound for any featurizer work.

    python benchmarks/featurizer_bound.py [--battles 200] [--rounds 2] [--simulators 1]
        [--instances 1] [--ceiling]

Plays random vs random and simple_heuristics vs random on the direct backend (concurrency 32),
each with the real featurizer and with one that only computes the legality mask (the rest of
the observation zeros), in alternating rounds, each in a fresh process. Neither player reads
more of the observation than its mask, and every decision is seeded: both versions play the
very same battles (the run checks the decision counts agree). Prints decisions/s over play
time, and the CPU share of Python's busiest thread and of the simulator process(es) over the
middle 60% of the run: which of the two bounds the rate once featurizing is gone.
With `--instances 2` (one collecting process and one simulator per core), the busiest thread is
the busiest of every Python process's, and the simulators' CPU is all of theirs.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FREE = "FEATURIZER_BOUND_MASK_ONLY"  # set: the players' featurizer computes the mask only
WORKLOADS = (("random", "random"), ("simple_heuristics", "random"))


def _cpu_seconds(stat_path: str) -> float:
    with open(stat_path) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants() -> list[str]:
    """/proc folders of this process's descendants (collect's instances, the simulators)."""
    parent: dict[str, str] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                st = f.read()
        except OSError:  # gone meanwhile
            continue
        parent[stat[6:-5]] = st[st.rindex(")") + 2:].split()[1]
    found, frontier = [], {str(os.getpid())}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier}
        found += sorted(frontier)
    return [f"/proc/{pid}" for pid in found]


def _snapshot() -> tuple[float, dict[str, float], float]:
    """(time, CPU seconds of every thread of every Python process, of the simulators)."""
    threads, sim = {}, 0.0
    for proc in ["/proc/self", *_descendants()]:
        try:
            with open(f"{proc}/comm") as f:
                node = f.read().strip() == "node"
            if node:
                sim += _cpu_seconds(f"{proc}/stat")
            else:
                threads.update({t: _cpu_seconds(f"{t}/stat") for t in glob.glob(f"{proc}/task/*")})
        except OSError:  # exited between the listing and the read
            continue
    return time.monotonic(), threads, sim


def _mask_only() -> None:
    """Replace the players' featurizer by one that computes the legality mask only."""
    import numpy as np

    import metamon_sp.players as players
    from metamon_sp import features

    zeros = (np.zeros(features.N_NUM, np.float32), np.zeros(features.N_CAT, np.int16),
             np.zeros(features.N_FACTS, np.float32))
    players.featurize = lambda b: features.Observation(
        zeros[0], zeros[1], features.action_mask(b), zeros[2])


if os.environ.get(FREE) == "1":  # collect's instance processes run this module as __mp_main__
    sys.path.insert(0, str(ROOT))
    _mask_only()


def run_one(p1: str, p2: str, battles: int, free: bool, simulators: int, instances: int
            ) -> dict:
    sys.path.insert(0, str(ROOT))
    from metamon_sp.collect import collect
    from metamon_sp.config import load_config
    from metamon_sp.trajectories import read_shard, shard_paths

    if free:
        os.environ[FREE] = "1"  # inherited by the instance processes, when there are several
        _mask_only()
    cfg = load_config([f"collect.p1={p1}", f"collect.p2={p2}", f"collect.battles={battles}",
                       "collect.backend=direct", "collect.concurrency=32",
                       f"collect.simulators={simulators}",
                       f"collect.parallel_instances={instances}"])
    samples: list[tuple[float, dict[str, float], float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            samples.append(_snapshot())
    threading.Thread(target=sample, daemon=True).start()
    with tempfile.TemporaryDirectory() as folder:
        s = collect(cfg, Path(folder), show_progress=False)
        stop.set()
        # every instance recorded what this run's featurizer made: zeros if mask only
        zeros = {not t.obs_num.any() for shard in shard_paths(folder) for t in read_shard(shard)}
    if zeros != {free}:
        sys.exit(f"the {'mask-only' if free else 'real'} featurizer did not make every "
                 f"recorded observation ({instances} instance(s))")
    out = {"decisions": s["decisions"], "decisions_per_s": s["decisions"] / s["play_seconds"],
           "python_busiest_thread": float("nan"), "simulators_cores": float("nan")}
    if len(samples) >= 5:  # (a run too short to have a middle reports rates only)
        a, b = samples[len(samples) // 5], samples[4 * len(samples) // 5]
        span = b[0] - a[0]
        out["python_busiest_thread"] = max(b[1][t] - a[1].get(t, 0.0) for t in b[1]) / span
        out["simulators_cores"] = (b[2] - a[2]) / span
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--battles", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--simulators", type=int, default=1)
    ap.add_argument("--instances", type=int, default=1,
                    help="collecting processes, each with its own simulator(s)")
    ap.add_argument("--ceiling", action="store_true",
                    help="also the simulator alone in two processes each round, and each rate "
                    "as a share of it (paired within the round)")
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        p1, p2, free = args.one
        print(json.dumps(run_one(p1, p2, args.battles, free == "1", args.simulators,
                                 args.instances)))
        return
    rows: dict[tuple[str, bool], list[dict]] = {(p1, f): [] for p1, _ in WORKLOADS
                                                for f in (False, True)}
    ceilings: list[float] = []
    for _ in range(args.rounds):
        for p1, p2 in WORKLOADS:
            for free in (False, True):
                proc = subprocess.run([sys.executable, __file__, "--battles", str(args.battles),
                                       "--simulators", str(args.simulators),
                                       "--instances", str(args.instances), "--one", p1, p2,
                                       "1" if free else "0"], capture_output=True, text=True)
                if proc.returncode != 0:
                    sys.exit(proc.stderr[-3000:])
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                rows[(p1, free)].append(row)
                print(json.dumps({"p1": p1, "free": free, **row}), file=sys.stderr, flush=True)
        if args.ceiling:
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from battle_backends import ceiling

            # each process plays what an instance plays (see battle_backends.py)
            ceilings.append(ceiling(max(1, args.battles // args.instances), 2)["decisions_per_s"])
            print(json.dumps({"ceiling, 2 processes": ceilings[-1]}), file=sys.stderr, flush=True)
    for p1, _ in WORKLOADS:
        if len({r["decisions"] for r in rows[(p1, False)] + rows[(p1, True)]}) != 1:
            sys.exit(f"{p1}: the two featurizers played different battles; the bound is void")
    print(f"medians of {args.rounds} alternating rounds, {args.battles} battles each, "
          f"direct backend, concurrency 32, {args.instances} instance(s) with "
          f"{args.simulators} simulator(s) each, {os.cpu_count()} cores")
    if ceilings:
        print(f"the simulator alone, two processes: {statistics.median(ceilings):,.0f} "
              f"decisions/s (median of {len(ceilings)})")
    share = " / two-process ceiling (per round: median, range) |" if ceilings else ""
    print("| workload | featurizer | decisions/s | Python's busiest thread (cores) | "
          f"simulator (cores) |{share}")
    print("|---|---|---|---|---|" + ("---|" if ceilings else ""))
    for (p1, free), runs in rows.items():
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("decisions_per_s", "python_busiest_thread", "simulators_cores")}
        cells = ""
        if ceilings:
            ratios = [r["decisions_per_s"] / c for r, c in zip(runs, ceilings)]
            cells = f" {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |"
        print(f"| {p1} vs random | {'mask only' if free else 'real'} | "
              f"{med['decisions_per_s']:,.0f} | {med['python_busiest_thread']:.2f} | "
              f"{med['simulators_cores']:.2f} |{cells}")


if __name__ == "__main__":
    main()
