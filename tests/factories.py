"""Synthetic trajectories for store and filter tests (real ones come from integration tests)."""

from __future__ import annotations

import numpy as np

from metamon_sp.features import N_ACTIONS, N_CAT, N_FACTS, N_NUM
from metamon_sp.trajectories import Trajectory


def make_traj(battle_id: str = "battle-gen1ou-1", side: str = "p1", steps: int = 5,
              outcome: int = 1, seed: int = 0, **kw) -> Trajectory:
    rng = np.random.default_rng(seed)
    masks = rng.random((steps, N_ACTIONS)) < 0.5
    masks[:, 0] = True
    fields = dict(
        battle_id=battle_id, side=side, player="random", opponent="random", team="t1",
        opponent_team="t2", outcome=outcome, turns=steps,
        obs_num=rng.standard_normal((steps, N_NUM)).astype(np.float32),
        obs_cat=rng.integers(0, 100, (steps, N_CAT)).astype(np.int16),
        actions=np.zeros(steps, dtype=np.int8),
        masks=masks,
        facts=rng.random((steps + 1, N_FACTS)).astype(np.float32),
    )
    fields.update(kw)
    return Trajectory(**fields)


def make_battle(i: int, p1_outcome: int = 1, **kw) -> list[Trajectory]:
    """Both sides of one synthetic battle."""
    tag = f"battle-gen1ou-{i}"
    return [make_traj(tag, "p1", outcome=p1_outcome, seed=2 * i, **kw),
            make_traj(tag, "p2", outcome=-p1_outcome, seed=2 * i + 1, **kw)]
