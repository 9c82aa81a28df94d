"""A checkpoint plays real battles on the local server: masked, batched, 0 invalid orders."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from metamon_sp.checkpoint import CheckpointMeta, save_checkpoint
from metamon_sp.collect import collect
from metamon_sp.config import load_config
from metamon_sp.model import PolicyModel
from metamon_sp.players import PlayerSpecError
from metamon_sp.trajectories import Dataset

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)  # an untrained model samples widely: every action kind gets played
    mc = load_config().model
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "fresh", PolicyModel(mc),
                           CheckpointMeta(model=asdict(mc)))


@pytest.mark.parametrize("p2, batched, epsilon", [("random", True, 0.4), ("self", True, 0.0),
                                                   ("self", False, 0.4)])
def test_checkpoint_plays_with_no_invalid_orders(checkpoint, tmp_path, p2, batched, epsilon):
    cfg = load_config([f"collect.p1=checkpoint:{checkpoint}", f"collect.p2={p2}",
                       "collect.battles=8", "collect.concurrency=4",
                       f"policy.batched={batched}", f"policy.epsilon={epsilon}"])
    summary = collect(cfg, tmp_path / "data", show_progress=False)
    assert summary["battles"] == 8 and summary["invalid_actions"] == 0
    trajs = list(Dataset(tmp_path / "data"))
    assert len(trajs) == 16  # both sides recorded, in self-play too
    assert all(t.masks[i, a] for t in trajs for i, a in enumerate(t.actions))
    assert {t.player for t in trajs if t.side == "p1"} == {f"checkpoint:{checkpoint}"}
    switches = sum(int((t.actions >= 4).sum()) for t in trajs)
    assert switches > 0  # the policy really chooses among moves and switches
    # exploratory decisions are recorded as such, one flag per decision, by the policy's side only
    learner = [t for t in trajs if t.player.startswith("checkpoint:")]
    assert all(t.explored.shape == t.actions.shape for t in trajs)
    assert not any(t.explored.any() for t in trajs if t not in learner)
    share = sum(int(t.explored.sum()) for t in learner) / sum(t.steps for t in learner)
    assert (share == 0) if epsilon == 0 else (0.2 < share < 0.6)


def test_a_missing_checkpoint_is_refused_before_any_battle(tmp_path):
    cfg = load_config([f"collect.p1=checkpoint:{tmp_path / 'nope'}", "collect.battles=2"])
    with pytest.raises(PlayerSpecError, match="collect.p1.*not a metamon-sp checkpoint"):
        collect(cfg, tmp_path / "data", show_progress=False)
    assert not (tmp_path / "data").exists()
