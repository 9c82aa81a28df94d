"""How often does the agent switch, and does it leave a frozen or sleeping Pokémon in?

    python benchmarks/switch_rate.py RUN [RUN ...]

Per generation of a run (a strength run or a pipeline run): of the decisions where both a move
and a switch were legal and no switch was forced, the share the policy switched. Generation k's
row reads k's collection, played by generation k−1, on the policy's own decisions (exploratory
ones left out); generation 0's row is the heuristics' bootstrap data. Then, for the last
generation's evaluation games against each opponent: the share it switched while its active
Pokémon was frozen, asleep or neither, in won and in lost games.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from metamon_sp import dex  # noqa: E402
from metamon_sp.features import FEATURE_SPEC, N_MOVES, N_SLOTS  # noqa: E402
from metamon_sp.players import BASELINES  # noqa: E402
from metamon_sp.trajectories import Dataset, Trajectory  # noqa: E402

_FORCED = FEATURE_SPEC.num.index("force_switch")
_ACTIVE = [FEATURE_SPEC.num.index(f"own{i}_active") for i in range(N_SLOTS)]
_STATUS = [FEATURE_SPEC.cat.index(f"own{i}_status") for i in range(N_SLOTS)]
_STATUS_NAME = {dex.STATUS_VOCAB["frz"]: "frozen", dex.STATUS_VOCAB["slp"]: "asleep"}


def free_choices(t: Trajectory, own_only: bool = True) -> np.ndarray:
    """Decisions where a move and a switch were both legal, no switch forced (and, with
    `own_only`, not an exploratory random action)."""
    m = t.masks
    keep = m[:, :N_MOVES].any(1) & m[:, N_MOVES:].any(1) & (t.obs_num[:, _FORCED] < 0.5)
    return keep & ~t.explored if own_only else keep


def active_status(t: Trajectory) -> list[str]:
    out = []
    for row_num, row_cat in zip(t.obs_num, t.obs_cat):
        slots = [i for i in range(N_SLOTS) if row_num[_ACTIVE[i]] > 0.5]
        out.append(_STATUS_NAME.get(int(row_cat[_STATUS[slots[0]]]), "neither") if slots
                   else "neither")
    return out


def switch_rates(run: Path) -> list[tuple[int, int, float]]:
    rows = []
    for k in range(0, 1000):
        gen = run / f"gen-{k:03d}"
        folders = sorted(p.parent for p in (gen / "data").glob("*/manifest.json")) if k == 0 \
            else [gen / "collect"]
        if not all(f.exists() for f in folders) or not folders:
            break
        n = s = 0
        for folder in folders:
            for t in Dataset(folder):
                if k > 0 and t.player in BASELINES:
                    continue
                free = free_choices(t, own_only=k > 0)
                n += int(free.sum())
                s += int((t.actions[free] >= N_MOVES).sum())
        rows.append((k, n, s / n if n else float("nan")))
    return rows


def status_rates(games: Path, player: str) -> dict[tuple[str, int], tuple[int, float]]:
    """From evaluation games (both sides recorded), the decisions of the player whose spec
    contains `player`."""
    counts: dict[tuple[str, int], list[int]] = {}
    for folder in sorted(p.parent for p in games.glob("*/manifest.json")):
        for t in Dataset(folder):
            if player not in t.player:
                continue
            free = free_choices(t, own_only=False)
            for i, status in enumerate(active_status(t)):
                if free[i]:
                    c = counts.setdefault((status, t.outcome), [0, 0])
                    c[0] += 1
                    c[1] += int(t.actions[i] >= N_MOVES)
    return {k: (n, s / n) for k, (n, s) in sorted(counts.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    for run in args.runs:
        rows = switch_rates(run)
        print(f"\n{run}\n| gen | free choices | switched |\n|---|---|---|")
        for k, n, rate in rows:
            print(f"| {k}{' (heuristics)' if k == 0 else ''} | {n} | {rate:.1%} |")
        if not rows:
            continue
        gen = f"gen-{rows[-1][0]:03d}"
        last = run / gen / "eval" / "games"
        for opponent in sorted(p.name for p in last.iterdir()) if last.exists() else []:
            print(f"\ngen {rows[-1][0]} against {opponent}: switched, by active status and "
                  f"outcome\n| status | outcome | free choices | switched |\n|---|---|---|---|")
            for (status, outcome), (n, rate) in status_rates(last / opponent,
                                                               f"/{gen}/train/").items():
                word = {1: "won", -1: "lost"}.get(outcome, "tie")
                print(f"| {status} | {word} | {n} | {rate:.1%} |")


if __name__ == "__main__":
    main()
