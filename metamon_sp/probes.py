"""Behaviour probes: what a policy does, not just whether it wins.

From a player's recorded decisions: how often it picks recovery (Recover, Soft-Boiled, Rest) and
status moves in clearly lost vs clearly won positions, its switch rate, and the diversity of the
moves it uses. The question behind it: does a shaped reward teach recovery spam when lost?

A position is *clearly lost* when the side to move trails by at least `margin` in remaining
Pokémon or in summed team HP (fractions of max), *clearly won* when it leads by as much.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable

import numpy as np

from metamon_sp import dex
from metamon_sp.features import FACTS, FEATURE_SPEC, N_MOVES
from metamon_sp.trajectories import Trajectory

_MOVE_COLS = [FEATURE_SPEC.cat.index(f"move{i}_id") for i in range(N_MOVES)]
_OWN_HP, _OPP_HP = FACTS.index("own_hp"), FACTS.index("opp_hp")
_OWN_FNT, _OPP_FNT = FACTS.index("own_fainted"), FACTS.index("opp_fainted")


def _move_kinds() -> tuple[set[int], set[int]]:
    vocab = dex.move_vocab()
    recovery = {vocab[m] for m in dex.HEALING_MOVES if m in vocab}
    status = {info.id for m in vocab if (info := dex.move_info(m)).is_status} - recovery
    return recovery, status


def position_class(facts_row: np.ndarray, margin: float = 2.0) -> str:
    lead_mons = facts_row[_OPP_FNT] - facts_row[_OWN_FNT]
    lead_hp = facts_row[_OWN_HP] - facts_row[_OPP_HP]
    if lead_mons <= -margin or lead_hp <= -margin:
        return "lost"
    if lead_mons >= margin or lead_hp >= margin:
        return "won"
    return "even"


def behaviour_probes(trajs: Iterable[Trajectory], margin: float = 2.0) -> dict[str, Any]:
    recovery, status = _move_kinds()
    counts: dict[str, Counter] = {k: Counter() for k in ("lost", "even", "won", "all")}
    moves_used: Counter[int] = Counter()
    for t in trajs:
        for step in range(t.steps):
            a = int(t.actions[step])
            cls = position_class(t.facts[step], margin)
            kind = "switch"
            if a < N_MOVES:
                move_id = int(t.obs_cat[step, _MOVE_COLS[a]])
                moves_used[move_id] += 1
                kind = "recovery" if move_id in recovery else "status" if move_id in status else "attack"
            for c in (cls, "all"):
                counts[c]["decisions"] += 1
                counts[c][kind] += 1
    out: dict[str, Any] = {}
    for cls, c in counts.items():
        n = c["decisions"]
        out[cls] = {"decisions": n, **{f"{k}_rate": round(c[k] / n, 4) if n else None
                                       for k in ("recovery", "status", "switch", "attack")}}
    total = sum(moves_used.values())
    entropy = -sum(v / total * math.log2(v / total) for v in moves_used.values()) if total else 0.0
    out["move_diversity"] = {"distinct_moves": len(moves_used), "entropy_bits": round(entropy, 3)}
    return out
