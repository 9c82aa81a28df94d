"""benchmarks/screen.py: arms as the command line gives them, and the table it prints."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(_BENCH))  # screen.py imports retrain.py beside it
_SPEC = importlib.util.spec_from_file_location("screen", _BENCH / "screen.py")
screen = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(screen)


def test_an_arm_is_a_name_and_its_overrides():
    assert screen.parse_arm("base:") == ("base", [])
    assert screen.parse_arm("b64:train.batch_size=64 train.steps=2250") == (
        "b64", ["train.batch_size=64", "train.steps=2250"])
    assert screen.parse_arm("lr_6-e:train.lr=6e-4") == ("lr_6-e", ["train.lr=6e-4"])


@pytest.mark.parametrize("bad", ["train.lr=6e-4", "a/b:train.lr=1", ":seed=1"])
def test_a_bad_arm_is_named_with_the_fix(bad):
    with pytest.raises(ValueError, match="NAME:OVERRIDES"):
        screen.parse_arm(bad)


def test_the_table_shows_both_pairings_and_the_kl():
    result = {"win_rate": 0.515, "ci_low": 0.4661, "ci_high": 0.5636, "wins": 205, "losses": 193,
              "ties": 2}
    rows = [{"arm": "base", "overrides": [], "vs_parent": result, "vs_run": result,
             "kl_to_parent": 0.5612, "train_seconds": 217.3},
            {"arm": "lr6", "overrides": ["train.lr=6e-4"], "vs_parent": result,
             "vs_run": result, "kl_to_parent": None, "train_seconds": 230}]
    lines = screen.table(rows, 4).splitlines()
    assert "vs generation 3 (the parent)" in lines[0] and "generation 4" in lines[0]
    assert lines[2] == ("| base | – | 51.5% [46.6, 56.4] (205–193–2) | 51.5% [46.6, 56.4] "
                        "(205–193–2) | 0.56 | 217.3 |")
    assert lines[3].startswith("| lr6 | train.lr=6e-4 |") and "| – | 230 |" in lines[3]
