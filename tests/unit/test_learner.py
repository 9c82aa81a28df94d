"""The learner on a fixed small dataset with learnable structure (no server)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from metamon_sp import train as train_mod
from metamon_sp.checkpoint import load_checkpoint
from metamon_sp.config import ConfigError, load_config
from metamon_sp.model import PolicyModel
from metamon_sp.rewards import REWARDS
from metamon_sp.tracking import read_metrics
from metamon_sp.train import compute_losses, train
from metamon_sp.train_data import OfflineData
from tests.factories import structured_dataset

FAST = ["model.context=8", "train.batch_size=16", "train.warmup_steps=5", "train.progress=false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return structured_dataset(tmp_path_factory.mktemp("data") / "d")


def _mean(rows, key, sl):
    return float(np.mean([r[key] for r in rows[sl]]))


def test_critic_and_bc_losses_fall(data, tmp_path):
    cfg = load_config(FAST + ["train.steps=200", "train.actor_filter=none", "train.lr=1e-3"])
    train(cfg, [data], tmp_path / "run")
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert len(rows) == 200 and [r["step"] for r in rows] == list(range(1, 201))
    for key in ("train/critic_loss", "train/bc_loss"):
        assert _mean(rows, key, slice(-20, None)) < 0.7 * _mean(rows, key, slice(0, 20)), key
    for key in ("damping/kl_ref", "damping/kl_step", "damping/kl_coef", "damping/ent_coef",
                "train/entropy", "train/lr", "train/actor_loss", "train/critic_loss",
                "train/grad_norm"):
        assert key in rows[-1]


def _interrupted_then_resumed(cfg, data, out, monkeypatch, hook: str):
    """Train, killed at the 15th call of `train_mod.<hook>` (step 15), then run again: it
    resumes from its step-10 checkpoint. Returns the finished checkpoint."""
    real, calls = getattr(train_mod, hook), {"n": 0}

    def crash_at_15(*args):
        calls["n"] += 1
        if calls["n"] == 15:
            raise KeyboardInterrupt("simulated interruption")
        return real(*args)

    monkeypatch.setattr(train_mod, hook, crash_at_15)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, [data], out)
    monkeypatch.setattr(train_mod, hook, real)
    return train(cfg, [data], out)


def test_training_is_deterministic_and_resumes_exactly(data, tmp_path, monkeypatch):
    cfg = load_config(FAST + ["train.steps=30", "train.checkpoint_every=10", "damping=dynamic"])
    a = train(cfg, [data], tmp_path / "a")
    b = train(cfg, [data], tmp_path / "b")
    c = _interrupted_then_resumed(cfg, data, tmp_path / "c", monkeypatch, "step_kl")
    wa, wb, wc = (load_checkpoint(p)[0].state_dict() for p in (a, b, c))
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k}: two seeded runs differ"
        assert torch.equal(wa[k], wc[k]), f"{k}: the resumed run differs"
    steps = [r["step"] for r in read_metrics(tmp_path / "c" / "metrics.jsonl")]
    assert steps == list(range(1, 31))
    assert train(cfg, [data], tmp_path / "c") == c  # finished: nothing to redo


def test_a_compiled_training_replays_exactly_and_follows_the_uncompiled_one(data, tmp_path):
    """`train.compile` on CPU: two runs of one seed give the same weights (without deterministic
    kernels the embedding's gradient is summed by racing threads), and its first step computes
    what the uncompiled step does; torch's global switch is as it was afterwards."""
    before = torch.are_deterministic_algorithms_enabled()
    eager_cfg = load_config(FAST + ["train.steps=20", "train.device=cpu"])
    compiled_cfg = load_config(FAST + ["train.steps=20", "train.device=cpu", "train.compile=true"])
    train(eager_cfg, [data], tmp_path / "eager")
    a = train(compiled_cfg, [data], tmp_path / "a")
    b = train(compiled_cfg, [data], tmp_path / "b")
    assert torch.are_deterministic_algorithms_enabled() == before
    wa, wb = (load_checkpoint(p)[0].state_dict() for p in (a, b))
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k}: two compiled runs of one seed differ"
    # The same step on the same weights: every metric of the first step agrees (later steps
    # drift apart by float rounding, which Adam's normalisation amplifies on tiny gradients)
    first = {n: read_metrics(tmp_path / n / "metrics.jsonl")[0] for n in ("eager", "a")}
    assert first["a"].keys() == first["eager"].keys()
    for key, value in first["eager"].items():
        assert first["a"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_weight_average_is_the_checkpoint_and_resumes_exactly(data, tmp_path, monkeypatch):
    from metamon_sp.checkpoint import load_train_state
    from metamon_sp.train import RAW, update_average

    cfg = load_config(FAST + ["train.steps=30", "train.checkpoint_every=10", "train.ema=0.9"])
    assert cfg.hash() != load_config(FAST).hash() == load_config(FAST + ["train.ema=0"]).hash()
    a = train(cfg, [data], tmp_path / "a", keep=[0.5, 1.0])
    # resumes its average and its stepped weights
    c = _interrupted_then_resumed(cfg, data, tmp_path / "c", monkeypatch, "update_average")
    wa, wc = (load_checkpoint(p)[0].state_dict() for p in (a, c))
    assert all(torch.equal(wa[k], wc[k]) for k in wa)
    # the checkpoint plays the average; the stepped weights travel in the train state only
    raw = {k[len(RAW):]: v for k, v in load_train_state(a)[0].items() if k.startswith(RAW)}
    assert raw.keys() == wa.keys() and any(not torch.equal(raw[k], wa[k]) for k in wa)
    plain = load_checkpoint(train(load_config(FAST + ["train.steps=30"]), [data], tmp_path / "p"))
    assert all(torch.equal(raw[k], plain[0].state_dict()[k]) for k in raw)  # same steps taken
    half = load_checkpoint(tmp_path / "a" / "candidates" / "step-000015")[0].state_dict()
    assert any(not torch.equal(half[k], wa[k]) for k in wa)
    # the average itself
    torch.manual_seed(0)
    m, avg = PolicyModel(cfg.model), PolicyModel(cfg.model)
    before = {k: v.clone() for k, v in avg.state_dict().items()}
    update_average(avg, m, 0.75)
    for k, v in avg.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, 0.75 * before[k] + 0.25 * m.state_dict()[k])
    with pytest.raises(ConfigError, match=r"train\.ema"):
        load_config(["train.ema=1.0"])


def test_kl_term_pulls_a_perturbed_policy_back_to_the_reference(data):
    cfg = load_config(FAST)
    torch.manual_seed(0)
    model = PolicyModel(cfg.model)
    ref = copy.deepcopy(model).requires_grad_(False)
    with torch.no_grad():
        for p in model.actor.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    batch = OfflineData([data], REWARDS["binary"], 0.01).sample(16, 8, np.random.default_rng(0))
    gammas = torch.tensor(cfg.model.gammas)
    opt = torch.optim.Adam(model.actor.parameters(), lr=3e-3)
    kls = []
    for _ in range(150):
        kl = compute_losses(model, ref, batch, cfg.train, gammas, 0.0, 0.0).terms["kl_ref"]
        kls.append(kl.item())
        opt.zero_grad()
        kl.backward()
        opt.step()
    assert kls[0] > 0.05 and kls[-1] < 0.1 * kls[0]


def test_dynamic_damping_changes_the_update(data):
    cfg = load_config(FAST + ["damping=dynamic"])
    torch.manual_seed(0)
    model = PolicyModel(cfg.model)
    batch = OfflineData([data], REWARDS["binary"], 0.01).sample(8, 8, np.random.default_rng(1))
    gammas = torch.tensor(cfg.model.gammas)
    plain = compute_losses(model, None, batch, cfg.train, gammas, 0.0, 0.0)
    damped = compute_losses(model, None, batch, cfg.train, gammas, 0.0, 0.5)
    expected = plain.loss - 0.5 * damped.terms["entropy"]
    torch.testing.assert_close(damped.loss, expected)


def test_wandb_mirror_runs_offline_without_login(data, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = load_config(FAST + ["train.steps=5", "logger=wandb"])
    train(cfg, [data], tmp_path / "run")
    assert len(read_metrics(tmp_path / "run" / "metrics.jsonl")) == 5  # the JSONL is always there
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_large_ensembles_bootstrap_from_two_target_critics(data):
    cfg = load_config(FAST + ["model.n_critics=4"])
    torch.manual_seed(0)
    model = PolicyModel(cfg.model)
    batch = OfflineData([data], REWARDS["binary"], 0.01).sample(4, 8, np.random.default_rng(0))
    out = compute_losses(model, None, batch, cfg.train, torch.tensor(cfg.model.gammas), 0.0, 0.0)
    assert torch.isfinite(out.loss)


def test_entropy_collapse_detector_fires_on_a_collapsing_config_only(data, tmp_path):
    """Pure behaviour cloning at a 30x learning rate collapses the policy onto its data within
    a few dozen steps; the same at a tiny rate does not. The detector (on smoothed entropy)
    must tell them apart, and the run's summary keeps the step where it fired."""
    base = FAST + ["train.steps=120", "train.actor_filter=none", "damping.collapse_window=20",
                   "damping.max_entropy_drop_per_step=0.005"]
    collapsing = train(load_config(base + ["train.lr=1e-2"]), [data], tmp_path / "hot").parent
    gentle = train(load_config(base + ["train.lr=1e-5"]), [data], tmp_path / "cold").parent
    hot, cold = (read_metrics(d / "metrics.jsonl") for d in (collapsing, gentle))
    assert hot[0]["train/entropy"] - hot[-1]["train/entropy"] > 0.5, "the config did not collapse"
    fired = [r["step"] for r in hot if r["damping/entropy_collapse"] > 0]
    assert fired and not any(r["damping/entropy_collapse"] for r in cold)
    summary = json.loads((collapsing / "train_summary.json").read_text())
    assert summary["entropy_collapse_at"] == fired[0]
    assert json.loads((gentle / "train_summary.json").read_text())["entropy_collapse_at"] is None


def test_the_controller_scales_the_actors_learning_rate_only(data, tmp_path):
    cfg = load_config(FAST + ["train.steps=40", "damping=dynamic"])
    model = PolicyModel(cfg.model)
    groups = {g["name"]: {id(p) for p in g["params"]} for g in train_mod.param_groups(model)}
    assert groups["actor"] == {id(p) for p in model.actor.parameters()}
    assert not groups["actor"] & groups["trunk_and_critics"]
    trainable = [p for p in model.parameters() if p.requires_grad]  # not the target network
    assert len(groups["actor"]) + len(groups["trunk_and_critics"]) == len(trainable)
    train(cfg, [data], tmp_path / "run")
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert all("damping/kl_ema" not in r for r in rows[:5])  # warmup: measured, not steering
    steered = rows[5:]
    assert all("damping/kl_ema" in r for r in steered)
    assert any(r["damping/lr_scale"] != 1.0 for r in steered)
    for r in steered:
        assert r["train/lr_actor"] == pytest.approx(r["train/lr"] * r["damping/lr_scale"])
    checks = json.loads((tmp_path / "run" / "train_summary.json").read_text())["damping_checks"]
    assert checks["steps"] == 35 and 0 <= checks["in_band_frac"] <= 1


def test_the_cosine_schedule_warms_up_then_falls_to_its_final_fraction():
    cfg = load_config(["train.lr=1e-3", "train.warmup_steps=10", "train.lr_schedule=cosine",
                       "train.lr_final=0.1"]).train
    lr = [train_mod.learning_rate(cfg, s, 110) for s in range(110)]
    assert lr[0] == pytest.approx(1e-4) and lr[9] == pytest.approx(1e-3)  # the warmup
    assert lr[59] == pytest.approx(0.55e-3)  # half way: the middle of lr and lr_final·lr
    assert lr[-1] == pytest.approx(1e-4)
    assert all(a >= b for a, b in zip(lr[9:], lr[10:]))
    constant = load_config(["train.lr=1e-3", "train.warmup_steps=10"]).train
    assert [train_mod.learning_rate(constant, s, 110) for s in (9, 60, 109)] == [1e-3] * 3
    # a fine-tune no longer than its warmup never decays
    assert train_mod.learning_rate(cfg, 4, 5) == pytest.approx(5e-4)


def test_a_cosine_training_logs_its_schedule_and_resumes_exactly(data, tmp_path, monkeypatch):
    cfg = load_config(FAST + ["train.steps=30", "train.checkpoint_every=10",
                              "train.lr_schedule=cosine"])
    a = train(cfg, [data], tmp_path / "a")
    c = _interrupted_then_resumed(cfg, data, tmp_path / "c", monkeypatch, "learning_rate")
    wa, wc = (load_checkpoint(p)[0].state_dict() for p in (a, c))
    assert all(torch.equal(wa[k], wc[k]) for k in wa)
    lrs = [r["train/lr"] for r in read_metrics(tmp_path / "c" / "metrics.jsonl")]
    assert lrs == pytest.approx([train_mod.learning_rate(cfg.train, s, 30) for s in range(30)])
    assert lrs[-1] == pytest.approx(cfg.train.lr * cfg.train.lr_final)


def test_reduced_precision_on_a_cpu_fails_before_anything_is_written(data, tmp_path):
    cfg = load_config(FAST + ["train.steps=3", "train.device=cpu", "train.precision=bf16"])
    with pytest.raises(ConfigError, match=r"train\.precision=bf16 needs a CUDA device.*"
                                          r"train\.precision=fp32"):
        train(cfg, [data], tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_compiling_without_a_cpp_compiler_fails_before_anything_is_written(data, tmp_path,
                                                                          monkeypatch):
    from torch._inductor import cpp_builder, exc

    def no_compiler():
        raise exc.InvalidCxxCompiler

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    cfg = load_config(FAST + ["train.steps=3", "train.device=cpu", "train.compile=true"])
    with pytest.raises(ConfigError, match=r"train\.compile=true on CPU needs a C\+\+ compiler.*"
                                          r"apt install g\+\+.*train\.compile=false"):
        train(cfg, [data], tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_reduced_precision_trains_on_cuda_and_restores_torchs_switches(data, tmp_path, precision):
    before = torch.backends.cuda.matmul.allow_tf32
    cfg = load_config(FAST + ["train.steps=100", "train.device=cuda", "train.lr=1e-3",
                              "train.actor_filter=none", f"train.precision={precision}"])
    train(cfg, [data], tmp_path / "run")
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert all(np.isfinite(r["train/critic_loss"]) for r in rows)
    assert _mean(rows, "train/bc_loss", slice(-20, None)) < _mean(rows, "train/bc_loss", slice(0, 20))
    assert torch.backends.cuda.matmul.allow_tf32 == before
    summary = json.loads((tmp_path / "run" / train_mod.SUMMARY).read_text())
    assert summary["device"].startswith("cuda") and summary["peak_gpu_mem_gb"] > 0


def test_the_critics_improvement_of_the_parent_is_mpos_closed_form():
    prior = torch.log(torch.tensor([[0.5, 0.3, 0.2, 0.0], [0.25, 0.25, 0.25, 0.25],
                                    [0.0, 0.0, 0.0, 0.0]]))
    mask = torch.tensor([[True, True, True, False], [True] * 4, [False] * 4])
    q = torch.tensor([[0.0, 0.02, -0.02, 5.0], [0.1, 0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 0.0]])
    logp0 = prior.masked_fill(~mask, 0.0)
    target = train_mod.improved_policy(logp0, q, mask, beta=50.0)
    expected = torch.tensor([0.5, 0.3 * np.e, 0.2 / np.e])
    assert torch.allclose(target[0, :3], expected / expected.sum())
    assert target[0, 3] == 0  # an illegal action, whatever its Q
    assert torch.allclose(target[1], torch.full((4,), 0.25))  # equal Q: the prior itself
    assert torch.isfinite(target[2]).all()  # padding stays finite
    assert torch.allclose(train_mod.improved_policy(logp0, q, mask, beta=1e-9)[0, :3],
                          torch.tensor([0.5, 0.3, 0.2]), atol=1e-6)


def test_q_beta_trains_towards_the_improved_parent_and_logs_it(data, tmp_path):
    cfg = load_config(FAST + ["train.steps=20", "train.q_beta=50"])
    train(cfg, [data], tmp_path / "run")
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert all(np.isfinite(r["train/q_target_loss"]) and r["train/q_target_loss"] > 0
               for r in rows)
    assert all("damping/kl_ref" in r for r in rows)  # the parent ran every step
    cfg_off = load_config(FAST + ["train.steps=3"])
    model = PolicyModel(cfg_off.model)
    batch = OfflineData([data], REWARDS["binary"], 0.01).sample(
        4, cfg_off.model.context, np.random.default_rng(0))
    gammas = torch.tensor(cfg_off.model.gammas)
    off = compute_losses(model, model, batch, cfg_off.train, gammas, 0.0, 0.0)
    on = compute_losses(model, model, batch, cfg.train, gammas, 0.0, 0.0)
    assert off.terms["q_target"].item() == 0 and on.terms["q_target"].item() > 0
    assert torch.isclose(on.loss - off.loss, on.terms["q_target"])


def test_a_critic_warmup_holds_the_policy_at_its_parent_while_the_critic_learns(data, tmp_path):
    # uncompiled: the held step is a graph of its own, two compiles for a few dozen steps
    scratch = load_config(FAST + ["train.steps=20", "train.critic_warmup=30", "train.lr=1e-3",
                                  "train.compile=false"])
    parent = train(scratch, [data], tmp_path / "parent")
    assert len(read_metrics(tmp_path / "parent" / "metrics.jsonl")) == 20  # no warmup from scratch
    runs = {}
    for name, warmup in (("held", 40), ("free", 0)):
        cfg = load_config(FAST + ["train.steps=10", f"train.critic_warmup={warmup}",
                                  "train.lr=1e-3", "train.actor_filter=none",
                                  "train.compile=false"])
        train(cfg, [data], tmp_path / name, init=parent, generation=1)
        runs[name] = read_metrics(tmp_path / name / "metrics.jsonl")
    held, free = runs["held"], runs["free"]
    assert [r["step"] for r in held] == list(range(1, 51))  # 40 held steps, then 10 free ones
    assert all("damping/kl_ref" in r and r["train/critic_warmup"] == 1 for r in held[:40])
    assert all(r["train/critic_warmup"] == 0 for r in held[40:])
    assert _mean(held, "train/critic_loss", slice(30, 40)) < _mean(held, "train/critic_loss",
                                                                    slice(0, 10))
    # held: the policy stays at its parent; the same steps unheld move it an order further
    assert max(r["damping/kl_ref"] for r in held[:10]) < 0.1 * free[9]["damping/kl_ref"]
    assert held[39]["damping/kl_ref"] < 0.01
    assert held[-1]["damping/kl_ref"] > 10 * held[39]["damping/kl_ref"]  # then the actor learns


def test_an_uncompiled_training_on_two_threads_replays_exactly(data, tmp_path):
    """Uncompiled on CPU too, the embedding's gradient rows are summed by threads in whatever
    order they finish unless kernels are deterministic: two runs of one seed drifted apart
    after ~25 steps of `make run`'s generation 0. With them, the same weights."""
    cfg = load_config(FAST + ["train.steps=40", "train.device=cpu", "train.threads=2",
                              "train.batch_size=64", "model.context=16"])
    a, b = (train(cfg, [data], tmp_path / n) for n in ("a", "b"))
    wa, wb = (load_checkpoint(p)[0].state_dict() for p in (a, b))
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k}: two runs of one seed differ"
