from __future__ import annotations

import numpy as np
import pytest

from metamon_sp.config import load_config
from metamon_sp.features import FACTS
from metamon_sp.rewards import REWARDS, ShapedReward, build_reward


def facts(*rows: dict) -> np.ndarray:
    return np.array([[r.get(k, 0.0) for k in FACTS] for r in rows], dtype=np.float32)


# Turn 1: we deal 0.5 damage and lose 0.25 HP. Turn 2: we paralyse the foe, get burned, KO it.
FACTS_3 = facts(
    dict(own_hp=6, opp_hp=6),
    dict(own_hp=5.75, opp_hp=5.5),
    dict(own_hp=5.75, opp_hp=4.5, opp_status=1, own_status=1, opp_fainted=1),
)


def test_default_shaped_follows_the_formula():
    r = REWARDS["default_shaped"](FACTS_3, outcome=1)
    np.testing.assert_allclose(r, [0.5 - 0.25, 1.0 + 0.5 * (1 - 1) + 1.0 + 100], rtol=1e-6)


def test_binary_rewards_only_the_end():
    np.testing.assert_array_equal(REWARDS["binary"](FACTS_3, outcome=-1), [0, -100])
    np.testing.assert_array_equal(REWARDS["binary"](FACTS_3, outcome=0), [0, 0])


def test_aggressive_shaped_doubles_faints_and_ignores_status_and_losses():
    r = REWARDS["aggressive_shaped"](FACTS_3, outcome=-1)
    np.testing.assert_allclose(r, [0.25, 1.0 + 2.0], rtol=1e-6)
    assert REWARDS["aggressive_shaped"](FACTS_3, outcome=1)[-1] == pytest.approx(203.0)


def test_status_counts_only_new_statuses():
    f = facts(dict(opp_status=1), dict(opp_status=0), dict(opp_status=1))
    np.testing.assert_allclose(REWARDS["default_shaped"](f, 0), [0.0, 0.5])


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_config_group_matches_the_registry(name):
    assert build_reward(load_config([f"reward={name}"]).reward) == REWARDS[name]


def test_empty_trajectory_has_no_reward():
    assert ShapedReward(1, 1, 1, 1, -1)(facts(dict()), 1).shape == (0,)
