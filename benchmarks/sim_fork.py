"""What search would cost in the simulator: fork a Gen 1 OU battle mid-game and play it out.

    python benchmarks/sim_fork.py [--battles 20] [--forks 8]

Runs `sim_fork.js` (Node, no Python in the loop) on the training teams and prints its figures:
the size of a serialized battle, the milliseconds to serialize and to fork one
(`Battle.toJSON`/`fromJSON`), to play a fork 1 turn, 3 turns and to its end with random
choices under its own seed, and `faithful`: how many forks, given the original's PRNG state and
the same choices, replayed the original battle line for line. Rollout-based policy improvement
(Q-estimates of each legal action from forks of the live battle) is priced by these figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--battles", type=int, default=20)
    ap.add_argument("--forks", type=int, default=8, help="forks of each mid-battle state")
    args = ap.parse_args()

    from metamon_sp.showdown import ensure_installed
    from metamon_sp.teams import load_team_set

    pkg = ensure_installed()
    with tempfile.TemporaryDirectory() as tmp:
        teams = Path(tmp) / "teams.json"
        teams.write_text(json.dumps([t.packed for t in load_team_set("gen1ou")]))
        out = subprocess.run(["node", str(HERE / "sim_fork.js"), str(pkg), str(teams),
                              str(args.battles), str(args.forks)],
                             check=True, capture_output=True, text=True).stdout
    row = json.loads(out)
    print(json.dumps(row))
    print(f"\n{row['states']} mid-battle states (turns 5, 10, 20) of {row['battles']} battles, "
          f"{row['forks_per_state']} forks each")
    print("| serialized state | serialize | fork | 1 turn | 3 turns | to the end | faithful |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {row['state_kb']} KB | {row['serialize_ms']} ms | {row['deserialize_ms']} ms "
          f"| {row['rollout_1_turn_ms']} ms | {row['rollout_3_turns_ms']} ms "
          f"| {row['rollout_to_end_ms']} ms ({row['rollout_to_end_turns']} turns) "
          f"| {row['faithful']} |")


if __name__ == "__main__":
    main()
