"""`Gen1Battle` against poke-env's `Battle` on seeded battles: the same observations? how fast?

    python benchmarks/tracker_equivalence.py [--battles 50] [--checkpoint CK] [--seed 0]

Plays `--battles` seeded battles on the direct backend for each pairing (random, the heuristics,
`max_base_power`, and with `--checkpoint` a policy in self-play and against the heuristics),
over every shipped team split, keeping every frame each player receives. Each battle side's
messages are then replayed through both trackers (`tests/replay.py`, as a player feeds them)
and every decision's observation, mask and reward facts compared, then the end (winner, turns,
final facts). Prints the count of decisions compared, any that differ (exit status 1), and the
time per decision of tracking alone and of tracking + featurizing, both ways, interleaved.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIELDS = ("num", "cat", "mask", "facts")
SPLITS = ("gen1ou", "gen1ou_eval", "gen1ou_select")


def pairings(checkpoint: str | None) -> list[tuple[str, str]]:
    out = [("random", "random"), ("simple_heuristics", "random"),
           ("max_base_power", "simple_heuristics"), ("simple_heuristics", "self")]
    if checkpoint:
        ck = f"checkpoint:{checkpoint}"
        out += [(ck, "self"), (ck, "max_base_power")]
    return out


def record(battles: int, checkpoint: str | None, seed: int, out: Path) -> list[dict]:
    """Play the pairings and return every battle side's frames as replay logs."""
    from metamon_sp.collect import collect
    from metamon_sp.config import load_config
    from tests.integration.test_direct_backend import by_battle, captured_frames

    logs: list[dict] = []
    for i, (p1, p2) in enumerate(pairings(checkpoint)):
        for j, split in enumerate(SPLITS):
            cfg = load_config([f"collect.p1={p1}", f"collect.p2={p2}",
                               f"collect.battles={battles}", "collect.concurrency=16",
                               "collect.parallel_instances=1",
                               f"team_set={split}", "team_remix=0",
                               f"seed={seed * 100 + i * 10 + j}"])
            with captured_frames() as frames:
                collect(cfg, out / f"{i}-{j}", show_progress=False)
            for tag, items in by_battle(frames).items():
                users = sorted({u for u, _ in items})
                for user in users:
                    chunks = [[line.split("|") for line in text.split("\n")]
                              for u, text in items if u == user]
                    logs.append({"battle_tag": tag, "username": user, "chunks": chunks,
                                 "pairing": f"{p1} vs {p2}"})
    return logs


def compare(logs: list[dict]) -> tuple[int, list[str]]:
    from metamon_sp.features import featurize, reward_facts
    from tests.replay import decisions, final_battle

    n, problems = 0, []
    for log in logs:
        where = f"{log['battle_tag']} ({log['username']}, {log['pairing']})"
        try:
            ours = [featurize(b) for b in decisions(log, gen1=True)]
            theirs = [featurize(b) for b in decisions(log, lean=True)]
            end_ours, end_theirs = final_battle(log, gen1=True), final_battle(log)
        except Exception as e:  # report, and go on with the other battles
            problems.append(f"{where}: {type(e).__name__}: {e}")
            continue
        if len(ours) != len(theirs):
            problems.append(f"{where}: {len(ours)} decisions against {len(theirs)}")
            continue
        for k, (a, b) in enumerate(zip(ours, theirs)):
            n += 1
            bad = [f for f in FIELDS if not np.array_equal(getattr(a, f), getattr(b, f))]
            if bad:
                problems.append(f"{where} decision {k}: {', '.join(bad)} differ")
                break
        if (end_ours.won, end_ours.turn) != (end_theirs.won, end_theirs.turn) or \
                not np.array_equal(reward_facts(end_ours), reward_facts(end_theirs)):
            problems.append(f"{where}: the end differs")
    return n, problems


def timings(logs: list[dict], rounds: int) -> dict[str, float]:
    """µs per decision: tracking alone and tracking + featurizing, both trackers interleaved."""
    from metamon_sp.features import featurize
    from tests.replay import decisions

    n = sum(1 for log in logs for _ in decisions(log, gen1=True))
    total: dict[str, float] = {}
    for r in range(rounds):
        arms = [("poke-env", False), ("Gen1Battle", True)]
        for name, gen1 in arms if r % 2 == 0 else arms[::-1]:
            for feat in (False, True):
                t0 = time.perf_counter()
                for log in logs:
                    for b in decisions(log, lean=not gen1, gen1=gen1):
                        if feat:
                            featurize(b)
                key = f"{name} {'tracking + featurize' if feat else 'tracking'}"
                total[key] = total.get(key, 0.0) + time.perf_counter() - t0
    return {k: v / (n * rounds) * 1e6 for k, v in total.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--battles", type=int, default=50, help="per pairing and team split")
    ap.add_argument("--checkpoint", help="a policy checkpoint folder to add policy battles")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds over every decision")
    args = ap.parse_args()
    logging.getLogger("replay").setLevel(logging.ERROR)  # poke-env's notes on odd messages
    with tempfile.TemporaryDirectory() as tmp:
        logs = record(args.battles, args.checkpoint, args.seed, Path(tmp))
    n, problems = compare(logs)
    print(f"{len(logs)} battle sides, {n} decisions compared: {len(problems)} differing")
    for p in problems[:20]:
        print("  " + p)
    for key, us in timings(logs, args.rounds).items():
        print(f"  {key:>32}: {us:7.1f} µs per decision")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
