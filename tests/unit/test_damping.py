from __future__ import annotations

import pytest

from metamon_sp.config import DampingConfig, load_config
from metamon_sp.damping import DampingController, EntropyCollapseDetector, power_decay


def dynamic() -> DampingConfig:
    return load_config(["damping=dynamic"]).damping


def test_dynamic_defaults_match_the_spec():
    d = dynamic()
    assert (d.kl_coef_init, d.kl_power_alpha, d.ent_coef_init, d.ent_power_alpha,
            d.target_kl_per_step, d.kl_tolerance) == (0.05, 0.5, 0.01, 0.7, 0.01, 1.5)
    none = load_config(["damping=none"]).damping
    assert none.kl_coef_init == none.ent_coef_init == 0 and not none.adaptive


def test_schedules_are_smooth_power_laws():
    d = dynamic()
    c = DampingController(d)
    T = d.time_scale
    assert c.kl_coef(0) == pytest.approx(0.05)
    assert c.kl_coef(int(T)) == pytest.approx(0.05 * 2 ** -0.5)
    assert c.ent_coef(int(3 * T)) == pytest.approx(0.01 * 4 ** -0.7)
    values = [c.kl_coef(t) for t in range(0, 20_000, 7)]
    assert all(b < a for a, b in zip(values, values[1:]))            # monotone
    assert max(a / b for a, b in zip(values, values[1:])) < 1.01     # no cliffs
    assert power_decay(2.0, 0, 10.0, 3.0) == 2.0


def test_controller_moves_lr_and_beta_in_the_right_directions():
    c = DampingController(dynamic())
    beta0 = c.kl_coef(100)
    assert c.update(kl_step=0.05) == "damp"        # 0.05 > 0.01 · 1.5: too aggressive
    assert c.state.lr_scale < 1 and c.kl_coef(100) > beta0
    lr1, beta1 = c.state.lr_scale, c.kl_coef(100)
    assert c.update(kl_step=0.01) == "hold"        # inside [0.0067, 0.015]
    assert (c.state.lr_scale, c.kl_coef(100)) == (lr1, beta1)
    assert c.update(kl_step=0.001) == "loosen"     # below 0.01 / 1.5
    assert c.state.lr_scale > lr1 and c.kl_coef(100) < beta1


def test_controller_respects_its_bounds_and_can_be_off():
    d = dynamic()
    c = DampingController(d)
    for _ in range(100):
        c.update(1.0)
    assert c.state.lr_scale == d.lr_scale_min and c.state.kl_scale == d.kl_scale_max
    for _ in range(100):
        c.update(0.0)
    assert c.state.lr_scale == d.lr_scale_max and c.state.kl_scale == d.kl_scale_min
    off = DampingController(load_config(["damping=none"]).damping)
    assert off.update(1.0) == "off" and off.state.lr_scale == 1.0


def test_entropy_collapse_detector():
    fast = EntropyCollapseDetector(window=10, max_drop_per_step=0.01)
    flags = [fast.update(2.0 - 0.05 * t) for t in range(20)]
    assert flags[:10] == [0.0] * 10 and all(f == pytest.approx(0.05) for f in flags[10:])
    slow = EntropyCollapseDetector(window=10, max_drop_per_step=0.01)
    assert not any(slow.update(2.0 - 0.001 * t) for t in range(50))


@pytest.mark.parametrize("override", ["damping.kl_tolerance=0.5", "damping.time_scale=0",
                                      "damping.kl_coef_init=-1"])
def test_bad_damping_values_are_refused(override):
    from metamon_sp.config import ConfigError

    with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.")):
        load_config(["damping=dynamic", override])
