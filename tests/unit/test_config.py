from __future__ import annotations

import pytest

from metamon_sp.config import ConfigError, load_config


def test_defaults_and_groups_compose():
    cfg = load_config()
    assert cfg.format == "gen1ou" and cfg.filter.max_invalid_rate == 0.05
    smoke = load_config(["scale=smoke", "reward=binary"])
    assert smoke.scale_name == "smoke" and smoke.reward.name == "binary"
    assert smoke.collect.battles < cfg.collect.battles


@pytest.mark.parametrize("override, named", [
    ("collect.battles=abc", "collect.battles"),          # wrong type
    ("collect.batles=3", "collect.batles"),               # unknown key
    ("collect.battles=0", "collect.battles"),             # out of range
    ("filter.max_invalid_rate=1.5", "filter.max_invalid_rate"),
    ("collect.record=nobody", "collect.record"),
    ("reward=nonsense", "reward"),                        # unknown group option
    ("format=gen9ou", "format"),
])
def test_bad_values_fail_naming_the_key(override, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config([override])


def test_hash_is_stable_and_tracks_values():
    a, b = load_config(["seed=1"]), load_config(["seed=1"])
    assert a.hash() == b.hash() != load_config(["seed=2"]).hash()
