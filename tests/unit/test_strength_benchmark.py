"""benchmarks/strength.py's reuse of an earlier run's generation 0 (paired comparisons)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "strength", Path(__file__).resolve().parents[2] / "benchmarks" / "strength.py")
strength = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(strength)

RECIPE = {"format": "gen1ou", "team_set": "gen1ou", "seed": 1, "model": {"name": "tiny"},
          "bootstrap": {"battles": 1000}, "reward": {"name": "default_shaped"}}


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "gen-000" / "train" / "checkpoint").mkdir(parents=True)
    (src / "gen-000" / "train" / "checkpoint" / "model.safetensors").write_text("w")
    (src / "gen-000" / "data").mkdir()
    (src / "gen-000" / "data" / "manifest.json").write_text("{}")
    (src / "gen-000" / "bootstrap_summary.json").write_text("{}")
    (src / "gen-000" / "eval").mkdir()  # evaluated again in the new run: not copied
    (src / "config.json").write_text(json.dumps({**RECIPE, "train": {"steps": 9}}))
    (src / "timings.json").write_text(json.dumps({"0": 448.0}))
    return src


def test_generation_zero_is_copied_with_its_time(tmp_path, capsys):
    src, run = _source(tmp_path), tmp_path / "run"
    config = {**RECIPE, "train": {"steps": 1, "progress": False}, "team_set": "/my/teams",
              "team_remix": 500}
    assert strength.reuse_generation_zero(src, run, config) == 448.0
    # allowed, but said: generation 0 trained with other steps, on other teams without remixes
    assert "other train.steps, team_set, team_remix than this run's" in capsys.readouterr().out
    assert (run / "gen-000" / "train" / "checkpoint" / "model.safetensors").read_text() == "w"
    assert (run / "gen-000" / "data" / "manifest.json").exists()
    assert not (run / "gen-000" / "eval").exists()


def test_a_knob_newer_than_the_source_run_is_no_difference_at_its_neutral_value(tmp_path, capsys):
    """`train.search_weight` did not exist when the source ran: at 1 it changes nothing."""
    src = _source(tmp_path)
    strength.reuse_generation_zero(src, tmp_path / "a", {**RECIPE, "train": {
        "steps": 9, "search_weight": 1.0}})
    assert "note:" not in capsys.readouterr().out
    strength.reuse_generation_zero(src, tmp_path / "b", {**RECIPE, "train": {
        "steps": 9, "search_weight": 2.0}})
    assert "other train.search_weight than" in capsys.readouterr().out


def test_the_fine_tunes_own_knobs_are_no_difference_to_generation_0(tmp_path, capsys):
    """Generation 0 trains from scratch: no critic warmup, no first fine-tune's settings."""
    strength.reuse_generation_zero(_source(tmp_path), tmp_path / "run", {**RECIPE, "train": {
        "steps": 9, "first_critic_warmup": 3000, "critic_warmup": 500, "first_lr": 1e-4}})
    assert "note:" not in capsys.readouterr().out


@pytest.mark.parametrize("key, value", [("seed", 0), ("bootstrap", {"battles": 400})])
def test_another_generation_zero_recipe_is_refused_by_name(tmp_path, key, value):
    with pytest.raises(SystemExit, match=f"other {key} than this run"):
        strength.reuse_generation_zero(_source(tmp_path), tmp_path / "run", {**RECIPE, key: value})
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit, match="not a run folder"):
        strength.reuse_generation_zero(tmp_path / "nope", tmp_path / "run", RECIPE)
