"""Dynamic damping: how strongly each update is held back towards the reference policy.

    loss += β_t · KL(π_θ ‖ π_ref) − α_t · H(π_θ)        (legal actions only)
    β_t = kl_coef_init · (1 + t/T)^(−kl_power_alpha) · kl_scale
    α_t = ent_coef_init · (1 + t/T)^(−ent_power_alpha)

After warmup, every optimizer step's KL(π_after ‖ π_before) feeds an exponential moving average
(one step's KL is noisy: its 10th and 90th percentiles lie ~5× apart), and the average steers
`lr_scale` (the actor head's learning rate only) and `kl_scale`: above target·tolerance both
damp by one small factor, below target/tolerance both loosen, inside the band both hold. The
factor is small because the average lags: a big factor drives the scales to their bounds before
the average has seen the effect. `damping=none` is the control: no KL or entropy term, no
controller.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from metamon_sp.config import DampingConfig


def power_decay(init: float, t: int, time_scale: float, alpha: float) -> float:
    """init · (1 + t/T)^(−α): smooth, monotone, no cliffs."""
    return init * (1.0 + t / time_scale) ** (-alpha)


def ema(previous: float | None, x: float, weight: float) -> float:
    return x if previous is None else (1.0 - weight) * previous + weight * x


@dataclass
class DampingState:
    lr_scale: float = 1.0
    kl_scale: float = 1.0
    kl_ema: float | None = None
    """The smoothed per-step KL; None until the first step after warmup."""


class DampingController:
    def __init__(self, cfg: DampingConfig, warmup_steps: int = 0,
                 state: DampingState | None = None):
        self.cfg = cfg
        self.warmup_steps = warmup_steps
        self.state = state or DampingState()

    def kl_coef(self, t: int) -> float:
        c = self.cfg
        return power_decay(c.kl_coef_init, t, c.time_scale, c.kl_power_alpha) * self.state.kl_scale

    def ent_coef(self, t: int) -> float:
        c = self.cfg
        return power_decay(c.ent_coef_init, t, c.time_scale, c.ent_power_alpha)

    def update(self, kl_step: float, step: int) -> str:
        """Adjust from the KL(π_after ‖ π_before) of optimizer step `step` (0-based); returns
        what it did. Warmup steps are small by construction and neither count nor steer."""
        c, s = self.cfg, self.state
        if not c.adaptive:
            return "off"
        if step < self.warmup_steps:
            return "warmup"
        s.kl_ema = ema(s.kl_ema, kl_step, c.smoothing)
        if s.kl_ema > c.target_kl_per_step * c.kl_tolerance:
            s.lr_scale = max(c.lr_scale_min, s.lr_scale / c.lr_factor)
            s.kl_scale = min(c.kl_scale_max, s.kl_scale * c.kl_coef_factor)
            return "damp"
        if s.kl_ema < c.target_kl_per_step / c.kl_tolerance:
            s.lr_scale = min(c.lr_scale_max, s.lr_scale * c.lr_factor)
            s.kl_scale = max(c.kl_scale_min, s.kl_scale / c.kl_coef_factor)
            return "loosen"
        return "hold"


class EntropyCollapseDetector:
    """Flags the smoothed entropy falling faster than `max_drop_per_step`, measured over
    `window` steps. Its state (`state()`, `load()`) travels with the checkpoint, so a resumed
    run neither forgets a fall in progress nor warns twice."""

    def __init__(self, window: int, max_drop_per_step: float, smoothing: float = 1.0):
        self.window = window
        self.max_drop = max_drop_per_step
        self.smoothing = smoothing
        self.smoothed: float | None = None
        self.history: deque[float] = deque(maxlen=window + 1)
        self.fired_at: int | None = None
        """The first step at which it fired, if it has."""

    def update(self, entropy: float, step: int | None = None) -> float:
        """Record this step's entropy; return the smoothed entropy's drop rate (nats/step) if it
        is too fast, else 0.0."""
        self.smoothed = ema(self.smoothed, entropy, self.smoothing)
        self.history.append(self.smoothed)
        if len(self.history) <= self.window:
            return 0.0
        rate = (self.history[0] - self.history[-1]) / self.window
        if rate > self.max_drop:
            if self.fired_at is None and step is not None:
                self.fired_at = step
            return rate
        return 0.0

    def state(self) -> dict[str, Any]:
        return {"smoothed": self.smoothed, "history": list(self.history), "fired_at": self.fired_at}

    def load(self, state: Mapping[str, Any] | None) -> None:
        if not state:
            return
        self.smoothed = state.get("smoothed")
        self.history = deque(state.get("history", []), maxlen=self.window + 1)
        self.fired_at = state.get("fired_at")


def controller_checks(rows: Iterable[Mapping[str, Any]], cfg: DampingConfig) -> dict[str, Any]:
    """Did the controller control? From a training run's metric rows (after warmup, the steps
    that logged `damping/kl_ema`): the share of steps with the smoothed per-step KL inside
    [target/tolerance, target·tolerance], and the shares with `lr_scale` or `kl_scale` at one of
    its bounds. The reference workflow asks for ≥ 80% inside and < 20% at a bound."""
    lo, hi = cfg.target_kl_per_step / cfg.kl_tolerance, cfg.target_kl_per_step * cfg.kl_tolerance
    n = in_band = lr_bound = kl_bound = 0
    for r in rows:
        if "damping/kl_ema" not in r:
            continue
        n += 1
        in_band += lo <= r["damping/kl_ema"] <= hi
        lr_bound += r["damping/lr_scale"] in (cfg.lr_scale_min, cfg.lr_scale_max)
        kl_bound += r["damping/kl_scale"] in (cfg.kl_scale_min, cfg.kl_scale_max)
    if n == 0:
        return {"steps": 0}
    return {"steps": n, "target_kl_per_step": cfg.target_kl_per_step, "band": [lo, hi],
            "in_band_frac": round(in_band / n, 4), "lr_scale_at_bound_frac": round(lr_bound / n, 4),
            "kl_scale_at_bound_frac": round(kl_bound / n, 4),
            "ok": in_band / n >= 0.8 and lr_bound / n < 0.2 and kl_bound / n < 0.2}
