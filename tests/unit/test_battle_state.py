"""The players' battle tracking skips request entries it has already applied, and every
observation stays what poke-env's full update gives (recorded battles, both sides)."""

from __future__ import annotations

import numpy as np
from poke_env.battle import Pokemon

from metamon_sp.battle_state import LeanBattle
from metamon_sp.features import featurize
from tests.replay import battle_logs, decisions


def test_lean_tracking_gives_every_observation_of_the_full_update(monkeypatch):
    calls = {"n": 0}
    real = Pokemon.update_from_request

    def counted(self, entry):
        calls["n"] += 1
        return real(self, entry)

    monkeypatch.setattr(Pokemon, "update_from_request", counted)
    full_calls = lean_calls = 0
    for log in battle_logs():
        calls["n"] = 0
        full = [featurize(b) for b in decisions(log)]
        full_calls += calls["n"]
        calls["n"] = 0
        lean = []
        for b in decisions(log, lean=True):
            assert isinstance(b, LeanBattle)
            lean.append(featurize(b))
        lean_calls += calls["n"]
        assert len(full) == len(lean), log["battle_tag"]
        for i, (a, b) in enumerate(zip(full, lean)):
            for name in ("num", "cat", "mask", "facts"):
                assert np.array_equal(getattr(a, name), getattr(b, name)), \
                    f"{log['battle_tag']} {log['username']} decision {i}: {name}"
    assert lean_calls < 0.5 * full_calls, (lean_calls, full_calls)  # most entries are skipped
