"""The offline actor-critic learner (AMAGO's recipe, written out), with dynamic damping.

One optimizer step on a batch of windows of turns (B windows × L turns):
    critic  TD: Q_c,g(s_t, a_t) → r_t + γ_g (1 − done_t) Σ_a π(a|s_{t+1}) min_c Q̄_c,g(s_{t+1}, a)
            (Q̄: the target network, a Polyak copy of trunk and critics)
    actor   advantage-filtered BC: −w(A) log π(a_t|s_t), A = Q(s_t,a_t) − Σ_a π(a|s_t) Q(s_t,a)
            (+ pi_coef · −E_π Q)  (+ β_t KL(π ‖ π_ref) − α_t H(π) with damping)
Everything over legal actions only, padding masked out. After the step, KL(π_after ‖ π_before) on
the same batch drives the damping controller.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from metamon_sp import atomic
from metamon_sp.augment import permute_batch
from metamon_sp.checkpoint import (CheckpointError, CheckpointMeta, load_checkpoint,
                                   load_train_state, optimizer_state, read_meta,
                                   restore_optimizer, save_checkpoint)
from metamon_sp.config import Config, ConfigError, TrainConfig
from metamon_sp.damping import (DampingController, DampingState, EntropyCollapseDetector,
                                controller_checks)
from metamon_sp.model import PolicyModel, masked_logits
from metamon_sp.policy import threads_before_play
from metamon_sp.rewards import build_reward
from metamon_sp.tracking import MetricsLogger, RunInfo, read_metrics
from metamon_sp.train_data import Batch, OfflineData

log = logging.getLogger(__name__)

CHECKPOINT_DIR, METRICS, SUMMARY = "checkpoint", "metrics.jsonl", "train_summary.json"
CANDIDATES = "candidates"
RAW = "raw."  # under `train.ema`, the train state's copy of the weights the optimizer steps


def candidate_steps(fractions: Sequence[float], steps: int) -> list[int]:
    """The steps at `fractions` (in (0, 1]) of a training of `steps`, in order, without repeats."""
    return sorted({min(steps, max(1, round(f * steps))) for f in fractions})


def candidate_path(out_dir: Path | str, step: int, steps: int) -> Path:
    """Where `train(..., keep=...)` keeps the weights of `step` (the end: the checkpoint)."""
    out_dir = Path(out_dir)
    if step >= steps:
        return out_dir / CHECKPOINT_DIR
    return out_dir / CANDIDATES / f"step-{step:06d}"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={name} but no CUDA device is visible; use train.device=cpu.")
    return torch.device(name)


def check_precision(precision: str, device: torch.device) -> None:
    if precision != "fp32" and device.type != "cuda":
        raise ConfigError(f"train.precision={precision} needs a CUDA device, but training runs on "
                          f"{device}: set train.precision=fp32, or train.device=cuda on a machine "
                          "with a GPU.")


def check_compile(compile_step: bool, device: torch.device) -> None:
    """`train.compile` on CPU builds the step with a C++ compiler: fail before anything is
    written when torch finds none (its own search: $CXX, then g++)."""
    if not compile_step or device.type != "cpu":
        return
    from torch._inductor.cpp_builder import get_cpp_compiler  # torch is pinned (pyproject)

    try:
        get_cpp_compiler()
    except Exception as e:
        raise ConfigError(f"train.compile=true on CPU needs a C++ compiler to build the training "
                          f"step, and torch found none ({type(e).__name__}): install one (Debian: "
                          "apt install g++) or set train.compile=false.") from e


@contextlib.contextmanager
def tf32_matmuls(enabled: bool):
    """TF32 matrix products inside the block (torch's switches are global: restored after)."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    if enabled:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@contextlib.contextmanager
def deterministic_kernels(enabled: bool):
    """Deterministic kernels inside the block (a global switch: restored after). On CPU, a step,
    compiled or not, otherwise sums the embedding's gradient rows across threads in whatever
    order they finish, and two runs of one seed drift apart (uncompiled, `make run`'s
    generation 0 parted after ~25 steps); with it they are identical, at ~2% of the step's time."""
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=warn_only)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast for a forward pass under `precision=bf16` (fp32 weights and grads)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


KL_MEASURE_EVERY = 10


def _masked_mean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (x * w).sum() / w.sum().clamp(min=1.0)


def policy_log_probs(logits: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log π with illegal actions at −inf, and a copy safe to multiply (0 where illegal)."""
    logp = F.log_softmax(masked_logits(logits, mask), dim=-1)
    return logp, logp.masked_fill(~mask, 0.0)


def td_targets(q_next: torch.Tensor, pi_next: torch.Tensor, batch: Batch, gammas: torch.Tensor,
               lam: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """TD targets and where they exist.

        y_t = r_t + γ (1 − done_t) Σ_a π(a|s_{t+1}) Q̄(s_{t+1}, a)            (λ = 0)

    r_t is the reward of the decision a_t taken at s_t; q_next (B, L-1, G, A) and pi_next
    (B, L-1, A) are the target Q and the policy at positions 1..L-1. A decision has a target
    when its battle ended there (done) or its next turn is in the window; a truncated battle's
    last decision (`cut`) has neither. With λ > 0 (`train.td_lambda`) the targets are λ-returns,
    y_t = r_t + γ (1 − done_t) ((1 − λ) V̄_{t+1} + λ y_{t+1}), where the next decision has a
    target of its own and its action was the policy's (not exploratory); elsewhere one-step.
    Returns y (B, L, G) and the mask (B, L) bool."""
    B, _, G, _ = q_next.shape
    legal_next = batch.mask[:, 1:, None, :]
    v_next = (pi_next[:, :, None, :] * q_next.masked_fill(~legal_next, 0.0)).sum(-1)  # (B, L-1, G)
    v_next = torch.cat([v_next, v_next.new_zeros(B, 1, G)], dim=1)                   # (B, L, G)
    r, done = batch.rewards[..., None], batch.dones[..., None]
    y = r + gammas * (1.0 - done) * v_next
    has_next = torch.cat([batch.valid[:, 1:], batch.valid.new_zeros(B, 1)], dim=1)
    mask = batch.valid & ~batch.cut & (batch.dones.bool() | has_next)
    if lam > 0:  # backwards through the window: y_t += γ(1 − done_t) λ (y_{t+1} − V̄_{t+1})
        trace = mask[:, 1:] & ~batch.explored[:, 1:]                              # (B, L-1)
        scale = gammas * (1.0 - done[:, :-1]) * lam * trace[..., None].float()   # (B, L-1, G)
        rows = [y[:, -1]]
        for t in range(y.shape[1] - 2, -1, -1):
            rows.append(y[:, t] + scale[:, t] * (rows[-1] - v_next[:, t]))
        y = torch.stack(rows[::-1], dim=1)
    return y, mask


def advantages(q: torch.Tensor, probs: torch.Tensor, mask: torch.Tensor, actions: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The actor's Q (…, A): the min over critics at the first discount, illegal actions 0; and
    the taken actions' advantages A = Q(s, a) − Σ π(a'|s) Q(s, a') (…). Both detached."""
    q_pi = q[..., 0, :].min(dim=-2).values.detach().masked_fill(~mask, 0.0)
    v = (probs.detach() * q_pi).sum(-1)
    return q_pi, q_pi.gather(-1, actions[..., None]).squeeze(-1) - v


def advantage_weights(adv: torch.Tensor, tc: TrainConfig,
                      explored: torch.Tensor | None = None) -> torch.Tensor:
    """How much each decision counts in the behaviour-cloning term, from its advantage. An
    exploratory (random) action is cloned only when its advantage clears `train.explored_margin`:
    it teaches the critic either way, but the actor copies it only when it is clearly better than
    what the policy would have done (a noisy A > 0 would copy random play). The policy's own
    decisions clear `train.adv_margin` (0: any A > 0). `actor_filter=none` ignores the margins
    of the policy's own decisions."""
    margin = explored is not None and tc.explored_margin > 0
    if margin:
        adv = torch.where(explored, adv - tc.explored_margin, adv - tc.adv_margin)
    elif tc.adv_margin > 0:
        adv = adv - tc.adv_margin
    if tc.actor_filter == "binary":
        return (adv > 0).float()
    if tc.actor_filter == "exp":
        return torch.exp(adv / tc.exp_beta).clamp(max=tc.exp_max_weight)
    ones = torch.ones_like(adv)
    return torch.where(explored, (adv > 0).float(), ones) if margin else ones


def improved_policy(prior_logp: torch.Tensor, q: torch.Tensor, mask: torch.Tensor, beta: float
                    ) -> torch.Tensor:
    """π_T ∝ π_prior·exp(β·(Q − max Q)) over the legal actions (…, A), detached: the policy
    that maximises E_π Q − KL(π ‖ π_prior)/β (`train.q_beta` with the critic's Q,
    `train.search_beta` with the search's values)."""
    top = q.masked_fill(~mask, -math.inf).max(-1, keepdim=True).values
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # padding: no legal action
    logits = masked_logits(prior_logp + beta * (q - top), mask)
    return F.softmax(logits, dim=-1).detach()


def search_target(prior: torch.Tensor, mask: torch.Tensor, values: torch.Tensor, beta: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """π_T ∝ prior·exp(β·(v − max v)) over the legal actions (see `train.search_beta`), from
    the search's `values` (…, A), NaN where not valued, and the policy's probabilities before
    the search (`prior`); an action not valued gets the prior-weighted mean of the valued ones.
    Returns π_T (…, A) and where it exists (…) bool."""
    known = ~torch.isnan(values) & mask
    rows = known.any(-1)
    p = prior.nan_to_num(0.0) * mask
    v = values.nan_to_num(0.0) * known
    pk = (p * known).sum(-1, keepdim=True)
    mean = (p * v).sum(-1, keepdim=True) / pk.clamp(min=1e-12)
    completed = torch.where(known, v, mean)
    return improved_policy(p.clamp(min=1e-8).log(), completed, mask, beta), rows


def _search_value_loss(logp0: torch.Tensor, mask: torch.Tensor, batch: Batch, beta: float
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The cross-entropy of π against `search_target` on the searched decisions (summed there,
    divided by all the batch's decisions, as the cloning term is), the mean KL(π_T ‖ π) there,
    and where they are (float)."""
    if beta <= 0 or batch.search_values is None or batch.search_prior is None:
        return logp0.new_zeros(()), logp0.new_zeros(()), None
    target, rows = search_target(batch.search_prior, mask, batch.search_values, beta)
    where = (rows & batch.valid).float()
    ce = -(target * logp0).sum(-1)
    kl = ce.detach() + (target * target.clamp(min=1e-12).log()).sum(-1)
    loss = (ce * where).sum() / batch.valid.float().sum().clamp(min=1.0)
    return loss, _masked_mean(kl, where), where


@dataclass
class StepOutput:
    loss: torch.Tensor
    terms: dict[str, torch.Tensor]  # each named loss term, differentiable
    logp: torch.Tensor  # (B, L, A) before the step, detached
    metrics: dict[str, float]


def compute_losses(model: PolicyModel, ref: PolicyModel | None, batch: Batch, tc: TrainConfig,
                   gammas: torch.Tensor, kl_coef: float, ent_coef: float,
                   losses: Callable[..., tuple] | None = None, hold: bool = False) -> StepOutput:
    """The step's losses and its metrics as numbers. `losses` is `step_losses` or its compiled
    form (`train.compile`): tensors only, so that it compiles as one graph, and the metrics
    leave it in one conversion. `hold`: a critic warmup step (see `step_losses`)."""
    index = valid_positions(batch.valid)  # outside the compiled graph: its length is data
    torch._dynamo.maybe_mark_dynamic(index, 0)  # and changes every batch: one graph for all
    loss, terms, logp, metrics = (losses or step_losses)(model, ref, batch, tc, gammas, kl_coef,
                                                         ent_coef, hold, index)
    values = torch.stack(list(metrics.values())).tolist() if metrics else []
    return StepOutput(loss, terms, logp, dict(zip(metrics, values)))


def valid_positions(valid: torch.Tensor) -> torch.Tensor:
    """The flat positions (N,) of a batch's decisions in its (B, L) grid of windows, which must
    hold their decisions first and their padding after (as `OfflineData.sample` builds them):
    the networks then skip the padding without changing what any decision sees."""
    if bool((valid[:, 1:] & ~valid[:, :-1]).any()):
        raise ValueError("a training batch's window has padding before a decision; windows "
                         "must hold their decisions first (see OfflineData.sample)")
    return valid.flatten().nonzero().squeeze(1)


def spread(x: torch.Tensor, index: torch.Tensor, B: int, L: int) -> torch.Tensor:
    """(N, …) values at the flat positions `index` → (B, L, …), zero at the others."""
    return x.new_zeros(B * L, *x.shape[1:]).index_copy(0, index, x).unflatten(0, (B, L))


def step_losses(model: PolicyModel, ref: PolicyModel | None, batch: Batch, tc: TrainConfig,
                gammas: torch.Tensor, kl_coef: float, ent_coef: float, hold: bool = False,
                index: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor,
                           dict[str, torch.Tensor]]:
    """The critic's TD loss and the actor's loss. With `hold` (a `train.critic_warmup` step;
    needs `ref`) the actor's loss is only the distillation KL(π_ref ‖ π), which holds the policy
    at its parent while the shared trunk moves under the critic's loss.

    The networks run on the batch's decisions alone (`index`, default `valid_positions`), not
    on the padding after a window's last decision, which no loss reads and causal attention
    keeps from every decision: the same losses at ~45% of the tokens. Outputs are spread back
    to the (B, L) grid, zero on the padding."""
    mask, a = batch.mask, batch.actions                          # (B, L, A), (B, L)
    valid = batch.valid.float()                                  # (B, L)
    B, L = a.shape
    index = valid_positions(batch.valid) if index is None else index
    h = model.trunk_at(batch.num, batch.cat, index)              # (N, d), (N, A, d_a)
    logp, logp0 = policy_log_probs(spread(model.actor(h), index, B, L), mask)  # (B, L, A)
    probs = logp0.exp() * mask                                   # (B, L, A)
    q = spread(model.critics(h), index, B, L)                    # (B, L, C, G, A)
    C, G, A = q.shape[2:]

    # ---- critic: TD targets from the target network at the window's next turn
    with torch.no_grad():
        q_next = spread(model.target_q_at(batch.num, batch.cat, index), index, B, L)[:, 1:]
        if C > 2:  # the min of two target critics, drawn at random from the ensemble
            q_next = q_next[:, :, torch.randperm(C)[:2].to(q_next.device)]
        y, td_mask = td_targets(q_next.min(dim=2).values, probs[:, 1:].detach(), batch, gammas,
                                tc.td_lambda)
    q_taken = q.gather(-1, a[:, :, None, None, None].expand(B, L, C, G, 1)).squeeze(-1)
    td_err = (q_taken - y[:, :, None, :]) ** 2                               # (B, L, C, G)
    critic_loss = _masked_mean(td_err.mean(dim=(2, 3)), td_mask.float())

    # ---- actor: advantage-filtered behaviour cloning (+ policy improvement)
    q_pi, adv = advantages(q, probs, mask, a)
    weight = advantage_weights(adv, tc, batch.explored)
    if batch.searched is not None:  # the search's choices are cloned whatever A says
        weight = torch.where(batch.searched, torch.full_like(weight, tc.search_weight), weight)
    logp_a = logp0.gather(-1, a[..., None]).squeeze(-1)                          # (B, L)
    bc_loss = -_masked_mean(weight * logp_a, valid)
    search_loss, search_kl, valued = _search_value_loss(logp0, mask, batch, tc.search_beta)
    bc_loss = bc_loss + tc.search_weight * search_loss
    pi_loss = -_masked_mean((probs * q_pi).sum(-1), valid)
    entropy = -_masked_mean((probs * logp0).sum(-1), valid)

    # ---- the reference policy (the parent): damping's reverse KL and entropy bonus, and the
    # critic's improvement of it (`train.q_beta`)
    q_target_loss = torch.zeros((), device=batch.num.device)
    if ref is not None:
        with torch.no_grad():
            ref_logits = spread(ref.actor(ref.trunk_at(batch.num, batch.cat, index)), index, B, L)
            _, ref_logp0 = policy_log_probs(ref_logits, mask)
        kl_ref = _masked_mean((probs * (logp0 - ref_logp0)).sum(-1), valid)
        if tc.q_beta > 0:  # the parent improved by the critic, over every legal action
            target = improved_policy(ref_logp0, q_pi, mask, tc.q_beta)
            q_target_loss = -_masked_mean((target * logp0).sum(-1), valid)
    else:  # no damping this step and no measurement: skip the reference's forward pass
        kl_ref = torch.zeros((), device=batch.num.device)
    actor_loss = (bc_loss + q_target_loss + tc.pi_coef * pi_loss + kl_coef * kl_ref
                  - ent_coef * entropy)
    if hold:
        assert ref is not None, "a critic warmup step holds the policy at `ref`"
        actor_loss = _masked_mean((ref_logp0.exp() * mask * (ref_logp0 - logp0)).sum(-1), valid)
    loss = actor_loss + tc.critic_coef * critic_loss
    metrics = {
        "train/actor_loss": actor_loss, "train/critic_loss": critic_loss,
        "train/bc_loss": bc_loss, "train/pi_loss": pi_loss,
        "train/entropy": entropy, "train/q_mean": _masked_mean(q_taken.mean(dim=(2, 3)), valid),
        "train/adv_positive_frac": _masked_mean((adv > 0).float(), valid),
        # the scale `train.exp_beta` divides, and how much the filter keeps on average
        "train/adv_abs_mean": _masked_mean(adv.abs(), valid),
        "train/actor_weight_mean": _masked_mean(weight, valid),
        "train/explored_frac": _masked_mean(batch.explored.float(), valid),
        "train/explored_cloned_frac": _masked_mean((weight > 0).float(),
                                                   batch.explored.float()),
        **({"train/searched_frac": _masked_mean(batch.searched.float(), valid)}
           if batch.searched is not None else {}),
        **({"train/valued_frac": _masked_mean(valued, valid),
            "train/search_kl": search_kl} if valued is not None else {}),
        **({"damping/kl_ref": kl_ref} if ref is not None else {}),
        **({"train/q_target_loss": q_target_loss} if tc.q_beta > 0 else {}),
    }
    terms = {"critic": critic_loss, "bc": bc_loss, "pi": pi_loss, "entropy": entropy,
             "kl_ref": kl_ref, "q_target": q_target_loss}
    return loss, terms, logp.detach(), {k: v.detach().float() for k, v in metrics.items()}


@torch.no_grad()
def step_kl(model: PolicyModel, batch: Batch, logp_before: torch.Tensor,
            windows: int = 0) -> float:
    """KL(π_after ‖ π_before) on the batch just trained on (its first `windows` windows; 0: all):
    how far this step moved the policy. A few windows suffice for a controller that smooths
    over many steps, and cost a fraction of the forward pass."""
    n = windows or batch.num.shape[0]
    mask, valid = batch.mask[:n], batch.valid[:n]
    index = valid_positions(valid)
    logits = spread(model.actor(model.trunk_at(batch.num[:n], batch.cat[:n], index)), index,
                    *valid.shape)
    logp_after, after0 = policy_log_probs(logits, mask)
    before0 = logp_before[:n].masked_fill(~mask, 0.0)
    kl = ((after0.exp() * mask) * (after0 - before0)).sum(-1)
    return _masked_mean(kl, valid.float()).item()


def total_steps(tc: TrainConfig, data: OfflineData, context: int) -> int:
    if tc.epochs > 0:
        return max(1, math.ceil(tc.epochs * data.n_steps / (tc.batch_size * context)))
    return tc.steps


def learning_rate(tc: TrainConfig, step: int, steps: int) -> float:
    """The learning rate of optimizer step `step` (0-based) of `steps`: a linear warmup over
    `warmup_steps`, then `lr` (constant) or a cosine from `lr` to `lr_final`·`lr` at the last
    step. A function of the step alone, so a resumed training continues the same schedule."""
    lr = tc.lr * min(1.0, (step + 1) / max(1, tc.warmup_steps))
    decay_steps = steps - tc.warmup_steps
    if tc.lr_schedule == "cosine" and decay_steps > 0:
        done = min(1.0, max(0, step + 1 - tc.warmup_steps) / decay_steps)
        lr *= tc.lr_final + (1 - tc.lr_final) * 0.5 * (1 + math.cos(math.pi * done))
    return lr


def train(cfg: Config, data_dirs: Sequence[Path | str], out_dir: Path | str,
          init: Path | str | None = None, generation: int = 0,
          on_progress: Callable[[int, int], None] | None = None,
          run: RunInfo | None = None, weights: Sequence[float] | None = None,
          keep: Sequence[float] = ()) -> Path:
    """Train from `init` (or from scratch) on `data_dirs`; returns the checkpoint folder.

    Re-running into the same `out_dir` with the same config resumes from its checkpoint.
    `weights` (one per data folder) scale how often each folder's decisions are drawn.
    `on_progress(step, steps)` is called about every 5% of the steps. The weights at each
    fraction `keep` of the steps are also kept, at `candidate_path(out_dir, step, steps)`."""
    tc, mc, dc = cfg.train, cfg.model, cfg.damping
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT_DIR
    device = resolve_device(tc.device)
    check_precision(tc.precision, device)
    check_compile(tc.compile, device)
    # Always set: playing a checkpoint earlier in this process set torch to `policy.threads`.
    torch.set_num_threads(tc.threads or threads_before_play())
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    data = OfflineData(data_dirs, build_reward(cfg.reward), tc.reward_scale, weights)
    # a fine-tune's critic first learns the new data with the policy held (`critic_warmup`)
    warmup = tc.critic_warmup if init is not None else 0
    steps = warmup + total_steps(tc, data, mc.context)
    keep_steps = candidate_steps(keep, steps)
    model = PolicyModel(mc)
    parent = None
    if init is not None:
        start_model, _ = load_checkpoint(init, expected=mc)
        model.load_state_dict(start_model.state_dict())
        parent = str(Path(init).resolve())
    else:  # from scratch: the input scales come from this data, and stay with every descendant
        model.set_num_stats(*data.num_stats(slot_symmetric=tc.augment))
    model.to(device)
    ref = copy.deepcopy(model).requires_grad_(False).eval()  # π_ref: where this training started
    # train.ema: the weights played and saved are an average, the optimizer steps `model`
    average = copy.deepcopy(model).requires_grad_(False) if tc.ema else None
    played = average if average is not None else model
    opt = torch.optim.AdamW(param_groups(model), lr=tc.lr, weight_decay=tc.weight_decay)
    controller = DampingController(dc, warmup_steps=tc.warmup_steps)
    detector = EntropyCollapseDetector(dc.collapse_window, dc.max_entropy_drop_per_step,
                                       smoothing=dc.smoothing)
    start = _resume(ckpt_path, cfg, model, opt, controller, detector, rng, average)
    if start >= steps:
        log.info("%s is already trained (%d steps)", ckpt_path, start)
        return ckpt_path
    losses = torch.compile(step_losses) if tc.compile else step_losses
    gammas = torch.tensor(mc.gammas, dtype=torch.float32, device=device)
    meta = CheckpointMeta(model=asdict(mc), generation=generation, parent=parent,
                          config_hash=cfg.hash())
    logger = MetricsLogger(out_dir / METRICS, cfg.logger, run=run, job_type="train",
                           config={**cfg.to_dict(), "config_hash": cfg.hash(),
                                   "generation": generation, "parent": parent},
                           wandb_mode=cfg.wandb_mode, truncate_after_step=start)
    recent: list[dict[str, float]] = []
    bar = _progress(tc.progress, steps, start)
    t0 = time.monotonic()
    arithmetic = contextlib.ExitStack()
    arithmetic.enter_context(tf32_matmuls(tc.precision == "tf32"))
    # on CUDA, deterministic matrix products would need CUBLAS_WORKSPACE_CONFIG set beforehand
    arithmetic.enter_context(deterministic_kernels(device.type == "cpu"))
    try:
        for step in range(start, steps):
            batch = data.sample(tc.batch_size, mc.context, rng)
            batch = (permute_batch(batch, rng) if tc.augment else batch).to(device)
            lr = learning_rate(tc, step, steps)
            for group in opt.param_groups:  # the controller steers the actor's step only
                group["lr"] = lr * (controller.state.lr_scale if group["name"] == "actor" else 1.0)
            holding = step < warmup
            # damping's schedules and controller count the actor's steps, after any warmup
            actor_step = max(0, step - warmup)
            kl_coef, ent_coef = controller.kl_coef(actor_step), controller.ent_coef(actor_step)
            # KL(π_after ‖ π_before) and KL(π ‖ π_ref) each cost a forward pass: every step when
            # the controller steers by them, else every KL_MEASURE_EVERY steps, for the curves
            measured = (dc.adaptive or (step + 1) % KL_MEASURE_EVERY == 0 or step + 1 == steps)
            with autocast(tc.precision, device):
                needs_ref = kl_coef > 0 or measured or tc.q_beta > 0 or holding
                out = compute_losses(model, ref if needs_ref else None, batch, tc,
                                     gammas, kl_coef, ent_coef, losses, holding)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip).item()
            opt.step()
            model.update_targets(tc.tau)
            if average is not None:
                update_average(average, model, tc.ema)
            with autocast(tc.precision, device):
                kl_step = (step_kl(model, batch, out.logp, dc.kl_measure_windows) if measured
                           else None)
            action = ("off" if kl_step is None or holding
                      else controller.update(kl_step, actor_step))
            already_fired = detector.fired_at is not None
            collapse = detector.update(out.metrics["train/entropy"], step + 1)
            if collapse and not already_fired:
                log.warning("Entropy collapse at step %d: smoothed entropy falling %.4f nats/step",
                            step + 1, collapse)
            state = controller.state
            metrics = {**out.metrics, "train/lr": lr, "train/lr_actor": lr * state.lr_scale,
                       "train/grad_norm": grad_norm, "train/entropy_smoothed": detector.smoothed,
                       **({"train/critic_warmup": float(holding)} if warmup else {}),
                       **({"damping/kl_step": kl_step} if kl_step is not None else {}),
                       **({"damping/kl_ema": state.kl_ema}
                          if action in ("damp", "loosen", "hold") else {}),
                       "damping/kl_coef": kl_coef, "damping/ent_coef": ent_coef,
                       "damping/lr_scale": state.lr_scale, "damping/kl_scale": state.kl_scale,
                       "damping/control": {"damp": -1, "loosen": 1}.get(action, 0),
                       "damping/entropy_collapse": collapse}
            logger.log(step + 1, metrics)
            recent = (recent + [metrics])[-50:]
            if bar is not None:
                bar.update(1)
                if (step + 1) % 25 == 0:
                    bar.set_postfix(critic=f"{metrics['train/critic_loss']:.3f}",
                                    bc=f"{metrics['train/bc_loss']:.3f}",
                                    ent=f"{metrics['train/entropy']:.2f}")
            if on_progress is not None and ((step + 1) % max(1, steps // 20) == 0
                                            or step + 1 == steps):
                on_progress(step + 1, steps)
            if step + 1 in keep_steps and step + 1 < steps:
                save_checkpoint(candidate_path(out_dir, step + 1, steps), played,
                                replace(meta, step=step + 1, metrics=_summary(recent),
                                        created_at=""))  # its own time, not the last save's
            if (step + 1) % tc.checkpoint_every == 0 or step + 1 == steps:
                logger.flush()
                meta.step = step + 1
                meta.metrics = _summary(recent)
                save_checkpoint(ckpt_path, played, meta,
                                train_state=_train_state(opt, controller, detector, rng, step + 1,
                                                         model if average is not None else None))
        logger.log_artifact(ckpt_path, name=f"{(run.group if run else None) or out_dir.name}"
                            f"-gen-{generation:03d}", type="model",
                            metadata={"generation": generation, "step": steps,
                                      "config_hash": cfg.hash(), **meta.metrics})
    finally:
        arithmetic.close()
        logger.close()
        if bar is not None:
            bar.close()
    seconds = time.monotonic() - t0
    summary = {"steps": steps, "resumed_from": start, "seconds": round(seconds, 2),
               "timesteps_per_s": round((steps - start) * tc.batch_size * mc.context / seconds, 1),
               "decisions_in_data": data.n_steps, "trajectories": data.n_trajectories,
               "parameters": model.n_params(), "device": str(device), **meta.metrics,
               "entropy_collapse_at": detector.fired_at}
    if device.type == "cuda":
        summary["peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    if dc.adaptive:
        summary["damping_checks"] = controller_checks(read_metrics(out_dir / METRICS), dc)
    atomic.write_json(out_dir / SUMMARY, summary)
    return ckpt_path


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", mininterval=1.0)


def _summary(recent: list[dict[str, float]]) -> dict[str, float]:
    keys = ("train/actor_loss", "train/critic_loss", "train/bc_loss", "train/entropy",
            "damping/kl_ref", "damping/kl_step", "train/adv_positive_frac", "train/adv_abs_mean",
            "train/actor_weight_mean")
    return {k: round(float(np.mean(vals)), 6) for k in keys
            if (vals := [m[k] for m in recent if k in m])}


def param_groups(model: PolicyModel) -> list[dict[str, Any]]:
    """The actor head apart from the rest (trunk and critics): the damping controller scales
    the actor's learning rate only, so the critics learn at the same rate in both arms of a
    damping study. The shared trunk stays with the critics for the same reason."""
    actor = [p for p in model.actor.parameters() if p.requires_grad]
    ids = {id(p) for p in actor}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    return [{"params": actor, "name": "actor"}, {"params": rest, "name": "trunk_and_critics"}]


@torch.no_grad()
def update_average(average: PolicyModel, model: PolicyModel, decay: float) -> None:
    """average ← decay·average + (1 − decay)·model, tensor by tensor (integer buffers copied)."""
    for a, m in zip(average.state_dict().values(), model.state_dict().values()):
        if a.is_floating_point():
            a.lerp_(m, 1.0 - decay)
        else:
            a.copy_(m)


def _train_state(opt: torch.optim.Optimizer, controller: DampingController,
                 detector: EntropyCollapseDetector, rng: np.random.Generator, step: int,
                 raw: PolicyModel | None = None
                 ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """What resuming needs beyond the checkpoint's weights; `raw`: the stepped weights, when the
    checkpoint holds their average (`train.ema`)."""
    tensors, scalars = optimizer_state(opt)
    if raw is not None:
        tensors.update({RAW + k: v for k, v in raw.state_dict().items()})
    tensors["rng.torch"] = torch.get_rng_state()
    scalars.update(step=step, numpy_rng=rng.bit_generator.state, damping=asdict(controller.state),
                   entropy_detector=detector.state())
    return tensors, scalars


def _resume(ckpt_path: Path, cfg: Config, model: PolicyModel, opt: torch.optim.Optimizer,
            controller: DampingController, detector: EntropyCollapseDetector,
            rng: np.random.Generator, average: PolicyModel | None = None) -> int:
    """Continue from the run's own checkpoint, if it has one; return the step reached. With
    `average` (train.ema), the checkpoint's weights are the average and the stepped weights come
    from the train state."""
    if not (ckpt_path / "checkpoint.json").exists():
        return 0
    meta = read_meta(ckpt_path)
    if meta.config_hash != cfg.hash():
        raise CheckpointError(f"{ckpt_path} was trained with another config (hash "
                              f"{meta.config_hash}, now {cfg.hash()}); use another out= folder.")
    state = load_train_state(ckpt_path)
    if state is None:
        return meta.step
    trained, _ = load_checkpoint(ckpt_path, expected=cfg.model)
    tensors, scalars = state
    if average is not None:
        average.load_state_dict(trained.state_dict())
        trained.load_state_dict({k[len(RAW):]: v for k, v in tensors.items() if k.startswith(RAW)})
    model.load_state_dict(trained.state_dict())
    try:
        restore_optimizer(opt, tensors, scalars)
    except ValueError as e:  # e.g. parameters laid out differently by another version of the code
        raise CheckpointError(f"{ckpt_path}: its optimizer state does not fit this model ({e}); "
                              f"use another out= folder, or init= this checkpoint.") from e
    torch.set_rng_state(tensors["rng.torch"])
    rng.bit_generator.state = scalars["numpy_rng"]
    controller.state = DampingState(**scalars["damping"])
    detector.load(scalars.get("entropy_detector"))
    log.info("Resuming %s from step %d", ckpt_path, scalars["step"])
    return int(scalars["step"])
