"""Offline training data: recorded trajectories → flat arrays → sampled windows of turns.

Rewards are computed here, at load time, from the stored per-turn facts with the configured
reward (times `train.reward_scale`), so one dataset serves every reward function.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

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
    dones: torch.Tensor    # (B, L) float32: 1 at a trajectory's last decision
    valid: torch.Tensor    # (B, L) bool: inside the trajectory

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(**{k: getattr(self, k).to(device, non_blocking=True)
                        for k in self.__dataclass_fields__})


class OfflineData:
    def __init__(self, data_dirs: Sequence[Path | str], reward: ShapedReward, reward_scale: float):
        nums, cats, masks, acts, rews, dones, lengths = [], [], [], [], [], [], []
        self.sources = [str(d) for d in data_dirs]
        for d in data_dirs:
            for t in Dataset(d):
                if t.steps == 0:
                    continue
                nums.append(t.obs_num)
                cats.append(t.obs_cat)
                masks.append(t.masks)
                acts.append(t.actions.astype(np.int64))
                rews.append(reward(t.facts, t.outcome) * reward_scale)
                done = np.zeros(t.steps, np.float32)
                done[-1] = 1.0  # the battle ended (truncated battles are filtered out upstream)
                dones.append(done)
                lengths.append(t.steps)
        if not lengths:
            raise TrainDataError(f"no decisions to train on in {', '.join(self.sources)}.")
        self.num = np.concatenate(nums)
        self.cat = np.concatenate(cats).astype(np.int64)
        self.mask = np.concatenate(masks)
        self.actions = np.concatenate(acts)
        self.rewards = np.concatenate(rews).astype(np.float32)
        self.dones = np.concatenate(dones)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        if not self.mask[np.arange(len(self.actions)), self.actions].all():
            raise TrainDataError("a recorded action is illegal under its own mask; the data is "
                                 "corrupt.")

    @property
    def n_steps(self) -> int:
        return int(self.lengths.sum())

    @property
    def n_trajectories(self) -> int:
        return len(self.lengths)

    def sample(self, batch_size: int, context: int, rng: np.random.Generator) -> Batch:
        """Windows of `context` turns: trajectories drawn in proportion to their length, the
        window start uniform over positions that keep it full (or 0 for short ones)."""
        traj = rng.choice(len(self.lengths), size=batch_size, p=self.lengths / self.lengths.sum())
        lengths = self.lengths[traj]
        offset = rng.integers(0, np.maximum(lengths - context, 0) + 1)
        pos = offset[:, None] + np.arange(context)[None, :]  # (B, L) position in trajectory
        valid = pos < lengths[:, None]
        idx = self.starts[traj][:, None] + np.minimum(pos, lengths[:, None] - 1)  # (B, L)
        mask = self.mask[idx]
        mask[~valid] = True
        return Batch(
            num=torch.from_numpy(self.num[idx]),
            cat=torch.from_numpy(self.cat[idx]),
            mask=torch.from_numpy(mask),
            actions=torch.from_numpy(self.actions[idx]),
            rewards=torch.from_numpy(np.where(valid, self.rewards[idx], 0.0).astype(np.float32)),
            dones=torch.from_numpy(np.where(valid, self.dones[idx], 0.0).astype(np.float32)),
            valid=torch.from_numpy(valid),
        )
