"""Offline training data: recorded trajectories → flat arrays → sampled windows of turns.

Rewards are computed here, at load time, from the stored per-turn facts with the configured
reward (times `train.reward_scale`), so one dataset serves every reward function.

Windows are drawn so that every decision is equally likely to be trained on, wherever it lies in
its battle: a window's start s is uniform over [−(L−1), n−1] for a trajectory of n decisions
(trajectories drawn in proportion to n+L−1), and the decisions [max(s, 0), s+L) ∩ [0, n) are
placed from the window's first position (right-padded). Each decision is then covered by exactly
L windows, the battle's last one (the only one with the win/loss under `reward=binary`) included;
a window that starts before the battle is just the battle's first turns, as in live play.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from metamon_sp.augment import symmetric_stats
from metamon_sp.features import N_ACTIONS, N_CAT, N_NUM
from metamon_sp.rewards import ShapedReward
from metamon_sp.trajectories import Dataset


class TrainDataError(ValueError):
    pass


@dataclass
class Batch:
    num: torch.Tensor      # (B, L, N_NUM) float32
    cat: torch.Tensor      # (B, L, N_CAT) int64
    mask: torch.Tensor     # (B, L, A) bool: legal actions (all True on padding, never used)
    actions: torch.Tensor  # (B, L) int64
    rewards: torch.Tensor  # (B, L) float32
    dones: torch.Tensor    # (B, L) float32: 1 at a finished battle's last decision
    valid: torch.Tensor    # (B, L) bool: inside the trajectory
    cut: torch.Tensor      # (B, L) bool: a truncated battle's last decision (no next state, not
                           # terminal: it gets no TD target; the decision before bootstraps off it)
    explored: torch.Tensor  # (B, L) bool: the recorded action was an exploratory random one
    searched: torch.Tensor | None = None  # (B, L) bool: the simulator search chose the action
    # (B, L, A) float32: the search's value of each action it valued, NaN elsewhere, and the
    # policy's probabilities before the search; None when the data holds no searched decision
    search_values: torch.Tensor | None = None
    search_prior: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(**{k: None if (v := getattr(self, k)) is None else
                        v.to(device, non_blocking=True) for k in self.__dataclass_fields__})


class OfflineData:
    """Every decision of `data_dirs`, flat and compact. `weights` (one per folder, default 1)
    scales how often that folder's decisions are drawn: a replay window can favour recent
    generations.

    Memory is what sets the data scale a machine can train on, so the arrays are allocated once
    at their final size (from the manifests' counts) and filled shard by shard, never
    concatenated; numeric features are stored as float16 (they lie within ±2, where float16 is
    exact to 5e-4) and categorical ids as int16, widened per batch: ~670 bytes per decision, and
    40 more where the data holds the simulator search's values and priors (float16, NaN where
    none)."""

    def __init__(self, data_dirs: Sequence[Path | str], reward: ShapedReward, reward_scale: float,
                 weights: Sequence[float] | None = None):
        self.sources = [str(d) for d in data_dirs]
        weights = [1.0] * len(self.sources) if weights is None else list(weights)
        if len(weights) != len(self.sources) or min(weights, default=1.0) <= 0:
            raise TrainDataError(f"weights {weights} must be positive, one per data folder "
                                 f"({len(self.sources)}).")
        datasets = [Dataset(d) for d in data_dirs]
        n = sum(int(ds.manifest.get("steps", 0)) for ds in datasets)
        self.num = np.empty((n, N_NUM), np.float16)
        self.cat = np.empty((n, N_CAT), np.int16)
        self.mask = np.empty((n, N_ACTIONS), bool)
        self.actions = np.empty(n, np.int8)
        self.rewards = np.empty(n, np.float32)
        self.dones = np.zeros(n, bool)
        self.cuts = np.zeros(n, bool)
        self.explored = np.empty(n, bool)
        self.searched = np.empty(n, bool)
        valued = any(ds.manifest.get("valued", 0) for ds in datasets)
        for name in ("search_values", "search_prior"):
            setattr(self, name, np.full((n if valued else 0, N_ACTIONS), np.nan, np.float16))
        lengths, traj_w, keys = [], [], []
        at = 0
        for k, (ds, w) in enumerate(zip(datasets, weights)):
            for t in ds:
                if t.steps == 0:
                    continue
                end = at + t.steps
                if end > n:
                    raise TrainDataError(f"{ds.path} holds more decisions than its manifest says "
                                         f"({ds.manifest.get('steps')}); rebuild the manifest.")
                self.num[at:end] = t.obs_num
                self.cat[at:end] = t.obs_cat
                self.mask[at:end] = t.masks
                self.actions[at:end] = t.actions
                self.explored[at:end] = t.explored
                self.searched[at:end] = t.searched
                if valued:
                    self.search_values[at:end] = t.search_values
                    self.search_prior[at:end] = t.search_prior
                # A truncated battle was cut short (a forfeit by timeout): its recorded outcome
                # says nothing about play, and its last decision has no successor to learn from.
                outcome = 0 if t.truncated else t.outcome
                self.rewards[at:end] = reward(t.facts, outcome) * reward_scale
                (self.cuts if t.truncated else self.dones)[end - 1] = True
                lengths.append(t.steps)
                traj_w.append(w)
                keys.append((k, t.battle_id, t.side))
                at = end
        if not lengths:
            raise TrainDataError(f"no decisions to train on in {', '.join(self.sources)}.")
        if at < n:  # skipped rows (a manifest counting empty trajectories): views, no copies
            for name in ("num", "cat", "mask", "actions", "rewards", "dones", "cuts", "explored",
                         "searched") + (("search_values", "search_prior") if valued else ()):
                setattr(self, name, getattr(self, name)[:at])
        # Shards hold battles in the order they finished, which varies between runs of one
        # seed; sampling indexes trajectories in (folder, battle, side) order instead, so the
        # same data trains the same checkpoint whatever order its shards were written in.
        order = sorted(range(len(keys)), key=keys.__getitem__)
        lengths_in_file = np.asarray(lengths, dtype=np.int64)
        starts_in_file = np.concatenate([[0], np.cumsum(lengths_in_file)[:-1]])
        self.lengths = lengths_in_file[order]
        self.starts = starts_in_file[order]
        self.traj_weights = np.asarray(traj_w, dtype=np.float64)[order]
        if not self.mask[np.arange(len(self.actions)), self.actions].all():
            raise TrainDataError("a recorded action is illegal under its own mask; the data is "
                                 "corrupt.")

    def nbytes(self) -> int:
        """Bytes held by the decision arrays."""
        return sum(getattr(self, k).nbytes for k in ("num", "cat", "mask", "actions", "rewards",
                                                      "dones", "cuts", "explored", "searched",
                                                      "search_values", "search_prior"))

    @property
    def n_steps(self) -> int:
        return int(self.lengths.sum())

    @property
    def n_trajectories(self) -> int:
        return len(self.lengths)

    def num_stats(self, min_std: float = 0.1, slot_symmetric: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and std of the numeric observations (std floored at `min_std`, so a
        rare flag cannot become a huge input): the model's fixed input normalisation.
        `slot_symmetric`: pooled over each kind's slots, as training under `train.augment`
        sees them."""
        total = np.zeros(self.num.shape[1], np.float64)
        squares = np.zeros(self.num.shape[1], np.float64)
        for i in range(0, len(self.num), 4096):  # in chunks: no float64 copy of the data
            chunk = self.num[i:i + 4096].astype(np.float64)
            total += chunk.sum(axis=0)
            squares += np.square(chunk).sum(axis=0)
        mean = total / len(self.num)
        if slot_symmetric:
            return symmetric_stats(mean, squares / len(self.num), min_std)
        std = np.sqrt(np.maximum(squares / len(self.num) - mean ** 2, 0.0))
        return mean.astype(np.float32), np.maximum(std, min_std).astype(np.float32)

    def sample(self, batch_size: int, context: int, rng: np.random.Generator) -> Batch:
        """Windows of `context` turns, every decision equally likely (see the module's doc)."""
        span = self.lengths + context - 1  # window starts per trajectory
        p = span * self.traj_weights
        traj = rng.choice(len(self.lengths), size=batch_size, p=p / p.sum())
        lengths = self.lengths[traj]
        start = rng.integers(0, span[traj]) - (context - 1)  # in [-(L-1), n-1]
        first = np.maximum(start, 0)
        count = np.minimum(start + context, lengths) - first  # decisions in the window, >= 1
        pos = first[:, None] + np.arange(context)[None, :]  # (B, L) position in trajectory
        valid = np.arange(context)[None, :] < count[:, None]
        idx = self.starts[traj][:, None] + np.minimum(pos, lengths[:, None] - 1)  # (B, L)
        mask = self.mask[idx]
        mask[~valid] = True
        return Batch(
            num=torch.from_numpy(self.num[idx].astype(np.float32)),
            cat=torch.from_numpy(self.cat[idx].astype(np.int64)),
            mask=torch.from_numpy(mask),
            actions=torch.from_numpy(self.actions[idx].astype(np.int64)),
            rewards=torch.from_numpy(np.where(valid, self.rewards[idx], 0.0).astype(np.float32)),
            dones=torch.from_numpy(np.where(valid, self.dones[idx], 0.0).astype(np.float32)),
            valid=torch.from_numpy(valid),
            cut=torch.from_numpy(valid & self.cuts[idx]),
            explored=torch.from_numpy(valid & self.explored[idx]),
            searched=torch.from_numpy(valid & self.searched[idx]),
            **({name: torch.from_numpy(np.where(valid[..., None], getattr(self, name)[idx],
                                                np.nan).astype(np.float32))
                for name in ("search_values", "search_prior")} if len(self.search_values) else {}),
        )
