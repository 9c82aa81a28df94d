from __future__ import annotations

import json
import pickle
from dataclasses import asdict

import pytest
import torch

from metamon_sp.checkpoint import (CheckpointError, CheckpointMeta, load_checkpoint,
                                   save_checkpoint)
from metamon_sp.config import load_config
from metamon_sp.model import PolicyModel


def _saved(tmp_path, name="ckpt"):
    torch.manual_seed(0)
    mc = load_config(["model=tiny"]).model
    model = PolicyModel(mc)
    path = save_checkpoint(tmp_path / name, model, CheckpointMeta(model=asdict(mc), step=7,
                                                                  generation=2, parent="p"))
    return model, path


def test_round_trip_is_bit_identical(tmp_path):
    model, path = _saved(tmp_path)
    loaded, meta = load_checkpoint(path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert (meta.step, meta.generation, meta.parent) == (7, 2, "p")
    again = save_checkpoint(tmp_path / "again", loaded, meta)
    assert (again / "model.safetensors").read_bytes() == (path / "model.safetensors").read_bytes()


def test_loading_never_unpickles(tmp_path, monkeypatch):
    _, path = _saved(tmp_path)

    def refuse(*a, **k):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    load_checkpoint(path)
    assert {p.name for p in path.iterdir()} == {"model.safetensors", "checkpoint.json"}


def test_model_mismatch_is_a_clear_error(tmp_path):
    _, path = _saved(tmp_path)
    with pytest.raises(CheckpointError, match=r"model\.d_model: checkpoint 96 vs config 192"):
        load_checkpoint(path, expected=load_config(["model=small"]).model)


def test_not_a_checkpoint_and_foreign_features(tmp_path):
    with pytest.raises(CheckpointError, match="not a metamon-sp checkpoint"):
        load_checkpoint(tmp_path)
    _, path = _saved(tmp_path)
    meta = json.loads((path / "checkpoint.json").read_text())
    meta["features"]["hash"] = "000000000000"
    (path / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="features"):
        load_checkpoint(path)


def test_overwrite_is_atomic_and_leaves_no_temp(tmp_path):
    _saved(tmp_path)
    _saved(tmp_path)  # replaces the folder
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
