"""Slot permutations of training windows: the symmetries of a Gen 1 battle, as data.

Which of a team's six Pokémon sits in which slot, in which order the opponent's were revealed,
and in which order a Pokémon's four moves are listed change nothing about the game: relabel them
and every decision, outcome and value is the same. The featurizer writes them in one order (the
team file's, the reveal's, the request's), so a policy can learn slot-specific habits that do
not carry over to teams listed another way, or never seen. `train.augment` trains on each window
under three random relabelings, one per window and the same at every turn of it (the history
stays one battle's): own slots σ, opponent slots ρ, move slots μ (the request's and every
moveset's). Actions follow: move slot j is move action j, own slot i is switch action N_MOVES+i.

The model's fixed input normalisation is per column; under augmentation every slot of a kind
sees every slot's values, so `symmetric_stats` pools the statistics of each kind's slots.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from metamon_sp.features import FEATURE_SPEC, N_MOVES, N_SLOTS

if TYPE_CHECKING:
    from metamon_sp.train_data import Batch

_NUM, _CAT = FEATURE_SPEC.num, FEATURE_SPEC.cat


def _columns(names: tuple[str, ...], pattern: str, rows: int, cols: int = 0) -> np.ndarray:
    """Indices of `pattern.format(i=…, j=…)` in `names`: (rows, k) per-slot columns in one suffix
    order (k found from the names), or (rows, cols) for an exact two-index pattern."""
    if cols:
        return np.array([[names.index(pattern.format(i=i, j=j)) for j in range(cols)]
                         for i in range(rows)])
    per_row = [[c for c, n in enumerate(names) if n.startswith(pattern.format(i=i))
                and not n[len(pattern.format(i=i)):].startswith("move")] for i in range(rows)]
    suffixes = {tuple(names[c][len(pattern.format(i=i)):] for c in row)
                for i, row in enumerate(per_row)}
    if len(suffixes) != 1:
        raise ValueError(f"feature slots {pattern} do not have the same columns")
    return np.array(per_row)


# numeric columns per slot (own: stats and matchups; opp: seen state; move: the request's slot)
NUM_OWN = _columns(_NUM, "own{i}_", N_SLOTS)
NUM_OPP = _columns(_NUM, "opp{i}_", N_SLOTS)
NUM_MOVE = _columns(_NUM, "move{i}_", N_MOVES)
# id columns: a Pokémon's own ids, its moveset (moves permuted within it), the request's slots
CAT_OWN = _columns(_CAT, "own{i}_", N_SLOTS)
CAT_OPP = _columns(_CAT, "opp{i}_", N_SLOTS)
CAT_OWN_MOVES = _columns(_CAT, "own{i}_move{j}", N_SLOTS, N_MOVES)
CAT_OPP_MOVES = _columns(_CAT, "opp{i}_move{j}", N_SLOTS, N_MOVES)
CAT_MOVE = _columns(_CAT, "move{i}_", N_MOVES)


def _relabel(perm: np.ndarray, base: np.ndarray, slots: np.ndarray) -> None:
    """perm[:, base[i']] = base[slots[:, i']]: new slot i' reads old slot slots[i']."""
    perm[:, base.reshape(-1)] = base[slots].reshape(len(perm), -1)


def permutations(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """Per window: σ (n, N_SLOTS) own slots, ρ (n, N_SLOTS) opponent slots, μ (n, N_MOVES)."""
    def draw(k: int) -> np.ndarray:
        return rng.permuted(np.tile(np.arange(k), (n, 1)), axis=1)
    return draw(N_SLOTS), draw(N_SLOTS), draw(N_MOVES)


def column_maps(own: np.ndarray, opp: np.ndarray, moves: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gather indices (n, N_NUM), (n, N_CAT), (n, N_ACTIONS): new column c reads old column
    map[c]; new action a reads old action map[a]."""
    n = len(own)
    num = np.tile(np.arange(len(_NUM)), (n, 1))
    _relabel(num, NUM_OWN, own)
    _relabel(num, NUM_OPP, opp)
    _relabel(num, NUM_MOVE, moves)
    cat = np.tile(np.arange(len(_CAT)), (n, 1))
    _relabel(cat, CAT_OWN, own)
    _relabel(cat, CAT_OPP, opp)
    _relabel(cat, CAT_MOVE, moves)
    for table, slots in ((CAT_OWN_MOVES, own), (CAT_OPP_MOVES, opp)):
        # new (i', j') reads old (slots[i'], μ[j']): the Pokémon moves, its moveset reorders
        cat[:, table.reshape(-1)] = table[slots[:, :, None], moves[:, None, :]].reshape(n, -1)
    return num, cat, np.concatenate([moves, N_MOVES + own], axis=1)


def _gather(x: torch.Tensor | None, index: torch.Tensor) -> torch.Tensor | None:
    """x (B, L, K) with x'[b, t, k] = x[b, t, index[b, k]]."""
    if x is None:
        return None
    return x.gather(-1, index[:, None, :].expand(-1, x.shape[1], -1))


def permute_batch(batch: Batch, rng: np.random.Generator) -> Batch:
    """`batch` with each window relabelled by its own random σ, ρ, μ."""
    return relabel_batch(batch, *permutations(rng, batch.num.shape[0]))


def relabel_batch(batch: Batch, own: np.ndarray, opp: np.ndarray, moves: np.ndarray) -> Batch:
    """`batch` with window b's own slot i' holding old slot own[b, i'] (opponent slots: opp,
    move slots: moves), at every turn; actions, masks and search labels relabelled alike."""
    num_map, cat_map, act_map = (torch.from_numpy(m) for m in column_maps(own, opp, moves))
    act_inverse = act_map.argsort(dim=-1)  # old action a is new action act_inverse[a]
    return replace(
        batch,
        num=_gather(batch.num, num_map),
        cat=_gather(batch.cat, cat_map),
        mask=_gather(batch.mask, act_map),
        actions=act_inverse.gather(-1, batch.actions),
        search_values=_gather(batch.search_values, act_map),
        search_prior=_gather(batch.search_prior, act_map),
    )


def symmetric_stats(mean: np.ndarray, second: np.ndarray, min_std: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and second moment → mean and std pooled over each kind's slots (what
    every slot sees under augmentation), std floored at `min_std`."""
    mean, second = mean.copy(), second.copy()
    for table in (NUM_OWN, NUM_OPP, NUM_MOVE):
        mean[table] = mean[table].mean(axis=0, keepdims=True)
        second[table] = second[table].mean(axis=0, keepdims=True)
    std = np.sqrt(np.maximum(second - mean ** 2, 0.0))
    return mean.astype(np.float32), np.maximum(std, min_std).astype(np.float32)
