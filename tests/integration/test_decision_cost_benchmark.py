"""benchmarks/decision_cost.py: a recorded simulator replays a collection's battles exactly (the
same commands, decisions and battles, no Node process), and says so when the code decides
otherwise than the record."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

_BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
_SPEC = importlib.util.spec_from_file_location("decision_cost", _BENCH / "decision_cost.py")
decision_cost = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(decision_cost)


def test_a_recorded_collection_replays_without_the_simulator(tmp_path):
    path = tmp_path / "record.json"
    rec = decision_cost.record("random", "random", 3, path)
    assert rec["battles"] == 3 and rec["decisions"] > 0

    res = decision_cost.replay(path)
    assert res["fits"], res["misfits"]
    assert (res["battles"], res["decisions"]) == (3, rec["decisions"])
    assert res["us_per_decision"] > 0

    # another decision than the record's: the replay does not fit, and names where
    saved = json.loads(path.read_text())
    tag, commands = next(iter(saved["answers"].items()))
    k = next(i for i, (command, _) in enumerate(commands) if command.startswith("choose"))
    commands[k][0] = "choose p1 move 9"
    path.write_text(json.dumps(saved))
    res = decision_cost.replay(path)
    assert not res["fits"] and tag in res["misfits"][0]
