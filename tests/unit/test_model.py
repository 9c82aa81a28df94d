from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from metamon_sp.config import PolicyConfig, load_config
from metamon_sp.features import FEATURE_SPEC, N_ACTIONS, N_CAT, N_NUM, Observation
from metamon_sp.model import PolicyModel, masked_logits
from metamon_sp.policy import Policy
from metamon_sp.train import policy_log_probs, valid_positions


def tiny(**overrides) -> PolicyModel:
    torch.manual_seed(0)
    return PolicyModel(load_config(["model=tiny"] + [f"model.{k}={v}" for k, v in overrides.items()]).model)


def inputs(B=3, T=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, N_NUM, generator=g), torch.randint(0, 8, (B, T, N_CAT), generator=g)


def test_shapes():
    m = tiny()
    logits, q = m(*inputs())
    assert logits.shape == (3, 5, N_ACTIONS)
    assert q.shape == (3, 5, m.cfg.n_critics, len(m.cfg.gammas), N_ACTIONS)


def test_model_sizes_span_tiny_to_about_200m():
    sizes = {name: PolicyModel(load_config([f"model={name}"]).model).n_params()
             for name in ("tiny", "small", "medium")}
    assert sizes["tiny"] < sizes["small"] < sizes["medium"]
    large = load_config(["model=large"]).model  # counted without allocating it
    d, L = large.d_model, large.n_layers
    assert 150e6 < L * 12 * d * d < 250e6


def test_the_transformer_is_causal():
    m = tiny().eval()
    num, cat = inputs(B=1, T=6)
    num2 = num.clone()
    num2[:, 4:] += torch.randn_like(num2[:, 4:])  # change only the future
    a, _ = m(num, cat)
    b, _ = m(num2, cat)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_training_runs_the_networks_on_the_decisions_alone_with_the_same_outputs():
    """`trunk_at` / `target_q_at` (the training step's path: a window's padding, which comes
    after its decisions, skipped) give what the whole grid gives at the decisions, whatever the
    padding holds, online and target networks alike."""
    m = tiny()
    B, T = 4, 7
    num, cat = inputs(B=B, T=T)
    count = torch.tensor([7, 3, 1, 5])
    valid = torch.arange(T)[None, :] < count[:, None]
    index = valid.flatten().nonzero().squeeze(1)
    logits, q = m(num, cat)
    h = m.trunk_at(num, cat, index)
    torch.testing.assert_close(m.actor(h), logits[valid], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(m.critics(h), q[valid], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(m.target_q_at(num, cat, index), m.target_q(num, cat)[valid],
                               atol=1e-5, rtol=1e-5)
    noise_num, noise_cat = inputs(B=B, T=T, seed=1)
    padded_num = torch.where(valid[..., None], num, noise_num)
    padded_cat = torch.where(valid[..., None], cat, noise_cat)
    torch.testing.assert_close(m.actor(m.trunk_at(padded_num, padded_cat, index)), m.actor(h))
    assert torch.equal(valid_positions(valid), index)
    with pytest.raises(ValueError, match="decisions first"):  # padding before a decision
        valid_positions(valid.flip(1))


def test_illegal_actions_get_exactly_zero_probability_and_gradient():
    logits = torch.randn(4, 7, N_ACTIONS, requires_grad=True)
    mask = torch.rand(4, 7, N_ACTIONS) < 0.5
    mask[..., 0] = True
    logp, logp0 = policy_log_probs(logits, mask)
    probs = logp.exp()
    assert (probs[~mask] == 0).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(4, 7))
    (logp0 * mask).sum().backward()
    assert (logits.grad[~mask] == 0).all()
    # a padding row (no legal action) stays finite
    assert torch.isfinite(masked_logits(torch.randn(2, N_ACTIONS), torch.zeros(2, N_ACTIONS, dtype=bool))).all()


@pytest.mark.parametrize("greedy,epsilon", [(False, 0.0), (True, 0.0), (True, 0.5)])
def test_policy_never_samples_an_illegal_action(greedy, epsilon):
    policy = Policy(tiny(), PolicyConfig(greedy=greedy, temperature=5.0, epsilon=epsilon), seed=1)
    rng = np.random.default_rng(0)
    for step in range(200):
        mask = rng.random(N_ACTIONS) < 0.3
        mask[rng.integers(N_ACTIONS)] = True
        obs = Observation(rng.standard_normal(N_NUM).astype(np.float32),
                          rng.integers(0, 8, N_CAT).astype(np.int16), mask, np.zeros(6, np.float32))
        policy.observe(("p", "b"), obs, rqid=step)
        (a,) = policy.act([("p", "b")], mask[None])
        assert mask[a]
    assert len(policy._histories[("p", "b")].num) == policy.context  # history is bounded


def test_epsilon_explores_uniformly_among_legal_actions():
    """Greedy play always picks one action; with ε = 0.5 half the decisions are uniform over the
    legal ones (so the greedy action has ≈ 0.5 + 0.5/3 of them) and illegal ones stay at 0."""
    mask = np.array([True, False, True, False, True] + [False] * 5)
    obs = Observation(np.zeros(N_NUM, np.float32), np.zeros(N_CAT, np.int16), mask, np.zeros(6, np.float32))
    counts = {}
    for eps in (0.0, 0.5):
        policy = Policy(tiny(), PolicyConfig(greedy=True, epsilon=eps), seed=3)
        keys = [("p", str(i)) for i in range(3000)]
        for k in keys:
            policy.observe(k, obs, rqid=0)
        counts[eps] = np.bincount(policy.act(keys, np.repeat(mask[None], len(keys), 0)), minlength=N_ACTIONS)
        if eps:  # the exploratory decisions are flagged (the learner treats them apart)
            actions, explored = policy.choose(keys, np.repeat(mask[None], len(keys), 0))
            assert abs(explored.mean() - eps) < 0.04
            assert len(set(actions[~explored].tolist())) == 1  # the rest are the greedy choice
    greedy = int(counts[0.0].argmax())
    assert counts[0.0][greedy] == 3000 and mask[greedy]
    assert (counts[0.5][~mask] == 0).all() and (counts[0.5][mask] > 0).all()
    assert abs(counts[0.5][greedy] / 3000 - (0.5 + 0.5 / 3)) < 0.04
    with pytest.raises(Exception, match="policy.epsilon"):
        PolicyConfig(epsilon=1.5)


def test_polyak_update_moves_targets_towards_the_critics():
    m = tiny()
    with torch.no_grad():
        for p in m.critics.parameters():
            p.add_(1.0)
    before = [t.clone() for t in m.target_critics.parameters()]
    m.update_targets(0.25)
    for b, t, p in zip(before, m.target_critics.parameters(), m.critics.parameters()):
        torch.testing.assert_close(t, b + 0.25 * (p - b))
    assert not any(t.requires_grad for t in m.target_critics.parameters())


def test_a_retried_request_replaces_the_last_turn():
    policy = Policy(tiny(), PolicyConfig(), seed=0)
    obs = Observation(np.zeros(N_NUM, np.float32), np.zeros(N_CAT, np.int16),
                      np.ones(N_ACTIONS, bool), np.zeros(6, np.float32))
    for rqid in (1, 2, 2, 3):
        policy.observe(("p", "b"), obs, rqid)
    assert len(policy._histories[("p", "b")].num) == 3
    policy.forget(("p", "b"))
    assert ("p", "b") not in policy._histories
    assert copy.copy(policy.context) == policy.model.cfg.context


def test_actions_are_scored_with_shared_weights_per_slot_kind():
    """Two move slots (or two switch slots) holding the same features get the same embedding and
    the same score: a move is judged by what it is, not by which slot it is in."""
    m = tiny().eval()
    num, cat = inputs(B=1, T=3)
    for x, names in ((num, FEATURE_SPEC.num), (cat, FEATURE_SPEC.cat)):
        for a, b in (("move0_", "move2_"), ("own1_", "own4_")):
            for j, name in enumerate(names):
                if name.startswith(b):
                    x[..., j] = x[..., names.index(a + name[len(b):])]
    with torch.no_grad():
        enc = m.trunk(num, cat)
        logits, q = m(num, cat)
    torch.testing.assert_close(enc.actions[..., 0, :], enc.actions[..., 2, :])
    torch.testing.assert_close(logits[..., 4 + 1], logits[..., 4 + 4])
    torch.testing.assert_close(q[..., 0], q[..., 2])
    assert not torch.allclose(logits[..., 0], logits[..., 1])


def test_checkpoints_with_one_table_per_vocabulary_still_load():
    """Weights written before the single embedding table (`tables.emb_<vocab>.weight`) load into
    it row for row, and the model computes the same outputs."""
    m = tiny().eval()
    state = m.state_dict()
    for net in ("body", "target_body"):
        table = state.pop(f"{net}.encoder.emb")
        sizes = [FEATURE_SPEC.vocab_sizes[v] for v in m.body.encoder.vocabs]
        for v, rows in zip(m.body.encoder.vocabs, table.split(sizes)):
            state[f"{net}.encoder.tables.emb_{v}.weight"] = rows
    torch.manual_seed(1)
    loaded = PolicyModel(m.cfg).eval()
    loaded.load_state_dict(state)  # strict: nothing missing, nothing left over
    num, cat = inputs()
    with torch.no_grad():
        for a, b in zip(m(num, cat), loaded(num, cat)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
