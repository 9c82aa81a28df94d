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


def structured_dataset(path, n_traj: int = 12, steps: int = 20, seed: int = 0):
    """A dataset with learnable structure: the behaviour policy takes the legal action with the
    highest score (obs_num[:, :10]); each step's damage dealt is a function of obs_num[:, 10]."""
    from metamon_sp.features import FACTS
    from metamon_sp.trajectories import ShardWriter, write_manifest

    rng = np.random.default_rng(seed)
    trajs = []
    for i in range(n_traj):
        num = rng.standard_normal((steps, N_NUM)).astype(np.float32)
        masks = rng.random((steps, N_ACTIONS)) < 0.6
        masks[np.arange(steps), rng.integers(0, N_ACTIONS, steps)] = True
        scores = np.where(masks, num[:, :N_ACTIONS], -np.inf)
        actions = scores.argmax(1).astype(np.int8)
        facts = np.zeros((steps + 1, N_FACTS), np.float32)
        facts[:, FACTS.index("own_hp")] = 6.0
        damage = 0.05 * (num[:, 10] > 0)
        facts[:, FACTS.index("opp_hp")] = 6.0 - np.concatenate([[0.0], np.cumsum(damage)])
        trajs.append(make_traj(f"battle-gen1ou-{i}", "p1", steps=steps, outcome=1 if i % 2 else -1,
                               obs_num=num, masks=masks, actions=actions, facts=facts,
                               obs_cat=rng.integers(0, 8, (steps, N_CAT)).astype(np.int16)))
    ShardWriter(path, "i00").write(trajs)
    write_manifest(path)
    return path
