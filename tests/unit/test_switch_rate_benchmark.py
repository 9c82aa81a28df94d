"""benchmarks/switch_rate.py: which decisions count as free choices, and the active's status."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from metamon_sp import dex
from metamon_sp.features import FEATURE_SPEC
from tests.factories import make_traj

_SPEC = importlib.util.spec_from_file_location(
    "switch_rate", Path(__file__).resolve().parents[2] / "benchmarks" / "switch_rate.py")
switch_rate = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(switch_rate)


def _traj():
    """Four decisions: free (switched), only moves legal, forced switch, free but exploratory."""
    t = make_traj(steps=4)
    t.masks[:] = False
    t.masks[[0, 2, 3], :] = True
    t.masks[1, :2] = True
    t.obs_num[:] = 0.0
    t.obs_num[2, FEATURE_SPEC.num.index("force_switch")] = 1.0
    t.actions[:] = [5, 0, 6, 7]
    t.explored[3] = True
    return t


def test_free_choices_leave_out_forced_switches_moves_only_and_exploration():
    t = _traj()
    assert switch_rate.free_choices(t).tolist() == [True, False, False, False]
    assert switch_rate.free_choices(t, own_only=False).tolist() == [True, False, False, True]


def test_active_status_reads_the_active_slot():
    t = _traj()
    t.obs_num[:, FEATURE_SPEC.num.index("own2_active")] = 1.0
    col = FEATURE_SPEC.cat.index("own2_status")
    t.obs_cat[:, :] = 0
    t.obs_cat[0, col] = dex.STATUS_VOCAB["frz"]
    t.obs_cat[1, col] = dex.STATUS_VOCAB["slp"]
    t.obs_cat[2, col] = dex.STATUS_VOCAB["par"]
    t.obs_num[3, FEATURE_SPEC.num.index("own2_active")] = 0.0  # no active Pokémon: neither
    assert switch_rate.active_status(t) == ["frozen", "asleep", "neither", "neither"]
