"""Checkpoints: a folder with safetensors weights + `checkpoint.json`; loading never unpickles.

    ckpt/
      model.safetensors        weights (actor, critics, target critics)
      checkpoint.json          model config, step, generation, parent, config hash, metrics,
                               feature spec
      train_state.safetensors  optimizer tensors + RNG state (to resume training; optional)
      train_state.json         optimizer hyper-parameters, controller state, data cursor

The folder is written beside its destination and renamed into place, so a crash never leaves
half a checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from metamon_sp.features import FEATURE_SPEC
from metamon_sp.model import ModelConfig, PolicyModel

FORMAT = "metamon-sp-checkpoint"
VERSION = 1
WEIGHTS, META = "model.safetensors", "checkpoint.json"
STATE_TENSORS, STATE_JSON = "train_state.safetensors", "train_state.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked; the message names it and the fix."""


@dataclass
class CheckpointMeta:
    model: dict[str, Any]
    step: int = 0
    generation: int = 0
    parent: str | None = None
    config_hash: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=lambda: {
        "version": FEATURE_SPEC.version, "hash": FEATURE_SPEC.hash})
    format: str = FORMAT
    version: int = VERSION
    created_at: str = ""

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig(**self.model)


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old)
    else:
        os.rename(tmp, final)


def save_checkpoint(path: Path | str, model: PolicyModel, meta: CheckpointMeta,
                    train_state: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None
                    ) -> Path:
    """Write a checkpoint folder atomically; returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta.created_at = meta.created_at or time.strftime("%Y-%m-%dT%H:%M:%S%z")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        (tmp / META).write_text(json.dumps(asdict(meta), indent=2) + "\n")
        if train_state is not None:
            tensors, scalars = train_state
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                      str(tmp / STATE_TENSORS))
            (tmp / STATE_JSON).write_text(json.dumps(scalars, indent=2) + "\n")
        os.chmod(tmp, 0o755)
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        _replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_meta(path: Path | str) -> CheckpointMeta:
    path = Path(path)
    meta_path = path / META
    if not meta_path.exists():
        raise CheckpointError(f"{path} is not a metamon-sp checkpoint (no {META}); pass the "
                              f"checkpoint folder (the one holding {WEIGHTS}).")
    raw = json.loads(meta_path.read_text())
    if raw.get("format") != FORMAT or raw.get("version") != VERSION:
        raise CheckpointError(f"{path}: format {raw.get('format')!r} version {raw.get('version')} "
                              f"is not {FORMAT!r} version {VERSION}.")
    known = {f.name for f in fields(CheckpointMeta)}
    meta = CheckpointMeta(**{k: v for k, v in raw.items() if k in known})
    if meta.features.get("hash") != FEATURE_SPEC.hash:
        raise CheckpointError(f"{path} was trained on features {meta.features.get('hash')}; this "
                              f"code featurizes as {FEATURE_SPEC.hash}. Retrain it with this version.")
    return meta


def check_model_config(path: Path | str, meta: CheckpointMeta, expected: ModelConfig) -> None:
    """Raise a clear error if the checkpoint's model differs from the config's."""
    theirs, ours = meta.model_config, expected
    diff = {f.name: (getattr(theirs, f.name), getattr(ours, f.name)) for f in fields(ModelConfig)
            if f.name != "name" and getattr(theirs, f.name) != getattr(ours, f.name)}
    if diff:
        lines = ", ".join(f"model.{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in diff.items())
        raise CheckpointError(f"checkpoint {path} does not match the configured model ({lines}); "
                              f"choose model={theirs.name} or start from init=none.")


def load_checkpoint(path: Path | str, expected: ModelConfig | None = None,
                    map_location: str | torch.device = "cpu") -> tuple[PolicyModel, CheckpointMeta]:
    """Model + metadata from a checkpoint folder (safetensors and JSON only)."""
    path = Path(path)
    meta = read_meta(path)
    if expected is not None:
        check_model_config(path, meta, expected)
    model = PolicyModel(meta.model_config)
    weights_path = path / WEIGHTS
    if not weights_path.exists():
        raise CheckpointError(f"{path} has no {WEIGHTS}; the checkpoint is incomplete.")
    state = load_file(str(weights_path), device=str(map_location))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the model in {META} "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]}).")
    return model.to(map_location), meta


def load_train_state(path: Path | str) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    path = Path(path)
    if not (path / STATE_TENSORS).exists():
        return None
    return load_file(str(path / STATE_TENSORS)), json.loads((path / STATE_JSON).read_text())


def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state as flat tensors + JSON (no pickle)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": sd["param_groups"], "state_scalars": {}}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{idx}.{k}"] = v
            else:
                scalars["state_scalars"][f"{idx}.{k}"] = v
    return tensors, scalars


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                      scalars: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    for key, v in scalars.get("state_scalars", {}).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})
