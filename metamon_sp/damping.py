"""Dynamic damping: how strongly each update is held back towards the reference policy.

    loss += β_t · KL(π_θ ‖ π_ref) − α_t · H(π_θ)        (legal actions only)
    β_t = kl_coef_init · (1 + t/T)^(−kl_power_alpha) · kl_scale
    α_t = ent_coef_init · (1 + t/T)^(−ent_power_alpha)

and after every optimizer step the measured KL(π_after ‖ π_before) steers `lr_scale` and
`kl_scale`: too big a step (above target·tolerance) shrinks the learning rate and grows β; too
small (below target/tolerance) grows the learning rate (bounded) and shrinks β; inside the band
both hold. `damping=none` is the control: no KL or entropy term, no controller.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from metamon_sp.config import DampingConfig


def power_decay(init: float, t: int, time_scale: float, alpha: float) -> float:
    """init · (1 + t/T)^(−α): smooth, monotone, no cliffs."""
    return init * (1.0 + t / time_scale) ** (-alpha)


@dataclass
class DampingState:
    lr_scale: float = 1.0
    kl_scale: float = 1.0


class DampingController:
    def __init__(self, cfg: DampingConfig, state: DampingState | None = None):
        self.cfg = cfg
        self.state = state or DampingState()

    def kl_coef(self, t: int) -> float:
        c = self.cfg
        return power_decay(c.kl_coef_init, t, c.time_scale, c.kl_power_alpha) * self.state.kl_scale

    def ent_coef(self, t: int) -> float:
        c = self.cfg
        return power_decay(c.ent_coef_init, t, c.time_scale, c.ent_power_alpha)

    def update(self, kl_step: float) -> str:
        """Adjust from one optimizer step's KL(π_after ‖ π_before); returns what it did."""
        c, s = self.cfg, self.state
        if not c.adaptive:
            return "off"
        if kl_step > c.target_kl_per_step * c.kl_tolerance:
            s.lr_scale = max(c.lr_scale_min, s.lr_scale / c.lr_factor)
            s.kl_scale = min(c.kl_scale_max, s.kl_scale * c.kl_coef_factor)
            return "damp"
        if kl_step < c.target_kl_per_step / c.kl_tolerance:
            s.lr_scale = min(c.lr_scale_max, s.lr_scale * c.lr_factor)
            s.kl_scale = max(c.kl_scale_min, s.kl_scale / c.kl_coef_factor)
            return "loosen"
        return "hold"


class EntropyCollapseDetector:
    """Flags entropy falling faster than `max_drop_per_step`, measured over `window` steps."""

    def __init__(self, window: int, max_drop_per_step: float):
        self.window = window
        self.max_drop = max_drop_per_step
        self.history: deque[float] = deque(maxlen=window + 1)

    def update(self, entropy: float) -> float:
        """Record this step's entropy; return the drop rate (nats/step) if it is too fast,
        else 0.0."""
        self.history.append(entropy)
        if len(self.history) <= self.window:
            return 0.0
        rate = (self.history[0] - self.history[-1]) / self.window
        return rate if rate > self.max_drop else 0.0
