"""Typed configuration: dataclass schemas registered in Hydra's ConfigStore; YAML only picks values.

`load_config(["collect.battles=20", "reward=binary"])` is the one way the CLI, the tests and the
flow build a config, so a wrong type, an unknown key or an out-of-range value fails here, before
any battle starts, with a message that names the key.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
RECORD_CHOICES = ("both", "p1", "p2")
BACKEND_CHOICES = ("direct", "showdown")
EXPLORE_CHOICES = ("uniform", "critic")
RUN_KEYS = ("generations", "run_name", "runs_dir", "logger", "wandb_mode", "runner",
            "dask_address", "study")
EVAL_KEYS = ("eval", "elo")
"""Only change how a run is measured: a change re-evaluates in place, never retrains."""
SPEED_KEYS = ("collect.shard_battles", "collect.max_server_restarts", "collect.simulators",
              "train.progress",
              "train.threads", "train.checkpoint_every", "policy.threads")
"""Only change how fast, how often or how visibly the same results are made."""
HASH_OMITTED_AT = {"train.precision": "fp32", "train.adv_margin": 0.0, "train.ema": 0.0,
                   "train.first_steps": 0, "train.first_lr": 0.0, "damping.generations": 0,
                   "train.critic_warmup": 0, "train.first_critic_warmup": 0,
                   "train.lr_schedule": "constant", "train.lr_final": 0.1, "train.q_beta": 0.0,
                   "train.search_weight": 1.0, "train.search_beta": 0.0, "train.td_lambda": 0.0,
                   "train.augment": False, "collect.search_rate": 0.0,
                   "collect.search_forks": 8, "collect.search_depth": 3,
                   "collect.search_z": 0.0, "collect.search_top_k": 0,
                   "collect.search_hidden": False, "policy.search_pool": "",
                   "policy.search_rate": 0.0, "policy.search_forks": 8, "policy.search_depth": 3,
                   "policy.search_z": 0.0, "policy.search_top_k": 0,
                   "collect.explore": "uniform", "policy.explore": "uniform",
                   "team_remix": 0,
                   "gate.battles": 0, "gate.candidates": [1.0], "gate.min_win_rate": 0.5,
                   "gate.team_set": "gen1ou_select", "gate.lineage": "chosen", "gate.learners": 1}
"""Knobs added after runs were made: at these values they are left out of the hash, so a run made
before the knob existed keeps its folder and resumes."""
RUNNERS = ("auto", "threads", "processes", "dask")
PRECISIONS = ("fp32", "tf32", "bf16")
LR_SCHEDULES = ("constant", "cosine")
LINEAGES = ("chosen", "learner")


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key at fault and how to fix it."""


def _check(ok: bool, key: str, value: Any, requirement: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is out of range: it must be {requirement}.")


@dataclass
class CollectConfig:
    """How battles are played and recorded."""

    battles: int = 100
    """Total battles to play (split over `parallel_instances`)."""
    backend: str = "direct"
    """Where battles run: `direct` (the simulator in a Node process fed over stdin/stdout: no
    server, seeded battles, faster) or `showdown` (a local Showdown server over websockets)."""
    concurrency: int = 10
    """Battles in flight at once per instance."""
    parallel_instances: int = 1
    """Independent shards, each with its own Showdown server and players (one process each)."""
    simulators: int = 1
    """Simulator processes per instance on the direct backend (battles go to the least busy):
    one Python process then plays while a simulator works. Battles are seeded on their own, so
    the data does not depend on it. The showdown backend takes 1 only."""
    p1: str = "simple_heuristics"
    """Player on side 1: random, max_base_power, simple_heuristics, or checkpoint:PATH."""
    p2: str = "random"
    """Player on side 2: as p1, or `self` for a copy of p1 (self-play)."""
    record: str = "both"
    """Whose trajectories are recorded: both, p1 or p2."""
    battle_timeout_s: float = 300.0
    """A battle still running after this long is forfeited and marked truncated."""
    shard_battles: int = 50
    """Battles per Parquet shard: a crash loses at most the battles not yet in a shard."""
    max_server_restarts: int = 3
    """Server crashes tolerated per instance before collection gives up."""
    temperature: float = 1.0
    """Sampling temperature of the learner while it plays for training data (exploration);
    evaluation plays at `policy.temperature`."""
    epsilon: float = 0.0
    """Share of the learner's training-data decisions taken uniformly among the legal actions
    (exploration that a peaked policy's temperature does not give); evaluation plays at
    `policy.epsilon`."""
    explore: str = "uniform"
    """What an exploratory decision takes: `uniform`, any legal action alike; `critic`, the
    legal action the policy's own critic rates highest among those the policy did not choose
    (its best challenger, tried so that the data says whether the critic is right)."""
    search_rate: float = 0.0
    """Share of the learner's training-data decisions checked by one-step search in the
    simulator: where the search's best choice beats the policy's own (`search_z`), it is played
    instead and flagged (expert iteration: the learner clones it, `train.search_weight`).
    The search forks the battle and plays `search_forks` short heuristic rollouts of
    `search_depth` turns per legal choice; its forks see both teams (metamon_sp/search.py).
    Direct backend only; ~0.15 s of a simulator per searched decision."""
    search_forks: int = 8
    search_depth: int = 3
    search_z: float = 0.0
    """A searched decision is the search's only where its best choice beats the policy's own
    choice by more than this many standard errors of their paired per-fork difference (the
    forks share their dice); elsewhere the policy's choice stands, unflagged. 0: wherever the
    best choice's mean is higher."""
    search_top_k: int = 0
    """Search only the policy's `search_top_k` likeliest choices and its own (a policy prior:
    fewer rollouts per decision); 0 searches every legal choice."""
    search_hidden: bool = False
    """An information-set search: every fork first redraws the opponent's Pokémon not yet seen
    from the sets of the training teams (`team_set`), so a searched label depends only on what
    the learner has seen (and the true moves of the opponent's seen Pokémon)."""

    def __post_init__(self) -> None:
        _check(self.battles >= 1, "collect.battles", self.battles, ">= 1")
        _check(1 <= self.concurrency <= 256, "collect.concurrency", self.concurrency, "in [1, 256]")
        _check(1 <= self.parallel_instances <= 64, "collect.parallel_instances",
               self.parallel_instances, "in [1, 64]")
        _check(1 <= self.simulators <= 16, "collect.simulators", self.simulators, "in [1, 16]")
        _check(self.simulators == 1 or self.backend == "direct", "collect.simulators",
               self.simulators, "1 with collect.backend=showdown (several are a direct-backend "
               "feature)")
        _check(self.record in RECORD_CHOICES, "collect.record", self.record,
               f"one of {', '.join(RECORD_CHOICES)}")
        _check(self.backend in BACKEND_CHOICES, "collect.backend", self.backend,
               f"one of {', '.join(BACKEND_CHOICES)}")
        _check(self.battle_timeout_s > 0, "collect.battle_timeout_s", self.battle_timeout_s, "> 0")
        _check(self.shard_battles >= 1, "collect.shard_battles", self.shard_battles, ">= 1")
        _check(self.max_server_restarts >= 0, "collect.max_server_restarts",
               self.max_server_restarts, ">= 0")
        _check(self.temperature > 0, "collect.temperature", self.temperature, "> 0")
        _check(0 <= self.epsilon <= 1, "collect.epsilon", self.epsilon, "in [0, 1]")
        _check(self.explore in EXPLORE_CHOICES, "collect.explore", self.explore,
               f"one of {', '.join(EXPLORE_CHOICES)}")
        _check(0 <= self.search_rate <= 1, "collect.search_rate", self.search_rate, "in [0, 1]")
        _check(self.search_rate == 0 or self.backend == "direct", "collect.search_rate",
               self.search_rate, "0 with collect.backend=showdown (the search forks the "
               "simulator's own battles: set collect.backend=direct)")
        _check(self.search_forks >= 1, "collect.search_forks", self.search_forks, ">= 1")
        _check(self.search_depth >= 1, "collect.search_depth", self.search_depth, ">= 1")
        _check(self.search_z >= 0, "collect.search_z", self.search_z, ">= 0")
        _check(self.search_top_k >= 0, "collect.search_top_k", self.search_top_k, ">= 0")


@dataclass
class FilterConfig:
    """Which recorded trajectories are kept for training."""

    max_invalid_rate: float = 0.05
    """Drop a trajectory whose invalid orders per decision exceed this."""
    balance_outcomes: bool = False
    """Downsample the majority of wins/losses so both counts are equal."""
    min_turns: int = 1
    """Drop battles shorter than this many turns."""
    drop_truncated: bool = True
    """Drop battles forfeited by the timeout or otherwise unfinished."""
    drop_errors: bool = True
    """Drop battles in which the server reported an error other than an invalid choice."""

    def __post_init__(self) -> None:
        _check(0.0 <= self.max_invalid_rate <= 1.0, "filter.max_invalid_rate",
               self.max_invalid_rate, "in [0, 1]")
        _check(self.min_turns >= 0, "filter.min_turns", self.min_turns, ">= 0")


@dataclass
class RewardConfig:
    """Weights of the per-turn reward, computed at load time from stored per-turn facts.

    r_t = hp·(damage dealt + own HP gained) + status·(status inflicted − received)
          + faint·(opponent faints − own faints), plus `win`/`loss` at the end (HP in fractions).
    """

    name: str = "default_shaped"
    hp: float = 1.0
    status: float = 0.5
    faint: float = 1.0
    win: float = 100.0
    loss: float = -100.0


@dataclass
class ModelConfig:
    """Sizes of the policy network (Hydra group `model/`)."""

    name: str = "tiny"
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    emb_dim: int = 8
    """Embedding width of each categorical column."""
    context: int = 32
    """Turns the transformer sees (training windows and live play alike)."""
    mlp_mult: int = 4
    dropout: float = 0.0
    n_critics: int = 2
    gammas: list[float] = field(default_factory=lambda: [0.99])
    """Discount factors; the first drives the actor's advantages, others are auxiliary."""

    def __post_init__(self) -> None:
        _check(self.d_model % self.n_heads == 0, "model.d_model", self.d_model,
               f"a multiple of model.n_heads ({self.n_heads})")
        _check(self.n_critics >= 2, "model.n_critics", self.n_critics,
               ">= 2 (TD targets take the min of two target critics)")
        _check(self.context >= 2, "model.context", self.context, ">= 2")
        _check(len(self.gammas) >= 1 and all(0 < g < 1 for g in self.gammas), "model.gammas",
               self.gammas, "a non-empty list of discount factors in (0, 1)")


@dataclass
class DampingConfig:
    """Hydra group `damping/`: `none` (the control) or `dynamic`."""

    name: str = "none"
    generations: int = 0
    """Damp only the first this many fine-tunes (1: generation 1's alone, the step from generation
    0's imitation that moves furthest from its parent; later ones train undamped); 0: every
    generation. Damping S45's first step stopped its fall, not the run's gain (docs/strength.md,
    D1)."""
    kl_coef_init: float = 0.0
    kl_power_alpha: float = 0.5
    ent_coef_init: float = 0.0
    ent_power_alpha: float = 0.7
    time_scale: float = 1000.0
    """T in the power laws, in optimizer steps."""
    adaptive: bool = False
    """Adapt learning rate and β from the measured per-step KL."""
    target_kl_per_step: float = 0.0005
    """Calibrated per scale to what the undamped learner measures (`conf/scale/*.yaml`,
    `benchmarks/calibrate_damping.py`): a target the learner never reaches only pins the scales
    to a bound."""
    kl_tolerance: float = 1.5
    smoothing: float = 0.05
    """Weight of the newest step in the moving averages of the per-step KL (which the controller
    steers by) and of the entropy (which the collapse detector watches)."""
    kl_measure_windows: int = 8
    """The per-step KL is measured on this many windows of the batch (0: all of it): the moving
    average needs no more, and a full extra forward pass per step made damped training ~1.7x
    slower than the control (docs/studies/damping.md)."""
    lr_factor: float = 1.02
    """Multiplier applied to (or divided from) the actor's learning-rate scale per step outside
    the band: small, since the smoothed KL answers a change only after ~1/smoothing steps."""
    kl_coef_factor: float = 1.02
    lr_scale_min: float = 0.05
    lr_scale_max: float = 4.0
    """The factor moves the actor head's rate alone (the trunk and critics keep theirs), a weak
    lever on the policy's step: the first fine-tune needs ~3x to reach its band, and at a cap
    of 2 it sat at the cap for 30-84% of steps (docs/studies/damping.md)."""
    kl_scale_min: float = 0.1
    kl_scale_max: float = 10.0
    collapse_window: int = 200
    """Steps over which the entropy-collapse detector measures the fall of entropy."""
    max_entropy_drop_per_step: float = 0.005
    """Entropy falling faster than this (nats per step, over the window) is recorded as a warning."""

    def __post_init__(self) -> None:
        _check(self.generations >= 0, "damping.generations", self.generations,
               ">= 0 (0: every generation is damped)")
        for key in ("kl_coef_init", "ent_coef_init", "kl_power_alpha", "ent_power_alpha"):
            _check(getattr(self, key) >= 0, f"damping.{key}", getattr(self, key), ">= 0")
        _check(self.time_scale > 0, "damping.time_scale", self.time_scale, "> 0")
        _check(self.target_kl_per_step > 0, "damping.target_kl_per_step",
               self.target_kl_per_step, "> 0")
        _check(self.kl_tolerance > 1, "damping.kl_tolerance", self.kl_tolerance, "> 1")
        _check(0 < self.smoothing <= 1, "damping.smoothing", self.smoothing, "in (0, 1]")
        _check(self.kl_measure_windows >= 0, "damping.kl_measure_windows",
               self.kl_measure_windows, ">= 0")
        _check(self.lr_factor > 1, "damping.lr_factor", self.lr_factor, "> 1")
        _check(self.kl_coef_factor > 1, "damping.kl_coef_factor", self.kl_coef_factor, "> 1")
        _check(0 < self.lr_scale_min <= 1 <= self.lr_scale_max, "damping.lr_scale_min/max",
               (self.lr_scale_min, self.lr_scale_max), "0 < min <= 1 <= max")
        _check(0 < self.kl_scale_min <= 1 <= self.kl_scale_max, "damping.kl_scale_min/max",
               (self.kl_scale_min, self.kl_scale_max), "0 < min <= 1 <= max")
        _check(self.collapse_window >= 2, "damping.collapse_window", self.collapse_window, ">= 2")


@dataclass
class TrainConfig:
    """The offline actor-critic learner."""

    steps: int = 2000
    """Optimizer steps (unless `epochs` > 0)."""
    epochs: float = 0.0
    """If > 0: steps = epochs × decisions in the data / (batch_size × model.context)."""
    first_steps: int = 0
    """Steps of generation 1's fine-tune alone, the first from generation 0's imitation of the
    heuristics (0: `steps`, or `epochs`). That step moves furthest from its parent (KL 1.5–2.1
    nats at the laptop scale against 0.24–0.88 later) and sometimes falls; shortening it to
    3,000 of S45's 4,500 steps made the run weaker (docs/strength.md, F30)."""
    first_lr: float = 0.0
    """Learning rate of generation 1's fine-tune alone (0: `lr`). A third of `lr` left that
    step's KL to generation 0 as it was and the run no stronger (docs/strength.md, FLR)."""
    critic_warmup: int = 0
    """Steps at the start of every fine-tune (from a parent, not from scratch) in which only the
    critic learns the new data, the policy held at its parent (the actor's loss is KL(π_ref ‖ π),
    since the trunk is shared); `steps` actor-critic steps follow. A parent's critic has not seen
    its own games: in AUG's first fine-tune its mean Q drifted by 0.36 over the whole training,
    and the policy's KL to its parent climbed from 0.3 to 3 nats as it did (docs/strength.md,
    CW). `gate.candidates`' fractions count these steps too."""
    first_critic_warmup: int = 0
    """`critic_warmup` for generation 1's fine-tune alone (0: `critic_warmup`). 3,000 on AUG's
    recipe (`experiment=strong`): the first steps gained +77 and +35 Elo where they had fallen
    −136 and −99, and five generations +179 and +196 (docs/strength.md, CW)."""
    batch_size: int = 32
    lr: float = 3e-4
    lr_schedule: str = "constant"
    """After the warmup: constant (`lr` to the last step) or cosine (from `lr` down to
    `lr_final`·`lr` at the last step, the end of a fine-tune taken in small steps). Cosine
    made S45's loop no stronger (docs/strength.md, COS)."""
    lr_final: float = 0.1
    """The cosine schedule's last learning rate, as a fraction of `lr`."""
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0
    reward_scale: float = 0.01
    """Rewards are multiplied by this before TD learning (±100 at the end → ±1)."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    actor_filter: str = "binary"
    """Advantage filter of the behaviour-cloning term: binary (A > 0), exp (exp(A/β)), none."""
    exp_beta: float = 1.0
    exp_max_weight: float = 20.0
    explored_margin: float = 0.0
    """An exploratory decision (`collect.epsilon`) is cloned only when its advantage exceeds this
    (scaled reward units; 0: like any other decision). It always trains the critic."""
    adv_margin: float = 0.0
    """The policy's own (not exploratory) decisions are cloned only when their advantage exceeds
    this: where the policy is sure, A sits at the critic's noise around 0 (docs/strength.md, R1),
    and a coin-toss A > 0 clones half of them."""
    ema: float = 0.0
    """Polyak averaging of the weights over the training's steps: each step average ←
    ema·average + (1 − ema)·weights, and the checkpoint (and each gate candidate) holds the
    average, the end of a fine-tune without the noise of its last steps (0.995: about the last
    200 steps). 0: off, the last step's weights."""
    search_weight: float = 1.0
    """Behaviour-cloning weight of decisions the simulator search chose (`collect.search_rate`):
    they are cloned whatever the critic's advantage says; and the weight of `search_beta`'s
    term."""
    search_beta: float = 0.0
    """Where > 0, every searched decision also teaches the search's values of all its choices,
    not only its pick: the actor is cloned towards π_T ∝ π_b·exp(β·(v − max v)) over the legal
    actions, π_b the policy's probabilities when it played (an action the search did not value
    counts the π_b-weighted mean of those it did): the KL-regularised improvement of π_b by the
    search's values, so near-equal values leave π_b as it was, whatever their noise. Values
    are rollout scores in [0, 1], one Pokémon's worth ~1/12. 0: off."""
    pi_coef: float = 0.0
    """Weight of the policy-improvement term −E_π Q."""
    q_beta: float = 0.0
    """Where > 0, the actor also learns, at every decision and over all its legal actions, the
    parent's policy improved by the critic: π_T ∝ π_ref·exp(β·(Q − max Q)), the maximiser of
    E_π Q − KL(π ‖ π_ref)/β (the E-step of MPO, with the generation's parent as the prior), by
    cross-entropy at weight 1. It reaches the actions the data did not take, which the
    advantage filter cannot; Q in scaled reward units (a decision's advantages ~0.02). Costs
    the parent's forward pass per step. At 50 it held each generation next to its parent and
    the loop gained less (docs/strength.md, QB). 0: off."""
    td_lambda: float = 0.0
    """The critic's targets as λ-returns inside the window: y_t = r_t + γ((1 − λ) V̄(s_{t+1}) +
    λ y_{t+1}), the trace cut (to the one-step target) where the next action was exploratory or
    the window ends, so that the returns follow the policy's own play. Less of the target
    critic's own error in every target, more of the games' luck. 0.7, screened at two
    generations on two seeds, was no different (docs/strength.md, TD(λ)). 0: one-step TD."""
    augment: bool = False
    """Train each window under random relabelings of the game's symmetries: own slots, opponent
    slots, move slots (`metamon_sp/augment.py`), with the input normalisation pooled over each
    kind's slots when the model starts from scratch. The order a team or moveset is listed in
    is then nothing a policy can lean on. S45 with it (2 seeds): 92.2% and 91.2% against
    `max_base_power` on held-out teams, the Elo gain as before, and a first fine-tune that fell
    on both seeds (docs/strength.md, AUG), which `first_critic_warmup` fixes (CW)."""
    critic_coef: float = 1.0
    device: str = "auto"
    """cpu, cuda, or auto (cuda when present)."""
    compile: bool = False
    """`torch.compile` the training step (its losses and metrics as one graph). On CPU it runs in
    deterministic kernels, so a seed's run still replays exactly: 1.6–1.8× the steps/s of the
    uncompiled step on 2 cores; the first compile costs ~30 s, later processes read the compiled
    code from torch's cache (docs/strength.md)."""
    precision: str = "fp32"
    """Arithmetic of the training step on CUDA: fp32; tf32 (TF32 matrix products); bf16 (bfloat16
    autocast: weights, gradients and optimizer stay fp32). On an H100, `model=large`: tf32 3.3×,
    bf16 4.7× the steps/s of fp32 (docs/strength.md). CPU training takes fp32 only."""
    threads: int = 0
    """torch CPU threads (0: torch's default)."""
    checkpoint_every: int = 500
    progress: bool = True

    def __post_init__(self) -> None:
        _check(self.steps >= 1, "train.steps", self.steps, ">= 1")
        _check(self.epochs >= 0, "train.epochs", self.epochs, ">= 0")
        _check(self.first_steps >= 0, "train.first_steps", self.first_steps,
               ">= 0 (0: generation 1 trains `train.steps` like the others)")
        _check(self.first_lr >= 0, "train.first_lr", self.first_lr,
               ">= 0 (0: generation 1 trains at `train.lr` like the others)")
        _check(self.critic_warmup >= 0, "train.critic_warmup", self.critic_warmup,
               ">= 0 (0: the actor learns from the first step)")
        _check(self.first_critic_warmup >= 0, "train.first_critic_warmup",
               self.first_critic_warmup, ">= 0 (0: generation 1 takes `train.critic_warmup`)")
        _check(self.batch_size >= 1, "train.batch_size", self.batch_size, ">= 1")
        _check(self.lr > 0, "train.lr", self.lr, "> 0")
        _check(self.lr_schedule in LR_SCHEDULES, "train.lr_schedule", self.lr_schedule,
               "one of " + ", ".join(LR_SCHEDULES))
        _check(0 <= self.lr_final <= 1, "train.lr_final", self.lr_final, "in [0, 1]")
        _check(0 < self.tau <= 1, "train.tau", self.tau, "in (0, 1]")
        _check(0 <= self.td_lambda < 1, "train.td_lambda", self.td_lambda, "in [0, 1)")
        _check(self.actor_filter in ("binary", "exp", "none"), "train.actor_filter",
               self.actor_filter, "one of binary, exp, none")
        _check(self.explored_margin >= 0, "train.explored_margin", self.explored_margin, ">= 0")
        _check(self.adv_margin >= 0, "train.adv_margin", self.adv_margin, ">= 0")
        _check(0 <= self.ema < 1, "train.ema", self.ema, "in [0, 1)")
        _check(self.search_weight >= 0, "train.search_weight", self.search_weight, ">= 0")
        _check(self.search_beta >= 0, "train.search_beta", self.search_beta, ">= 0")
        _check(self.q_beta >= 0, "train.q_beta", self.q_beta, ">= 0")
        _check(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
               "train.device", self.device, "auto, cpu, cuda or cuda:N")
        _check(self.checkpoint_every >= 1, "train.checkpoint_every", self.checkpoint_every, ">= 1")
        _check(self.precision in PRECISIONS, "train.precision", self.precision,
               "one of " + ", ".join(PRECISIONS))


@dataclass
class PolicyConfig:
    """How a checkpoint plays (`checkpoint:PATH` players)."""

    temperature: float = 1.0
    greedy: bool = False
    epsilon: float = 0.0
    """Probability of an exploratory legal action (see `explore`) instead of the policy's choice."""
    explore: str = "uniform"
    """uniform or critic: see `collect.explore`."""
    batched: bool = True
    """One forward pass serves every battle of the process waiting for a decision."""
    max_batch: int = 256
    device: str = "cpu"
    threads: int = 1
    """torch threads for inference (the Showdown server needs a core too)."""
    search_rate: float = 0.0
    """Set from `collect.search_rate` while the learner collects its training data; evaluation
    never searches (the search sees the opponent's team)."""
    search_forks: int = 8
    search_depth: int = 3
    search_z: float = 0.0
    search_top_k: int = 0
    search_pool: str = ""
    """A team set the search draws the opponent's unseen Pokémon from (`collect.search_hidden`)."""

    def __post_init__(self) -> None:
        _check(self.temperature > 0, "policy.temperature", self.temperature, "> 0")
        _check(0 <= self.epsilon <= 1, "policy.epsilon", self.epsilon, "in [0, 1]")
        _check(self.explore in EXPLORE_CHOICES, "policy.explore", self.explore,
               f"one of {', '.join(EXPLORE_CHOICES)}")
        _check(self.max_batch >= 1, "policy.max_batch", self.max_batch, ">= 1")
        _check(0 <= self.search_rate <= 1, "policy.search_rate", self.search_rate, "in [0, 1]")


@dataclass
class PoolConfig:
    """Who generation k−1 plays to make generation k's data (the league): itself, earlier
    generations and the baselines, battles shared in proportion to these weights. Its own side
    is always recorded; the manifest and `pool.json` say who played whom."""

    self_play: float = 1.0
    """Weight of battles against itself (both sides recorded: both are the learner). With no
    other opponent yet (generation 1 has no earlier generation), a generation plays itself."""
    previous: float = 0.0
    """Weight of battles against earlier generations, shared among the latest `previous_k`."""
    previous_k: int = 3
    prioritised: bool = False
    """Share `previous` by how often each earlier generation beat the current one in the current
    one's evaluation (prioritised fictitious self-play), not evenly."""
    baselines: dict[str, float] = field(default_factory=dict)
    """Weights of heuristic opponents, e.g. {simple_heuristics: 0.25}."""
    record_opponents: bool = False
    """Also keep the opponents' side of pool battles as training data."""

    def __post_init__(self) -> None:
        weights = {"self_play": self.self_play, "previous": self.previous, **{
            f"baselines.{k}": v for k, v in self.baselines.items()}}
        for key, w in weights.items():
            _check(w >= 0, f"pool.{key}", w, ">= 0")
        _check(self.self_play + self.previous + sum(self.baselines.values()) > 0,
               "pool.self_play", self.self_play, "> 0, or another pool weight > 0")
        _check(self.previous_k >= 1, "pool.previous_k", self.previous_k, ">= 1")


@dataclass
class GateConfig:
    """Generation k is chosen by match play (AlphaGo Zero's evaluator): each candidate, the end of
    its training or a checkpoint part-way through it, plays generation k−1 on `team_set` (a split
    held out from training and from evaluation alike), and the one winning most becomes generation
    k, provided it wins at least `min_win_rate`; else generation k−1 carries on as generation k.
    Off at 0 battles."""

    battles: int = 0
    """Games each candidate plays against generation k−1 (mirrored team pairs; 0: no gate, the
    end of training is generation k)."""
    candidates: list[float] = field(default_factory=lambda: [1.0])
    """Where in the training the candidates are taken, as fractions of its steps (1.0: the end)."""
    min_win_rate: float = 0.5
    """The best candidate's win rate against generation k−1 needed to replace it."""
    team_set: str = "gen1ou_select"
    """The teams the gate plays on: by default the selection split, which neither collection nor
    evaluation uses, so the gate sees how a candidate plays teams it never trained on (on the
    training teams it cannot: docs/strength.md, G) without tuning to the evaluation figures."""
    lineage: str = "chosen"
    """What generation k+1 grows from (its collection's players and its training's start):
    `chosen`, generation k as the gate chose it (a failed fine-tune is dropped and the parent
    trains again); or `learner`, the learner's own last fine-tune whether or not it passed, so the
    loop learns as it would without a gate and the gate only decides what is released as
    generation k (rated, evaluated, the next gate's parent). AlphaGo Zero's learner, too, kept
    training from its own weights while a candidate had to beat the best player to replace it."""
    learners: int = 1
    """Fine-tunes of generation k, each from generation k−1 on the same data with a seed of its
    own (the first with the run's, as with one), every one's candidates played at the gate, the
    best released: selection among learners whose results spread from seed to seed
    (docs/strength.md). Learner i ≥ 2 trains in `gen-NNN/train-i/`. Needs the gate and
    `lineage=chosen` (with `learner`, which of them would the next generation grow from?)."""

    def __post_init__(self) -> None:
        _check(self.battles >= 0, "gate.battles", self.battles, ">= 0")
        _check(bool(self.candidates) and all(0 < f <= 1 for f in self.candidates),
               "gate.candidates", self.candidates, "a non-empty list of fractions in (0, 1]")
        _check(0 <= self.min_win_rate <= 1, "gate.min_win_rate", self.min_win_rate, "in [0, 1]")
        _check(self.lineage in LINEAGES, "gate.lineage", self.lineage, f"one of {LINEAGES}")
        _check(self.learners >= 1, "gate.learners", self.learners, ">= 1")
        if self.learners > 1 and not (self.battles and self.lineage == "chosen"):
            raise ConfigError(
                f"gate.learners={self.learners} trains several fine-tunes for the gate to choose "
                f"among, but gate.battles={self.battles} and gate.lineage={self.lineage!r}: set "
                "gate.battles > 0 and gate.lineage=chosen, or gate.learners=1.")


@dataclass
class BootstrapConfig:
    """Generation 0: heuristic battles, then the learner from scratch."""

    battles: int = 400
    """Total battles, split evenly over the matchups."""
    train_steps: int = 0
    """Optimizer steps of generation 0's training from scratch (0: `train.steps`, as every
    generation's fine-tune)."""
    matchups: list[str] = field(default_factory=lambda: [
        "simple_heuristics:simple_heuristics", "max_base_power:max_base_power",
        "simple_heuristics:max_base_power", "max_base_power:simple_heuristics"])

    def __post_init__(self) -> None:
        _check(self.battles >= len(self.matchups) >= 1, "bootstrap.battles", self.battles,
               ">= the number of bootstrap.matchups")
        _check(self.train_steps >= 0, "bootstrap.train_steps", self.train_steps, ">= 0")
        for m in self.matchups:
            _check(m.count(":") == 1, "bootstrap.matchups", m, "of the form p1:p2")


@dataclass
class EvalConfig:
    """Evaluation: win rates against baselines, earlier generations and a reference."""

    battles: int = 100
    """Battles per opponent (played as mirrored team pairs, seats swapped halfway)."""
    opponents: list[str] = field(default_factory=lambda: [
        "random", "max_base_power", "simple_heuristics"])
    previous_generations: int = 2
    """In a run, also play this many earlier generations (0: none)."""
    reference: str = ""
    """A reference checkpoint for head-to-head (empty: the run's generation 0)."""
    team_set: str = "gen1ou_eval"
    """Teams the evaluation and rating games use: by default the held-out split the pipeline never
    trains on (`team_set` is the training split). A shipped team set by name, or a folder."""

    def __post_init__(self) -> None:
        _check(self.battles >= 1, "eval.battles", self.battles, ">= 1")
        _check(self.previous_generations >= 0, "eval.previous_generations",
               self.previous_generations, ">= 0")


@dataclass
class EloConfig:
    """Ratings (Bradley–Terry maximum likelihood on the Elo scale)."""

    anchor: str = "random"
    anchor_elo: float = 1000.0
    bootstrap: int = 200
    """Resamples for the 95% intervals."""
    games_per_pair: int = 20
    """Tournament budget: games each pair of the pool should have (games already played count)."""
    prior_sigma: float = 3.0
    """Std of the Gaussian prior on strengths (natural units; ≈ 520 Elo): keeps unbeaten finite."""

    def __post_init__(self) -> None:
        _check(self.bootstrap >= 0, "elo.bootstrap", self.bootstrap, ">= 0")
        _check(self.games_per_pair >= 0, "elo.games_per_pair", self.games_per_pair, ">= 0")
        _check(self.prior_sigma > 0, "elo.prior_sigma", self.prior_sigma, "> 0")


@dataclass
class StudyConfig:
    """Hydra group `study/`: arms that branch from one generation 0, several seeds each
    (`metamon-sp study study=damping seeds=3 generations=3`; metamon_sp/study.py)."""

    name: str = ""
    arms: dict[str, list[str]] = field(default_factory=dict)
    """Each arm's Hydra overrides on top of the study's, e.g. {control: [damping=none]}."""
    seeds: int = 3
    """Runs per arm, seeds `seed`, `seed`+1, ..."""
    cross_games_per_pair: int = 20
    """Games between every two runs' final generations, on the evaluation teams, before rating."""
    parallel: int = 1
    """Runs at once when an orchestrator fans them out (1 on 2 cores: one heavy job at a time)."""

    def __post_init__(self) -> None:
        _check(self.seeds >= 1, "study.seeds", self.seeds, ">= 1")
        _check(self.cross_games_per_pair >= 0, "study.cross_games_per_pair",
               self.cross_games_per_pair, ">= 0")
        _check(self.parallel >= 1, "study.parallel", self.parallel, ">= 1")
        for arm in self.arms:
            _check(bool(arm) and "/" not in arm and "=" not in arm, "study.arms", arm,
                   "arm names without '/' or '='")


@dataclass
class Config:
    format: str = "gen1ou"
    """Showdown battle format; the featurizer is built for Gen 1."""
    team_set: str = "gen1ou"
    """A shipped team set by name, or a folder of Showdown-export `.txt` teams."""
    team_remix: int = 0
    """Collection also samples this many teams recombined from `team_set`'s own Pokémon sets
    (six distinct species by usage, each with one of its sets there): more teams to learn from,
    no new set. Never applies to evaluation's teams."""
    seed: int = 0
    scale_name: str = "laptop"
    """Set by the `scale/` group option chosen (smoke, laptop)."""
    collect: CollectConfig = field(default_factory=CollectConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    damping: DampingConfig = field(default_factory=DampingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    elo: EloConfig = field(default_factory=EloConfig)
    study: StudyConfig = field(default_factory=StudyConfig)
    generations: int = 2
    """Self-play generations after generation 0 (a run's length)."""
    run_name: str = "selfplay"
    runs_dir: str = "runs"
    """A run lives in runs_dir/<run_name>-<config hash>/."""
    mix_previous_generations: int = 0
    """Replay window: train generation k on its own filtered data plus that of this many earlier
    generations (generation 0's heuristic data included once the window reaches it)."""
    mix_age_decay: float = 1.0
    """In the replay window, data j generations old is drawn decay^j as often per decision."""
    mix_bootstrap_weight: float = 1.0
    """Extra factor on generation 0's heuristic data in the window (0: leave it out). It holds
    ~3× a generation's decisions (both sides of more battles), so at 1 it outweighs self-play."""
    runner: str = "auto"
    """Where a flow runs collection shards: threads, processes, or dask (a LocalCluster, or the
    scheduler at `dask_address`); auto: processes when `collect.parallel_instances` > 1 (threads
    would share one event loop and one global RNG), else threads."""
    dask_address: str = ""
    logger: str = "jsonl"
    """Metrics sink: jsonl (always written) or wandb (a mirror of it, offline by default)."""
    wandb_mode: str = "offline"

    def __post_init__(self) -> None:
        _check(self.format.startswith("gen1"), "format", self.format,
               "a Gen 1 format such as gen1ou (the featurizer and action space are Gen 1's)")
        _check(self.logger in ("jsonl", "wandb"), "logger", self.logger, "jsonl or wandb")
        _check(self.generations >= 0, "generations", self.generations, ">= 0")
        _check(self.team_remix >= 0, "team_remix", self.team_remix, ">= 0")
        _check(self.runner in RUNNERS, "runner", self.runner, f"one of {', '.join(RUNNERS)}")
        _check(self.mix_previous_generations >= 0, "mix_previous_generations",
               self.mix_previous_generations, ">= 0")
        _check(0 < self.mix_age_decay <= 1, "mix_age_decay", self.mix_age_decay, "in (0, 1]")
        _check(self.mix_bootstrap_weight >= 0, "mix_bootstrap_weight", self.mix_bootstrap_weight,
               ">= 0")
        _check(bool(self.run_name) and "/" not in self.run_name, "run_name", self.run_name,
               "a non-empty name without '/'")
        _check(self.wandb_mode in ("offline", "online", "disabled"), "wandb_mode",
               self.wandb_mode, "offline, online or disabled")
        if self.gate.battles and self.gate.team_set == self.eval.team_set:
            raise ConfigError(
                f"gate.team_set={self.gate.team_set!r} is also eval.team_set: the gate would "
                "choose each generation by the games the run is judged on. Give the gate a split "
                "of its own (the default gate.team_set=gen1ou_select), or set gate.battles=0.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hash(self, ignore: Sequence[str] = ()) -> str:
        """A short, stable hash of every value that changes training data and checkpoints: not
        the run's name, folder or length, not evaluation (`eval.*`, `elo.*`) and not speed knobs
        (SPEED_KEYS). Runs keyed by it are never confused, a longer run extends a shorter, and
        asking for more evaluation games re-evaluates the same run. `ignore` drops more keys."""
        values = self.to_dict()
        at_default = [k for k, v in HASH_OMITTED_AT.items() if _get(values, k) == v]
        return _digest(_without(values, (*RUN_KEYS, *EVAL_KEYS, *SPEED_KEYS, *at_default,
                                         *ignore)))

    def eval_hash(self) -> str:
        """A hash of what only changes evaluation and ratings (`eval.*`, `elo.*`)."""
        return _digest({k: self.to_dict()[k] for k in EVAL_KEYS})

    @property
    def resolved_runner(self) -> str:
        if self.runner != "auto":
            return self.runner
        return "processes" if self.collect.parallel_instances > 1 else "threads"


def _without(values: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """`values` without the (possibly dotted) `keys`."""
    out = dict(values)
    for key in keys:
        head, _, rest = key.partition(".")
        if head not in out:
            continue
        if rest:
            out[head] = _without(out[head], [rest])
            if not out[head] and values[head]:  # a section added later, all of it at its default
                del out[head]
        else:
            del out[head]
    return out


def _get(values: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        values = values.get(part) if isinstance(values, dict) else None
    return values


def _digest(values: dict[str, Any]) -> str:
    blob = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def config_choices(group: str, conf_dir: Path | str | None = None) -> tuple[str, ...]:
    """The options of a config group (`scale` → smoke, laptop, gpu): its YAML files' names."""
    folder = Path(conf_dir or CONF_DIR) / group
    choices = tuple(sorted(p.stem for p in folder.glob("*.yaml")))
    if not choices:
        raise ConfigError(f"{folder} has no options (.yaml files); is the conf/ folder complete?")
    return choices


def _multirun_only(mode: Any, value: str) -> str | None:
    """`value` in a Hydra multirun, nothing otherwise (`hydra.output_subdir` in conf/)."""
    return value if str(mode).endswith("MULTIRUN") else None


def register_configs() -> None:
    """Put the schema in Hydra's ConfigStore (as `base_config`, which conf/config.yaml extends)."""
    ConfigStore.instance().store(name="base_config", node=Config)
    if not OmegaConf.has_resolver("multirun_only"):
        OmegaConf.register_new_resolver("multirun_only", _multirun_only)


def _explain(e: BaseException) -> str:
    """Hydra wraps the useful message (which key, which type) in a chain of causes."""
    parts = []
    while e is not None:
        text = str(e).split("\nConfig search path")[0].strip()
        if text and text not in parts:
            parts.append(text)
        e = e.__cause__ or e.__context__
    return "\n".join(parts)


_LOCK = threading.Lock()  # Hydra's global state is not thread-safe


def load_config(overrides: Sequence[str] = (), config_dir: Path | str | None = None) -> Config:
    """Compose `conf/config.yaml` with `overrides` and validate it against the schema."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    conf_dir = Path(config_dir or CONF_DIR).resolve()
    with _LOCK:
        register_configs()
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
                cfg = compose(config_name="config", overrides=list(overrides))
            obj = OmegaConf.to_object(cfg)
        except (HydraException, OmegaConfBaseException) as e:
            raise ConfigError(f"invalid config ({' '.join(overrides) or 'no overrides'}): "
                              f"{_explain(e)}") from e
        except ValueError as e:  # a __post_init__ range check, possibly wrapped by OmegaConf
            raise ConfigError(str(e)) from e
        finally:
            GlobalHydra.instance().clear()
    assert isinstance(obj, Config)
    return obj
