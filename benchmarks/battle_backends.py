"""Battle throughput on both backends, side by side in one run: decisions/s and battles/s of
random, heuristic and tiny-policy self-play through the real `collect` path (both sides
featurized and recorded) over its play time (`collect`'s: from when the players are built to
the last battle's end), the same decisions over the whole call (`with_setup`: starting the
backend, importing torch and loading the policy too, ~2.5 s once per collection), the
simulator-alone ceiling, Python's CPU time per decision (every thread of the collecting process,
from the call to `collect` to its return, so its setup is in it: compare within the column),
peak memory, and the Python profile's top entries on the direct backend (the compiled modules'
functions are not seen by the profiler: `METAMON_SP_COMPILED=0` profiles their source).

    python benchmarks/battle_backends.py [--battles 300] [--repeats 2] [--checkpoint PATH]
        [--rows all|targets|ceiling] [--baseline REV] [--json FILE]
    python benchmarks/battle_backends.py --pool FILE [FILE ...]

Each workload runs on the websocket server at concurrency 10 (the default before the direct
backend), and on the direct backend at concurrency 10 and 32, with one and two instances
(processes), and with one instance feeding two simulator processes (`collect.simulators=2`).
Every configuration runs in a fresh process, and the configurations are
interleaved `--repeats` times (this machine's speed drifts by ±30% over minutes): the table
shows each one's median. The profile comes from one more, untimed run.
The ceiling is Showdown's own BattleStream with its RandomPlayerAI on both sides, in one Node
process and in one per core at once (benchmarks/sim_ceiling.js), each process playing as many
battles as each instance of the direct backend does (`--battles` over the processes): the same
share of warm-up and wind-down in both. Its players choose as our random player does, uniformly
among the legal moves and switches, so both sides of the ratio play the same game (RandomPlayerAI
as it comes switches only when it cannot move: ~110 decisions a battle against ~144, each dearer
to simulate). (The first battles of a process run while V8 still compiles the simulator, the
last ones with fewer in flight: at 150 battles an instance, random play ran 0.81-0.87x its rate
at 600.) The figures of issue 10 are taken at `--battles 1200`,
about a collection's size (the laptop scale collects 1,500 battles a generation).

`--baseline REV` adds the websocket server path of an older revision of this repository (its
code as committed, run from a copy), interleaved with the rest: issue 10's targets are against
the code of the day it was filed (`--baseline c192916`). Its play time is its own `collect`'s
(from after the server's start, players' build included), with torch imported beforehand as
today's clock excludes it. `--rows targets` runs only what those ratios need, so more rounds fit;
`--rows ceiling` only random play on the direct backend and the ceilings (the 50% line).

Each ratio is printed from the medians, and taken within each round (a round's runs are minutes
apart) with a geometric mean and a 95% bootstrap interval over the rounds. `--json FILE` keeps
every run by round; `--pool FILE...` reports the rounds of several such files as one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # its sibling modules, also when loaded by path (tests)
from revision import export_revision  # noqa: E402


def run_one(p1: str, p2: str, backend: str, instances: int, battles: int, concurrency: int,
            profile: bool = False, simulators: int = 1) -> dict:
    from metamon_sp.collect import collect
    from metamon_sp.config import load_config

    cfg = load_config([f"collect.p1={p1}", f"collect.p2={p2}", f"collect.battles={battles}",
                       f"collect.backend={backend}", f"collect.parallel_instances={instances}",
                       f"collect.concurrency={concurrency}", f"collect.simulators={simulators}",
                       "policy.batched=true"])
    prof = None
    if profile:  # poke-env's handlers run on its own loop thread: profile that thread
        import cProfile

        from poke_env.concurrency import POKE_LOOP
        prof = cProfile.Profile()
        POKE_LOOP.call_soon_threadsafe(prof.enable)
    cpu0, wall0 = time.process_time(), time.monotonic()
    with tempfile.TemporaryDirectory() as out:
        s = collect(cfg, Path(out), show_progress=False)
    # CPU: every thread of this process, what bounds its rate
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    top = []
    if prof is not None:
        import pstats
        from poke_env.concurrency import POKE_LOOP
        done = __import__("threading").Event()
        POKE_LOOP.call_soon_threadsafe(lambda: (prof.disable(), done.set()))
        done.wait(5)
        st = pstats.Stats(prof)
        total = st.total_tt or 1.0
        rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:12]
        top = [{"function": f"{Path(f).name}:{line}({name})", "self_share": round(v[2] / total, 3)}
               for (f, line, name), v in rows]
    return _row(p1, p2, (backend, instances, concurrency, simulators), s, cpu, wall, top)


def run_revision(tree: str, p1: str, p2: str, battles: int, concurrency: int) -> dict:
    """The server path of the code under `tree` (an older revision): its own `collect`."""
    sys.path.insert(0, tree)
    import metamon_sp

    if not Path(metamon_sp.__file__).resolve().is_relative_to(Path(tree).resolve()):
        sys.exit(f"--baseline: imported metamon_sp from {metamon_sp.__file__}, not from {tree}")
    import metamon_sp.policy  # noqa: F401  torch's import out of the play time, as today's
    from metamon_sp.collect import collect
    from metamon_sp.config import CollectConfig, load_config

    overrides = [f"collect.p1={p1}", f"collect.p2={p2}", f"collect.battles={battles}",
                 f"collect.concurrency={concurrency}", "policy.batched=true"]
    if "backend" in CollectConfig.__dataclass_fields__:  # a revision with the direct backend
        overrides.append("collect.backend=showdown")
    cfg = load_config(overrides)
    cpu0, wall0 = time.process_time(), time.monotonic()
    with tempfile.TemporaryDirectory() as out:
        s = collect(cfg, Path(out), show_progress=False)
        logs = sorted(p.name for p in Path(out).glob("logs/*.log"))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    if not logs or not all(name.startswith("showdown") for name in logs):
        sys.exit(f"--baseline: {tree} did not play on the Showdown server (its logs: {logs})")
    return _row(p1, p2, (f"server @{Path(tree).name}", 1, concurrency, 1), s, cpu, wall, [])


def _row(p1: str, p2: str, setup: tuple[str, int, int, int], s: dict, cpu: float, wall: float,
         top: list[dict]) -> dict:
    """One run's row: `setup` is (backend, instances, concurrency, simulators), `s` what
    `collect` returned, `cpu` and `wall` the seconds of the call to it."""
    import resource

    from metamon_sp.policy import _POLICIES  # the revision's own, in a baseline's process

    backend, instances, concurrency, simulators = setup
    try:
        from metamon_sp.compiled import status
        compiled = all(status().values())
    except ImportError:  # a revision from before the compiled modules
        compiled = False
    fwd = sum(p.forward_passes for p in _POLICIES.values())
    dec = sum(p.decisions for p in _POLICIES.values())
    return {"p1": "policy" if p1.startswith("checkpoint:") else p1,
            "p2": "self" if p2 == "self" else p2, "backend": backend, "instances": instances,
            "concurrency": concurrency, "simulators": simulators,
            "battles": s["battles"], "battles_per_s": s["battles_per_s"],
            "decisions_per_s": round(s["decisions"] / s["play_seconds"], 1),
            # the whole call: starting the backend, importing torch, loading the policy too
            "with_setup": round(s["decisions"] / wall, 1),
            "decisions_per_battle": round(s["decisions"] / s["battles"], 1),
            "mean_batch": round(dec / fwd, 2) if fwd else None,
            # one process: its own CPU time (worker processes of several instances are not in it)
            "python_cpu_us_per_decision": round(1e6 * cpu / s["decisions"]) if instances == 1
            else None,
            "python_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "backend_peak_rss_mb": round(max((i["server_peak_rss_bytes"] or 0)
                                             for i in s["instances"]) / 2**20),
            "compiled": compiled,  # the decision path's modules (metamon_sp/compiled.py)
            "profile_top": top}


def ceiling(battles: int, processes: int) -> dict:
    from metamon_sp.showdown import ensure_installed
    from metamon_sp.teams import load_team_set

    pkg = ensure_installed()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump([t.packed for t in load_team_set("gen1ou")], f)
    try:
        procs = [subprocess.Popen(["node", str(HERE / "sim_ceiling.js"), str(pkg), f.name,
                                   str(battles), "10", "uniform"], stdout=subprocess.PIPE,
                                  text=True)
                 for _ in range(processes)]
        outs = [json.loads(p.communicate()[0]) for p in procs]
    finally:
        os.unlink(f.name)
    return {"p1": "sim alone (uniform random)", "p2": "random", "backend": "node only",
            "instances": processes, "concurrency": 10, "simulators": processes,
            "battles": sum(o["battles"] for o in outs),
            "battles_per_s": round(sum(o["battles_per_s"] for o in outs), 3),
            "decisions_per_s": round(sum(o["decisions_per_s"] for o in outs), 1),
            "with_setup": None,
            "decisions_per_battle": round(sum(o["decisions"] for o in outs)
                                          / sum(o["battles"] for o in outs), 1),
            "mean_batch": None, "python_cpu_us_per_decision": None, "python_peak_rss_mb": None,
            "backend_peak_rss_mb": round(max(o["peak_rss_bytes"] for o in outs) / 2**20),
            "profile_top": []}


def fresh_checkpoint(folder: Path) -> Path:
    from dataclasses import asdict

    import torch

    from metamon_sp.checkpoint import CheckpointMeta, save_checkpoint
    from metamon_sp.config import load_config
    from metamon_sp.model import PolicyModel

    torch.manual_seed(0)
    mc = load_config(["model=tiny"]).model
    return save_checkpoint(folder / "fresh-tiny", PolicyModel(mc), CheckpointMeta(model=asdict(mc)))


COLS = ("p1", "p2", "backend", "instances", "concurrency", "simulators", "battles_per_s",
        "decisions_per_s", "with_setup", "decisions_per_battle", "mean_batch",
        "python_cpu_us_per_decision", "python_peak_rss_mb", "backend_peak_rss_mb")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", help="the policy (default: a freshly initialised tiny model; "
                    "a trained one plays shorter battles)")
    ap.add_argument("--battles", type=int, default=300,
                    help="battles per configuration (fewer: the first and last battles, with "
                    "fewer in flight, weigh on the rate; 32 in flight more than 10)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=10, help=argparse.SUPPRESS)
    ap.add_argument("--simulators", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--rows", choices=("all", "targets", "ceiling"), default="all",
                    help="targets: only what issue 10's ratios need (random and policy play, "
                    "server at 10, direct at 32 with 1 and 2 instances; more rounds in the "
                    "same time); ceiling: only random play on the direct backend at 32 and the "
                    "ceilings (the 50%% line)")
    ap.add_argument("--baseline", metavar="REV", help="also the server path of this older "
                    "revision (issue 10's day: c192916)")
    ap.add_argument("--pool", nargs="+", metavar="JSON", help="no battles: report the rounds of "
                    "these --json files as one run")
    ap.add_argument("--one", nargs=6, help=argparse.SUPPRESS)
    ap.add_argument("--revision-one", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.pool:
        pool(args.pool)
        return
    if args.revision_one:
        tree, p1, p2, n = args.revision_one
        print(json.dumps(run_revision(tree, p1, p2, int(n), 10)))
        return
    if args.one:
        p1, p2, backend, inst, n, prof = args.one
        print(json.dumps(run_one(p1, p2, backend, int(inst), int(n), args.concurrency,
                                 prof == "1", args.simulators)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tree = export_revision(args.baseline, Path(tmp) / args.baseline.replace("/", "-"),
                               "--baseline") \
            if args.baseline else None
        spec = f"checkpoint:{args.checkpoint or fresh_checkpoint(Path(tmp))}"
        workloads = [("random", "random"), ("simple_heuristics", "random"), (spec, "self")]
        # (backend, instances, concurrency, simulators)
        setups = [("showdown", 1, 10, 1), ("direct", 1, 10, 1), ("direct", 1, 32, 1),
                  ("direct", 2, 32, 1), ("direct", 1, 32, 2)]
        if args.rows == "targets":
            workloads, setups = [workloads[0], workloads[2]], setups[0:1] + setups[2:4]
        elif args.rows == "ceiling":
            workloads, setups = workloads[:1], setups[2:4]
        configs = [(p1, p2, *setup) for p1, p2 in workloads for setup in setups]
        if tree is not None:
            configs += [(p1, p2, "baseline", 1, 10, 1) for p1, p2 in workloads]
        results: dict[tuple, list[dict]] = {c: [] for c in configs}
        ceilings: dict[int, list[dict]] = {1: [], 2: []}
        profiled = [c for c in configs if c[2:] == ("direct", 1, 32, 1)]
        for rep in range(args.repeats + 1):  # the last round only profiles (untimed)
            for c in configs if rep < args.repeats else profiled:
                profile = rep == args.repeats
                t0 = time.monotonic()
                cmd = [sys.executable, __file__, "--concurrency", str(c[4]),
                       "--simulators", str(c[5]), "--one", c[0], c[1], c[2], str(c[3]),
                       str(args.battles), "1" if profile else "0"]
                if c[2] == "baseline":
                    cmd = [sys.executable, __file__, "--revision-one", str(tree), c[0], c[1],
                           str(args.battles)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    sys.exit(proc.stderr[-3000:])
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                row["wall_s"] = round(time.monotonic() - t0, 1)
                if profile:
                    results[c][0]["profile_top"] = row["profile_top"]
                    continue
                results[c].append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "profile_top"}),
                      file=sys.stderr, flush=True)
            for k in ceilings if rep < args.repeats else ():
                ceilings[k].append(ceiling(args.battles // k, k))  # per process: an instance's
                print(json.dumps(ceilings[k][-1]), file=sys.stderr, flush=True)
    rounds = [[v[i] for v in (*results.values(), *ceilings.values()) if len(v) > i]
              for i in range(args.repeats)]
    print(f"{args.battles} battles a run, {os.cpu_count()} cores")
    rows = report(rounds)
    for r in rows:
        if r["profile_top"]:
            print(f"\nprofile, {r['p1']} vs {r['p2']} on the direct backend (poke-env's loop "
                  f"thread, self time as a share of its total):")
            for e in r["profile_top"]:
                print(f"  {e['self_share']:6.1%}  {e['function']}")
    if args.json:  # every run, by round: `--pool` reports several such files as one
        Path(args.json).write_text(json.dumps({"battles": args.battles, "rounds": rounds},
                                              indent=1))


def report(rounds: list[list[dict]]) -> list[dict]:
    """Print each configuration's medians over the rounds, and issue 10's ratios, both from the
    medians and paired within each round; returns the medians."""
    runs: dict[tuple, list[dict]] = {}
    for one in rounds:
        for r in one:
            runs.setdefault(tuple(r[k] for k in COLS[:6]), []).append(r)
    rows = [_median(v) for v in runs.values()]
    print(f"median of {len(rounds)} interleaved rounds")
    print("| " + " | ".join(COLS) + " |")
    print("|" + "---|" * len(COLS))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in COLS) + " |")
    print()
    # the runs of one round are minutes apart, the rounds further, and this machine's speed
    # drifts by ±30% over minutes: a ratio is fairest within a round
    per_round = [targets(one) for one in rounds]
    for name, (value, target) in targets(rows).items():
        paired = [t[name][0] for t in per_round if name in t]
        print(f"{name} (target {target}): {value:.2f} from the medians; "
              f"{paired_summary(paired, target)}")
    return rows


def pool(paths: list[str]) -> None:
    """`report` over the rounds of several `--json` files."""
    rounds = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or "rounds" not in data:
            sys.exit(f"--pool {path}: not a file this benchmark wrote with --json (no rounds)")
        rounds += data["rounds"]
    print(f"{len(paths)} files pooled")
    report(rounds)


def targets(rows: list[dict]) -> dict[str, tuple[float, float]]:
    """Issue 10's ratios against every server path in `rows`, for the direct backend with one
    instance and, where `rows` has it, with one per core (2 here): name -> (value, target)."""
    def rate(p1: str, backend: str, instances: int = 1, concurrency: int = 10,
             simulators: int = 1) -> float | None:
        return next((r["decisions_per_s"] for r in rows if r["p1"] == p1
                     and r["backend"] == backend and r["instances"] == instances
                     and r["concurrency"] == concurrency and r["simulators"] == simulators), None)

    servers = sorted({r["backend"] for r in rows if r["backend"].startswith("server")}
                     | {"showdown"})
    # the ceiling whose players choose as ours (rows before 2026-12-08: Showdown's choices)
    tops = {"the two-process ceiling": rate("sim alone (uniform random)", "node only", 2,
                                            simulators=2),
            "the two-process ceiling of RandomPlayerAI as it comes":
                rate("sim alone (random)", "node only", 2, simulators=2)}
    out = {}
    for name, instances in (("direct", 1), ("direct, 2 instances,", 2)):
        policy = rate("policy", "direct", instances, 32)
        random_ = rate("random", "direct", instances, 32)
        for server in servers:
            sp, sr = rate("policy", server), rate("random", server)
            if policy and sp:
                out[f"{name} policy play / {server}'s policy play"] = (policy / sp, 2.0)
            if policy and sr:
                out[f"{name} policy play / {server}'s random play"] = (policy / sr, 1.0)
        for ceiling_name, top in tops.items():
            if random_ and top:
                out[f"{name} random play / {ceiling_name}"] = (random_ / top, 0.5)
    return out


def paired_summary(ratios: list[float], target: float) -> str:
    """Per-round ratios: their geometric mean with a 95% bootstrap interval over the rounds,
    the range, and how many rounds reach the target."""
    import numpy as np

    logs = np.log(ratios)
    boot = np.exp(np.random.default_rng(0).choice(logs, (10_000, len(logs))).mean(axis=1))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return (f"per round {np.exp(logs.mean()):.2f} [{lo:.2f}, {hi:.2f}] (geometric mean, 95% "
            f"bootstrap interval over {len(ratios)} rounds), range {min(ratios):.2f}-"
            f"{max(ratios):.2f}, {sum(r >= target for r in ratios)} of {len(ratios)} rounds "
            f"at the target")


def _median(runs: list[dict]) -> dict:
    out = dict(runs[0])
    for k in ("battles_per_s", "decisions_per_s", "with_setup", "decisions_per_battle",
              "mean_batch", "python_cpu_us_per_decision"):
        if out[k] is not None:
            out[k] = round(statistics.median(r[k] for r in runs), 1)
    out["profile_top"] = next((r["profile_top"] for r in runs if r["profile_top"]), [])
    return out


if __name__ == "__main__":
    main()
