"""Reward functions, computed at load time from the per-turn facts stored with each trajectory.

Switching `reward=binary` therefore needs no new battles. Every reward here is one formula with
named weights (HP in fractions of max, summed over the team):

    r_t = hp·(damage dealt + own HP gained) + status·(status inflicted − status received)
          + faint·(opponent faints − own faints)            and at the last step + win | + loss
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metamon_sp.config import RewardConfig
from metamon_sp.features import FACTS

_OWN_HP, _OPP_HP, _OWN_ST, _OPP_ST, _OWN_FNT, _OPP_FNT = (FACTS.index(k) for k in FACTS)


@dataclass(frozen=True)
class ShapedReward:
    hp: float
    status: float
    faint: float
    win: float
    loss: float

    def __call__(self, facts: np.ndarray, outcome: int) -> np.ndarray:
        """Per-step rewards (T,) from facts (T+1, N_FACTS); outcome 1 win, -1 loss, 0 neither."""
        d = np.diff(facts.astype(np.float64), axis=0)  # (T, F): what each decision led to
        damage_dealt = -d[:, _OPP_HP]
        hp_gained = d[:, _OWN_HP]
        inflicted = np.clip(d[:, _OPP_ST], 0, None)
        received = np.clip(d[:, _OWN_ST], 0, None)
        faints = d[:, _OPP_FNT] - d[:, _OWN_FNT]
        r = (self.hp * (damage_dealt + hp_gained) + self.status * (inflicted - received)
             + self.faint * faints)
        if len(r) and outcome:
            r[-1] += self.win if outcome > 0 else self.loss
        return r.astype(np.float32)


REWARDS: dict[str, ShapedReward] = {
    "default_shaped": ShapedReward(hp=1.0, status=0.5, faint=1.0, win=100.0, loss=-100.0),
    "binary": ShapedReward(hp=0.0, status=0.0, faint=0.0, win=100.0, loss=-100.0),
    "aggressive_shaped": ShapedReward(hp=1.0, status=0.0, faint=2.0, win=200.0, loss=0.0),
}


def build_reward(cfg: RewardConfig) -> ShapedReward:
    """The reward the config describes (its weights; the `reward/` presets match REWARDS)."""
    return ShapedReward(hp=cfg.hp, status=cfg.status, faint=cfg.faint, win=cfg.win, loss=cfg.loss)
