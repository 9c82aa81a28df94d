"""A decision's random numbers belong to the decision, not to the batch it was answered in."""

from __future__ import annotations

import asyncio

import numpy as np
import torch

from metamon_sp.config import ModelConfig, PolicyConfig
from metamon_sp.features import FACTS, N_ACTIONS, N_CAT, N_NUM, Observation
from metamon_sp.model import PolicyModel
from metamon_sp.policy import Policy, decision_uniforms


def _obs(rng: np.random.Generator) -> Observation:
    mask = rng.random(N_ACTIONS) < 0.6
    mask[0] = True
    return Observation(rng.standard_normal(N_NUM).astype(np.float32),
                       rng.integers(0, 8, N_CAT).astype(np.int16), mask,
                       np.zeros(len(FACTS), np.float32))


def _play(order: list[int], batch: int, cfg: PolicyConfig, seed: int = 0) -> dict[str, list]:
    """Six battles, three decisions each, answered in batches of `batch` in the given order."""
    torch.manual_seed(0)
    policy = Policy(PolicyModel(ModelConfig(context=4)), cfg, seed=seed)
    rng = np.random.default_rng(1)
    obs = {(b, t): _obs(rng) for b in range(6) for t in range(3)}
    chosen: dict[str, list] = {f"b{b}": [] for b in range(6)}
    for t in range(3):
        keys = [("p1", f"b{b}") for b in order]
        for k in keys:
            policy.observe(k, obs[(int(k[1][1:]), t)], rqid=t + 1)
        for i in range(0, len(keys), batch):
            part = keys[i:i + batch]
            masks = np.stack([obs[(int(k[1][1:]), t)].mask for k in part])
            actions, explored = policy.choose(part, masks)
            for k, a, e, m in zip(part, actions, explored, masks):
                assert m[a], "an illegal action was sampled"
                chosen[k[1]].append((int(a), bool(e)))
    return chosen


def test_a_decision_does_not_depend_on_its_batch_or_on_the_order_of_battles():
    cfg = PolicyConfig(epsilon=0.3, temperature=1.0)
    one_by_one = _play(list(range(6)), 1, cfg)
    assert _play([5, 2, 0, 4, 1, 3], 6, cfg) == one_by_one
    assert _play([3, 1, 4, 0, 5, 2], 4, cfg) == one_by_one
    assert _play(list(range(6)), 1, cfg, seed=1) != one_by_one  # the seed does matter


def test_uniforms_are_in_range_and_differ_between_decisions_retries_and_players():
    a = decision_uniforms(0, ("p1", "battle-x"), 1)
    assert a.shape == (3,) and ((a >= 0) & (a < 1)).all()
    for other in (decision_uniforms(0, ("p1", "battle-x"), 2),
                  decision_uniforms(0, ("p1", "battle-x"), 1, retry=1),
                  decision_uniforms(0, ("p2", "battle-x"), 1)):
        assert not np.array_equal(a, other)


def test_sampling_follows_the_policy_and_exploration_the_legal_actions():
    torch.manual_seed(0)
    policy = Policy(PolicyModel(ModelConfig(context=4)), PolicyConfig(epsilon=0.5), seed=0)
    rng = np.random.default_rng(2)
    obs = _obs(rng)
    counts = np.zeros(N_ACTIONS)
    explored = 0
    for b in range(2000):
        key = ("p1", f"b{b}")
        policy.observe(key, obs, rqid=1)
        a, e = policy.choose([key], obs.mask[None])
        counts[a[0]] += 1
        explored += int(e[0])
    assert counts[~obs.mask].sum() == 0
    assert abs(explored / 2000 - 0.5) < 0.05
    assert (counts[obs.mask] > 0).all()  # exploration reaches every legal action


def test_cached_turn_encodings_give_the_logits_of_the_whole_window():
    """Live play encodes each turn once; the logits must be those of the full forward pass over
    the window (as training computes them), also once the window slides past `context`."""
    torch.manual_seed(0)
    model = PolicyModel(ModelConfig(context=4)).eval()
    policy = Policy(model, PolicyConfig(), seed=0)
    rng = np.random.default_rng(3)
    seen: dict[str, list[Observation]] = {"a": [], "b": []}
    for t in range(7):
        for b, n in (("a", 1), ("b", 2)):  # battle b makes a retry of each request
            for _ in range(n):
                obs = _obs(rng)
                policy.observe(("p1", b), obs, rqid=t + 1)
            seen[b] = (seen[b] + [obs])[-4:]
        hs = [policy._histories[("p1", b)] for b in ("a", "b")]
        cached = policy.logits(hs)
        for i, b in enumerate(("a", "b")):
            num = torch.from_numpy(np.stack([o.num for o in seen[b]]))[None]
            cat = torch.from_numpy(np.stack([o.cat for o in seen[b]]).astype(np.int64))[None]
            with torch.no_grad():
                full = model.actor(model.trunk(num, cat))[0, -1]
            torch.testing.assert_close(cached[i], full, rtol=1e-5, atol=1e-5)


def test_the_key_value_cache_runs_only_new_turns_and_changes_no_logit(monkeypatch):
    """Battles join, retry, drop a refused turn and slide past `context` at different times;
    with the cache, most passes run one turn per battle, and every logit is the uncached one."""
    torch.manual_seed(0)
    model = PolicyModel(ModelConfig(context=8)).eval()
    cached = Policy(model, PolicyConfig(), seed=0)
    plain = Policy(model, PolicyConfig(), seed=0, kv_cache=False)
    steps = {"n": 0}
    real_step = model.body.contextualize_step

    def counted(*args):
        steps["n"] += 1
        return real_step(*args)

    monkeypatch.setattr(model.body, "contextualize_step", counted)
    rng = np.random.default_rng(5)
    for t in range(12):
        keys = [("p1", f"b{b}") for b in range(4) if t >= b]  # battle b starts at turn b
        if t == 6:  # b2's last choice was refused: its turn is forgotten, a new request comes
            for p in (cached, plain):
                p.drop_last(("p1", "b2"))
        for k in keys:
            obs = _obs(rng)
            for p in (cached, plain):
                p.observe(k, obs, rqid=t + 1)
            if k[1] == "b1" and t % 3 == 0:  # a retry of the same request
                obs = _obs(rng)
                for p in (cached, plain):
                    p.observe(k, obs, rqid=t + 1)
        for p in (cached, plain):
            p._encode_new_turns([p._histories[k] for k in keys])
        a = cached.logits([cached._histories[k] for k in keys])
        b = plain.logits([plain._histories[k] for k in keys])
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert steps["n"] == 8  # turns 0-7; from turn 8 battle b0 slides past the context


def test_critic_exploration_tries_the_best_challenger_to_the_policys_choice():
    """`explore=critic`: an exploratory decision takes the legal action the critics (their min)
    rate highest among those the policy did not choose; never an illegal one, never the
    policy's own choice unless it is the only legal action."""
    torch.manual_seed(0)
    model = PolicyModel(ModelConfig(context=4)).eval()
    explorer = Policy(model, PolicyConfig(epsilon=1.0, explore="critic"), seed=0)
    plain = Policy(model, PolicyConfig(epsilon=0.0), seed=0)
    rng = np.random.default_rng(4)
    for b in range(40):
        key = ("p1", f"b{b}")
        obs = _obs(rng)
        if b == 0:  # one legal action: that one, flagged as exploratory all the same
            obs.mask[:] = False
            obs.mask[3] = True
        for p in (explorer, plain):
            p.observe(key, obs, rqid=1)
        chosen = plain.choose([key], obs.mask[None])[0][0]
        a, e = explorer.choose([key], obs.mask[None])
        assert e[0] and obs.mask[a[0]]
        if b == 0:
            assert a[0] == 3
            continue
        with torch.no_grad():
            q = model.critics(explorer.encode([explorer._histories[key]]))[0, :, 0].min(0).values
        others = obs.mask.copy()
        others[chosen] = False
        assert a[0] != chosen
        assert a[0] == int(np.argmax(np.where(others, q.numpy(), -np.inf)))


def test_a_batch_lets_decisions_already_ready_in_the_loop_join_it():
    """A message read in the same turn of the loop as the first decision of a batch (here a
    callback queued behind it) is decided in the same forward pass, not the next one."""
    torch.manual_seed(0)
    policy = Policy(PolicyModel(ModelConfig(context=4)), PolicyConfig(batched=True))
    obs = _obs(np.random.default_rng(0))

    async def main() -> list:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(policy.decide(("p1", "b0"), obs, 1))]
        loop.call_soon(lambda: tasks.append(loop.create_task(policy.decide(("p1", "b1"), obs, 1))))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return await asyncio.gather(*tasks)

    answers = asyncio.run(main())
    assert len(answers) == 2 and all(obs.mask[a] for a, _ in answers)
    assert (policy.forward_passes, policy.decisions) == (1, 2)
