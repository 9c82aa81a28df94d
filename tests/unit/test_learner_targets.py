"""What the learner learns from, checked by hand: which decisions windows cover, TD targets,
the advantage filter, the target network, input normalisation, truncated battles, refused
choices. Each test fails on the version it guards against."""

from __future__ import annotations

import asyncio
from dataclasses import asdict

import numpy as np
import pytest
import torch

from metamon_sp.checkpoint import load_checkpoint
from metamon_sp.config import ModelConfig, PolicyConfig, load_config
from metamon_sp.features import FACTS, N_ACTIONS, N_CAT, N_NUM, Observation
from metamon_sp.model import PolicyModel
from metamon_sp.players import RecordingMixin
from metamon_sp.policy import Policy
from metamon_sp.rewards import REWARDS, ShapedReward
from metamon_sp.train import (advantage_weights, compute_losses, policy_log_probs, search_target,
                              td_targets, train)
from metamon_sp.train_data import Batch, OfflineData
from metamon_sp.trajectories import ShardWriter, write_manifest
from tests.factories import make_traj

FAST = ["model.context=8", "train.batch_size=16", "train.warmup_steps=5", "train.progress=false"]


def _dataset(path, trajs):
    ShardWriter(path, "i00").write(trajs)
    write_manifest(path)
    return path


def _coverage(data: OfflineData, context: int, draws: int = 4000) -> np.ndarray:
    """How often each decision (flat index) is inside a sampled window."""
    counts = np.zeros(data.n_steps)
    rng = np.random.default_rng(0)
    for _ in range(draws // 100):
        b = data.sample(100, context, rng)
        # recover flat indices: every window's valid decisions are consecutive; match by value
        for row_num, row_valid in zip(b.num.numpy(), b.valid.numpy()):
            for x in row_num[row_valid]:
                counts[int(x[0])] += 1
    return counts


def test_every_decision_is_equally_likely_to_be_trained_on(tmp_path):
    # trajectories of very different lengths; obs_num[:, 0] is the decision's flat index
    lengths, trajs, flat = [3, 10, 40], [], 0
    for i, n in enumerate(lengths):
        num = np.zeros((n, N_NUM), np.float32)
        num[:, 0] = np.arange(flat, flat + n)
        flat += n
        trajs.append(make_traj(f"battle-gen1ou-{i}", steps=n, obs_num=num))
    data = OfflineData([_dataset(tmp_path / "d", trajs)], REWARDS["binary"], 0.01)
    counts = _coverage(data, context=8, draws=20000)
    ratio = counts / counts.mean()
    last = np.cumsum(lengths) - 1  # each battle's final (win/loss) decision
    assert ratio.min() > 0.85 and ratio.max() < 1.15, ratio.round(2)
    assert np.all(ratio[last] > 0.85)  # the old sampler covered these ~1/(n-L+1) as often


def test_windows_that_start_at_the_battle_start_put_its_first_turn_first(tmp_path):
    num = np.zeros((20, N_NUM), np.float32)
    num[:, 0] = np.arange(20)
    data = OfflineData([_dataset(tmp_path / "d", [make_traj(steps=20, obs_num=num)])],
                       REWARDS["binary"], 0.01)
    b = data.sample(500, 8, np.random.default_rng(1))
    firsts = b.num[:, 0, 0].numpy()
    counts = b.valid.sum(1).numpy()
    # a window holding turn 0 starts with it (as in live play), shorter windows are right-padded
    assert np.all(counts[firsts == 0] >= 1)
    assert set(np.unique(counts)) <= set(range(1, 9))
    for row, valid in zip(b.num[:, :, 0].numpy(), b.valid.numpy()):
        assert np.all(np.diff(row[valid]) == 1)  # consecutive decisions, no gaps


def _batch(rewards, dones, valid, cut=None, mask=None) -> Batch:
    B, L = len(rewards), len(rewards[0])
    return Batch(num=torch.zeros(B, L, N_NUM), cat=torch.zeros(B, L, N_CAT, dtype=torch.long),
                 mask=torch.ones(B, L, N_ACTIONS, dtype=torch.bool) if mask is None else mask,
                 actions=torch.zeros(B, L, dtype=torch.long),
                 rewards=torch.tensor(rewards, dtype=torch.float32),
                 dones=torch.tensor(dones, dtype=torch.float32),
                 valid=torch.tensor(valid, dtype=torch.bool),
                 cut=torch.zeros(B, L, dtype=torch.bool) if cut is None else torch.tensor(cut),
                 explored=torch.zeros(B, L, dtype=torch.bool))


def test_td_targets_by_hand():
    # one window of 4 decisions, the battle ends at the third; the fourth is padding
    mask = torch.ones(1, 4, N_ACTIONS, dtype=torch.bool)
    mask[0, 1, 2:] = False  # at t=1 only actions 0 and 1 are legal
    batch = _batch([[0.1, 0.2, 1.0, 0.0]], [[0, 0, 1, 0]], [[1, 1, 1, 0]], mask=mask)
    q_next = torch.zeros(1, 3, 1, N_ACTIONS)  # Q̄ at t+1 = 1, 2, 3 (positions 1..3)
    q_next[0, 0, 0, :2] = torch.tensor([2.0, 4.0])
    q_next[0, 0, 0, 2:] = 100.0  # illegal at t=1: must not count even if π put mass there
    q_next[0, 1, 0, :] = torch.arange(N_ACTIONS, dtype=torch.float32)
    q_next[0, 2, 0, :] = 7.0
    pi_next = torch.zeros(1, 3, N_ACTIONS)
    pi_next[0, 0, :2] = torch.tensor([0.25, 0.75])
    pi_next[0, 1, 3] = 1.0
    pi_next[0, 2, 0] = 1.0
    gamma = 0.9
    y, m = td_targets(q_next, pi_next, batch, torch.tensor([gamma]))
    expected = [0.1 + gamma * (0.25 * 2.0 + 0.75 * 4.0),  # r_0 + γ E_π Q̄(s_1, ·) over legal a
                0.2 + gamma * 3.0,                          # r_1 + γ Q̄(s_2, a=3)
                1.0]                                        # terminal: r_2 only
    torch.testing.assert_close(y[0, :3, 0], torch.tensor(expected))
    assert m.tolist() == [[True, True, True, False]]


def test_lambda_returns_by_hand_and_cut_at_exploratory_actions():
    # five decisions of one battle in the window, which ends at the fifth (done); Q̄ at t+1 is
    # V_1..V_4 = 1, 2, 3, 4 under a policy sure of action 0
    rewards, gamma, lam = [0.1, 0.2, 0.3, 0.4, 1.0], 0.9, 0.5
    q_next = torch.zeros(1, 4, 1, N_ACTIONS)
    q_next[0, :, 0, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    pi_next = torch.zeros(1, 4, N_ACTIONS)
    pi_next[..., 0] = 1.0
    batch = _batch([rewards], [[0, 0, 0, 0, 1]], [[1] * 5])
    y, m = td_targets(q_next, pi_next, batch, torch.tensor([gamma]), lam)
    expected = [0.0] * 5
    expected[4] = 1.0
    V = [None, 1.0, 2.0, 3.0, 4.0]
    for t in range(3, -1, -1):  # y_t = r_t + γ((1 − λ) V_{t+1} + λ y_{t+1})
        expected[t] = rewards[t] + gamma * ((1 - lam) * V[t + 1] + lam * expected[t + 1])
    torch.testing.assert_close(y[0, :, 0], torch.tensor(expected))
    assert m.all()
    # λ = 0 is the one-step target
    y0, _ = td_targets(q_next, pi_next, batch, torch.tensor([gamma]))
    one_step = torch.tensor(rewards[:4]) + gamma * torch.tensor(V[1:])
    torch.testing.assert_close(y0[0, :4, 0], one_step)
    # an exploratory action at t = 2 stops the trace: y_1 bootstraps off V_2 alone
    batch.explored[0, 2] = True
    ye, _ = td_targets(q_next, pi_next, batch, torch.tensor([gamma]), lam)
    assert ye[0, 1, 0].item() == pytest.approx(rewards[1] + gamma * V[2])
    assert ye[0, 0, 0].item() == pytest.approx(rewards[0] + gamma * ((1 - lam) * V[1]
                                                                     + lam * ye[0, 1, 0].item()))
    torch.testing.assert_close(ye[0, 2:, 0], y[0, 2:, 0])  # from t = 2 on, as before


def test_lambda_returns_stop_where_the_next_decision_has_no_target():
    # the window ends mid-battle: the last decision has no target, the one before bootstraps
    batch = _batch([[0.5, 0.5, 0.5]], [[0, 0, 0]], [[1, 1, 1]])
    q_next = torch.ones(1, 2, 1, N_ACTIONS)
    pi_next = torch.full((1, 2, N_ACTIONS), 1.0 / N_ACTIONS)
    y, m = td_targets(q_next, pi_next, batch, torch.tensor([0.9]), 0.7)
    assert m.tolist() == [[True, True, False]]
    assert y[0, 1, 0].item() == pytest.approx(0.5 + 0.9 * 1.0)
    assert y[0, 0, 0].item() == pytest.approx(0.5 + 0.9 * (0.3 * 1.0 + 0.7 * y[0, 1, 0].item()))


def test_a_window_cut_before_the_battle_ends_has_no_target_for_its_last_turn():
    batch = _batch([[0.0, 0.0, 0.0]], [[0, 0, 0]], [[1, 1, 1]])
    _, m = td_targets(torch.zeros(1, 2, 1, N_ACTIONS), torch.full((1, 2, N_ACTIONS), 0.1), batch,
                      torch.tensor([0.99]))
    assert m.tolist() == [[True, True, False]]  # the next turn is outside the window


def test_rewards_belong_to_the_decision_that_led_to_them(tmp_path):
    facts = np.zeros((4, len(FACTS)), np.float32)  # 3 decisions: facts before each + the end
    facts[:, FACTS.index("opp_hp")] = [6.0, 5.5, 5.5, 4.0]
    t = make_traj(steps=3, facts=facts, outcome=1)
    data = OfflineData([_dataset(tmp_path / "d", [t])], ShapedReward(1, 0, 0, 10, -10), 1.0)
    np.testing.assert_allclose(data.rewards, [0.5, 0.0, 1.5 + 10])
    assert data.dones.tolist() == [0, 0, 1]


def test_a_truncated_battle_is_not_terminal(tmp_path):
    facts = np.zeros((4, len(FACTS)), np.float32)
    t = make_traj(steps=3, facts=facts, outcome=-1, truncated=True)  # forfeited by the timeout
    data = OfflineData([_dataset(tmp_path / "d", [t])], REWARDS["binary"], 0.01)
    assert data.dones.tolist() == [0, 0, 0] and data.cuts.tolist() == [False, False, True]
    np.testing.assert_allclose(data.rewards, 0.0)  # the forfeit's "loss" is not a result of play
    b = data.sample(64, 4, np.random.default_rng(0))
    y, m = td_targets(torch.zeros(64, 3, 1, N_ACTIONS), torch.zeros(64, 3, N_ACTIONS), b,
                      torch.tensor([0.99]))
    assert not (m & b.cut).any()  # the cut decision never gets a (made-up) terminal target
    assert m.any()  # the decisions before it bootstrap as usual


class _ConstantQ(torch.nn.Module):
    """Critics whose Q is 0 for action 0 and 1 for every other action, in every state."""

    def __init__(self, C: int, G: int):
        super().__init__()
        self.C, self.G = C, G

    def forward(self, enc) -> torch.Tensor:
        q = torch.ones(*enc.h.shape[:-1], self.C, self.G, N_ACTIONS)
        q[..., 0] = 0.0
        return q


def test_binary_filter_drops_decisions_with_negative_advantage():
    tc = load_config(["train.actor_filter=binary"]).train
    assert advantage_weights(torch.tensor([-1.0, 0.0, 0.3]), tc).tolist() == [0.0, 0.0, 1.0]
    cfg = load_config(FAST)
    torch.manual_seed(0)
    model = PolicyModel(cfg.model)
    model.critics = _ConstantQ(cfg.model.n_critics, len(cfg.model.gammas))  # action 0 worst: A < 0
    batch = _batch([[0.0] * 4] * 2, [[0, 0, 0, 1]] * 2, [[1] * 4] * 2)
    out = compute_losses(model, None, batch, cfg.train, torch.tensor(cfg.model.gammas), 0.0, 0.0)
    assert out.terms["bc"].item() == 0.0  # nothing to clone
    none = compute_losses(model, None, batch, load_config(FAST + ["train.actor_filter=none"]).train,
                          torch.tensor(cfg.model.gammas), 0.0, 0.0)
    assert none.terms["bc"].item() > 0.0


def test_an_explored_action_is_cloned_only_above_the_margin(tmp_path):
    adv = torch.tensor([-0.1, 0.02, 0.02, 0.08])
    explored = torch.tensor([False, False, True, True])
    for f, expected in (("binary", [0.0, 1.0, 0.0, 1.0]), ("none", [1.0, 1.0, 0.0, 1.0])):
        tc = load_config([f"train.actor_filter={f}", "train.explored_margin=0.05"]).train
        assert advantage_weights(adv, tc, explored).tolist() == expected
        off = load_config([f"train.actor_filter={f}"]).train  # margin 0: explored like the rest
        assert advantage_weights(adv, off, explored).tolist() == advantage_weights(adv, off).tolist()
    tc = load_config(["train.actor_filter=exp", "train.exp_beta=0.1", "train.explored_margin=0.05"]).train
    w = advantage_weights(adv, tc, explored)
    assert w[2] < w[1] and torch.isclose(w[3], torch.exp(torch.tensor(0.3)))
    # the flag travels from the stored trajectory to the batch
    t = make_traj(steps=6, explored=np.array([0, 1, 0, 0, 1, 0], bool))
    data = OfflineData([_dataset(tmp_path / "d", [t])], REWARDS["binary"], 0.01)
    b = data.sample(32, 3, np.random.default_rng(0))
    assert data.explored.tolist() == [False, True, False, False, True, False]
    assert b.explored.sum() > 0 and not (b.explored & ~b.valid).any()
    with pytest.raises(Exception, match="train.explored_margin"):
        load_config(["train.explored_margin=-1"])


def test_the_searchs_choices_are_cloned_whatever_the_advantage(tmp_path):
    """A decision the simulator's search made (`collect.search_rate`) is an expert label: the
    actor clones it at `train.search_weight` even where the critic calls it worse than π."""
    cfg = load_config(FAST)
    torch.manual_seed(0)
    model = PolicyModel(cfg.model)
    model.critics = _ConstantQ(cfg.model.n_critics, len(cfg.model.gammas))  # action 0: A < 0
    batch = _batch([[0.0] * 4] * 2, [[0, 0, 0, 1]] * 2, [[1] * 4] * 2)
    gammas = torch.tensor(cfg.model.gammas)
    assert compute_losses(model, None, batch, cfg.train, gammas, 0.0, 0.0).terms["bc"].item() == 0
    batch.searched = torch.zeros(2, 4, dtype=torch.bool)
    batch.searched[0, 1] = True
    out = compute_losses(model, None, batch, cfg.train, gammas, 0.0, 0.0)
    assert out.terms["bc"].item() > 0 and out.metrics["train/searched_frac"] == 1 / 8
    double = compute_losses(model, None, batch, load_config(FAST + ["train.search_weight=2"]).train,
                            gammas, 0.0, 0.0)
    assert torch.isclose(double.terms["bc"], 2 * out.terms["bc"])
    off = compute_losses(model, None, batch, load_config(FAST + ["train.search_weight=0"]).train,
                         gammas, 0.0, 0.0)
    assert off.terms["bc"].item() == 0
    # the flag travels from the stored trajectory to the batch
    t = make_traj(steps=6, searched=np.array([1, 0, 0, 1, 0, 0], bool))
    data = OfflineData([_dataset(tmp_path / "d", [t])], REWARDS["binary"], 0.01)
    b = data.sample(32, 3, np.random.default_rng(0))
    assert data.searched.tolist() == [True, False, False, True, False, False]
    assert b.searched.sum() > 0 and not (b.searched & ~b.valid).any()
    with pytest.raises(Exception, match="train.search_weight"):
        load_config(["train.search_weight=-1"])


def test_the_search_target_tilts_the_prior_by_the_values_it_tells_apart():
    """π_T ∝ prior·exp(β·(v − max v)) over the legal actions: equal values leave the prior as
    it is; an action the search did not value counts the prior-weighted mean of those it did."""
    logits = torch.tensor([[1.0, 0.0, -1.0, 2.0]])
    mask = torch.tensor([[True, True, True, False]])
    _, logp0 = policy_log_probs(logits, mask)
    pi = logp0.exp() * mask
    nan = float("nan")
    same, rows = search_target(pi, mask, torch.tensor([[0.5, 0.5, 0.5, nan]]), beta=30.0)
    assert rows.tolist() == [True] and torch.allclose(same, pi, atol=1e-6)
    values = torch.tensor([[0.5, 0.6, nan, nan]])
    target, _ = search_target(pi, mask, values, beta=30.0)
    mean = (pi[0, 0] * 0.5 + pi[0, 1] * 0.6) / (pi[0, 0] + pi[0, 1])  # action 2's completed value
    by_hand = pi[0, :3] * torch.exp(30.0 * torch.stack([torch.tensor(0.5), torch.tensor(0.6),
                                                        mean]))
    assert torch.allclose(target[0, :3], by_hand / by_hand.sum(), atol=1e-6)
    assert target[0, 3] == 0 and target[0, 1] > pi[0, 1]
    none, rows = search_target(pi, mask, torch.full((1, 4), nan), beta=30.0)
    assert rows.tolist() == [False]


def test_the_search_values_teach_only_where_they_were_measured(tmp_path):
    cfg = load_config(FAST + ["train.search_beta=30"])
    torch.manual_seed(0)
    model = PolicyModel(cfg.model)
    batch = _batch([[0.0] * 4] * 2, [[0, 0, 0, 1]] * 2, [[1] * 4] * 2)
    gammas = torch.tensor(cfg.model.gammas)
    base = compute_losses(model, None, batch, cfg.train, gammas, 0.0, 0.0)
    assert "train/search_kl" not in base.metrics  # data without values: no term
    batch.search_values = torch.full((2, 4, N_ACTIONS), float("nan"))
    batch.search_values[0, 1, :3] = torch.tensor([0.4, 0.5, 0.9])
    batch.search_prior = torch.full((2, 4, N_ACTIONS), 1.0 / N_ACTIONS)
    out = compute_losses(model, None, batch, cfg.train, gammas, 0.0, 0.0)
    assert out.metrics["train/valued_frac"] == 1 / 8 and out.metrics["train/search_kl"] > 0.01
    # its gradient on the logits is π − π_T: it raises the best-valued action
    logits = torch.zeros(1, N_ACTIONS, requires_grad=True)
    _, logp0 = policy_log_probs(logits, torch.ones(1, N_ACTIONS, dtype=torch.bool))
    target, _ = search_target(batch.search_prior[0, 1][None],
                              torch.ones(1, N_ACTIONS, dtype=torch.bool),
                              batch.search_values[0, 1][None], 30.0)
    (grad,) = torch.autograd.grad(-(target * logp0).sum(), [logits])
    assert torch.allclose(grad, logp0.exp() - target, atol=1e-6) and grad[0].argmin() == 2
    off = compute_losses(model, None, batch, load_config(FAST).train, gammas, 0.0, 0.0)
    assert "train/search_kl" not in off.metrics
    assert out.terms["bc"].item() > base.terms["bc"].item()
    # the values travel from the stored trajectory to the batch, NaN where none
    t = make_traj(steps=6)
    t.search_values[2, :2] = [0.25, 0.75]
    t.search_prior[2, :2] = [0.5, 0.5]
    data = OfflineData([_dataset(tmp_path / "d", [t])], REWARDS["binary"], 0.01)
    b = data.sample(64, 3, np.random.default_rng(0))
    assert b.search_values is not None and b.search_values.shape == (64, 3, N_ACTIONS)
    known = ~torch.isnan(b.search_values)
    assert known.any() and not (known.any(-1) & ~b.valid).any()
    assert set(b.search_values[known].tolist()) == {0.25, 0.75}
    assert set(b.search_prior[known].tolist()) == {0.5}
    plain = OfflineData([_dataset(tmp_path / "e", [make_traj(steps=6)])], REWARDS["binary"], 0.01)
    assert plain.sample(4, 3, np.random.default_rng(0)).search_values is None
    assert plain.search_values.nbytes == plain.search_prior.nbytes == 0  # none held unsearched
    with pytest.raises(Exception, match="train.search_beta"):
        load_config(["train.search_beta=-1"])


def test_the_policys_own_decisions_are_cloned_only_above_their_margin():
    adv = torch.tensor([-0.1, 0.002, 0.02, 0.02, 0.08])
    explored = torch.tensor([False, False, False, True, True])
    tc = load_config(["train.explored_margin=0.05", "train.adv_margin=0.005"]).train
    assert advantage_weights(adv, tc, explored).tolist() == [0.0, 0.0, 1.0, 0.0, 1.0]
    # without the exploratory margin, every decision clears the same one
    tc = load_config(["train.explored_margin=0", "train.adv_margin=0.005"]).train
    assert advantage_weights(adv, tc, explored).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert advantage_weights(adv, tc).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    with pytest.raises(Exception, match="train.adv_margin"):
        load_config(["train.adv_margin=-1"])


def test_targets_read_a_target_trunk_that_follows_the_online_one_slowly():
    torch.manual_seed(0)
    m = PolicyModel(ModelConfig(context=4))
    num, cat = torch.randn(2, 4, N_NUM), torch.zeros(2, 4, N_CAT, dtype=torch.long)
    before = m.target_q(num, cat)
    with torch.no_grad():
        for p in m.body.parameters():
            p.add_(0.5)
    torch.testing.assert_close(m.target_q(num, cat), before)  # the online trunk moved, not Q̄
    m.update_targets(0.1)
    for p, tp in zip(m.body.parameters(), m.target_body.parameters()):
        assert not tp.requires_grad
    assert not torch.allclose(m.target_q(num, cat), before)


def test_numeric_inputs_are_normalised_per_feature_from_generation_zero_data(tmp_path):
    rng = np.random.default_rng(0)
    trajs = []
    for i in range(4):
        num = rng.standard_normal((10, N_NUM)).astype(np.float32)
        num[:, 0] = 300 + 50 * num[:, 0]  # a stat in hundreds beside fractions
        trajs.append(make_traj(f"battle-gen1ou-{i}", steps=10, obs_num=num, seed=i,
                               obs_cat=np.zeros((10, N_CAT), np.int16)))
    data = _dataset(tmp_path / "d", trajs)
    cfg = load_config(FAST + ["train.steps=2"])
    gen0 = train(cfg, [data], tmp_path / "gen0")
    model, _ = load_checkpoint(gen0)
    mean, std = model.body.encoder.num_mean, model.body.encoder.num_std
    assert abs(mean[0].item() - 300) < 30 and abs(std[0].item() - 50) < 15
    x = torch.from_numpy(np.stack([t.obs_num for t in trajs]))
    normed = (x - mean) / std
    assert normed[..., 0].abs().mean() < 2  # the stat no longer dwarfs the rest
    # a fine-tune keeps its parent's scales (the inputs mean the same to every generation)
    shifted = [make_traj(f"battle-gen1ou-{i}", steps=10, seed=i,
                         obs_num=np.full((10, N_NUM), 1000.0, np.float32),
                         obs_cat=np.zeros((10, N_CAT), np.int16)) for i in range(2)]
    gen1 = train(cfg, [_dataset(tmp_path / "d1", shifted)], tmp_path / "gen1", init=gen0)
    torch.testing.assert_close(load_checkpoint(gen1)[0].body.encoder.num_mean, mean)


class _Base:
    _battles: dict = {}  # a poke-env Player's battles by tag (none here)

    async def _handle_battle_message(self, split_messages):
        pass


class _Recorder(RecordingMixin, _Base):
    def __init__(self):
        super().__init__(policy_id="x")
        self.forgotten: list[str] = []

    def _forget_last_turn(self, battle_tag):
        self.forgotten.append(battle_tag)


def test_a_refused_choice_is_forgotten_by_the_record_and_the_live_history():
    rec = _Recorder()
    tag = "battle-gen1ou-7"
    asyncio.run(rec._handle_battle_message(
        [[f">{tag}"], ["", "error", "[Unavailable choice] Can't switch: trapped"]]))
    assert rec.forgotten == [tag]
    policy = Policy(PolicyModel(ModelConfig(context=4)), PolicyConfig(), seed=0)
    obs = Observation(np.zeros(N_NUM, np.float32), np.zeros(N_CAT, np.int16),
                      np.ones(N_ACTIONS, bool), np.zeros(len(FACTS), np.float32))
    for rqid in (1, 2):
        policy.observe(("p", tag), obs, rqid)
    policy.drop_last(("p", tag))  # the refused turn 2 …
    policy.observe(("p", tag), obs, 3)  # … is asked again with a new request
    assert len(policy._histories[("p", tag)].num) == 2  # as in the stored trajectory


def test_training_after_play_gets_back_the_threads_play_took(tmp_path, monkeypatch):
    from metamon_sp import policy as policy_mod
    from metamon_sp.checkpoint import CheckpointMeta, save_checkpoint

    monkeypatch.setattr(policy_mod, "_THREADS_BEFORE", None)
    before = torch.get_num_threads()
    cfg = ModelConfig(context=4)
    save_checkpoint(tmp_path / "ck", PolicyModel(cfg), CheckpointMeta(model=asdict(cfg)))
    try:
        torch.set_num_threads(2)  # e.g. what a parallel sweep's job was given
        Policy.from_checkpoint(tmp_path / "ck", PolicyConfig(threads=1))
        assert torch.get_num_threads() == 1
        assert policy_mod.threads_before_play() == 2  # what training will use again
    finally:
        torch.set_num_threads(before)


def test_training_data_is_held_compactly_and_batches_are_what_was_recorded(tmp_path):
    trajs = [make_traj(f"battle-gen1ou-{i}", steps=4 + i, seed=i) for i in range(5)]
    for t in trajs:  # observations as the featurizer makes them: within ±2
        t.obs_num = np.tanh(t.obs_num) * 1.5
    data = OfflineData([_dataset(tmp_path / "d", trajs)], REWARDS["binary"], 0.01)
    assert data.num.dtype == np.float16 and data.cat.dtype == np.int16
    assert data.nbytes() / data.n_steps < 700  # bytes per decision (float32 + int64: ~1.7 KB)
    flat_num = np.concatenate([t.obs_num for t in trajs])
    np.testing.assert_allclose(data.num.astype(np.float32), flat_num, atol=1e-3)
    np.testing.assert_array_equal(data.cat, np.concatenate([t.obs_cat for t in trajs]))
    b = data.sample(16, 3, np.random.default_rng(0))
    assert b.num.dtype == torch.float32 and b.cat.dtype == torch.int64
    assert b.actions.dtype == torch.int64
    mean, std = data.num_stats()
    np.testing.assert_allclose(mean, flat_num.mean(0), atol=1e-3)
    np.testing.assert_allclose(std, np.maximum(flat_num.std(0), 0.1), atol=1e-3)


def test_the_order_battles_were_written_in_does_not_change_what_is_sampled(tmp_path):
    # Collection writes battles in the order they finish, which varies between runs of one seed
    # (and so does which shard holds which battle): the same battles must train the same way.
    trajs = [make_traj(f"battle-gen1ou-{i}", steps=3 + i % 7, seed=i) for i in range(12)]
    a = tmp_path / "a"
    ShardWriter(a, "i00").write(trajs[:5])
    ShardWriter(a, "i01").write(trajs[5:])
    write_manifest(a)
    b = tmp_path / "b"
    ShardWriter(b, "i00").write(trajs[::-1][:8])
    ShardWriter(b, "i01").write(trajs[::-1][8:])
    write_manifest(b)
    da, db = (OfflineData([d], REWARDS["default_shaped"], 0.01) for d in (a, b))
    ba, bb = (d.sample(32, 8, np.random.default_rng(3)) for d in (da, db))
    for name in ("num", "cat", "mask", "actions", "rewards", "dones", "valid"):
        assert torch.equal(getattr(ba, name), getattr(bb, name)), name
