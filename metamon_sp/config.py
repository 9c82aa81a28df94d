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
    concurrency: int = 10
    """Battles in flight at once per instance."""
    parallel_instances: int = 1
    """Independent shards, each with its own Showdown server and players (one process each)."""
    p1: str = "simple_heuristics"
    """Player on side 1: a registry name (random, max_base_power, simple_heuristics)."""
    p2: str = "random"
    """Player on side 2: a registry name, or `self` for a copy of p1."""
    record: str = "both"
    """Whose trajectories are recorded: both, p1 or p2."""
    battle_timeout_s: float = 300.0
    """A battle still running after this long is forfeited and marked truncated."""
    shard_battles: int = 50
    """Battles per Parquet shard: a crash loses at most the battles not yet in a shard."""
    max_server_restarts: int = 3
    """Server crashes tolerated per instance before collection gives up."""

    def __post_init__(self) -> None:
        _check(self.battles >= 1, "collect.battles", self.battles, ">= 1")
        _check(1 <= self.concurrency <= 256, "collect.concurrency", self.concurrency, "in [1, 256]")
        _check(1 <= self.parallel_instances <= 64, "collect.parallel_instances",
               self.parallel_instances, "in [1, 64]")
        _check(self.record in RECORD_CHOICES, "collect.record", self.record,
               f"one of {', '.join(RECORD_CHOICES)}")
        _check(self.battle_timeout_s > 0, "collect.battle_timeout_s", self.battle_timeout_s, "> 0")
        _check(self.shard_battles >= 1, "collect.shard_battles", self.shard_battles, ">= 1")
        _check(self.max_server_restarts >= 0, "collect.max_server_restarts",
               self.max_server_restarts, ">= 0")


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
class Config:
    format: str = "gen1ou"
    """Showdown battle format; the featurizer is built for Gen 1."""
    team_set: str = "gen1ou"
    """A shipped team set by name, or a folder of Showdown-export `.txt` teams."""
    seed: int = 0
    scale_name: str = "laptop"
    """Set by the `scale/` group option chosen (smoke, laptop)."""
    collect: CollectConfig = field(default_factory=CollectConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)

    def __post_init__(self) -> None:
        _check(self.format.startswith("gen1"), "format", self.format,
               "a Gen 1 format such as gen1ou (the featurizer and action space are Gen 1's)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hash(self) -> str:
        """A short, stable hash of every value: runs keyed by it are never confused."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _register() -> None:
    ConfigStore.instance().store(name="base_config", node=Config)


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
        _register()
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
