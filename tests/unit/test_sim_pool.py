"""A pool of simulators: a battle goes to the least busy process and stays there."""

from __future__ import annotations

from typing import Any

import pytest

from metamon_sp.config import ConfigError, load_config
from metamon_sp.showdown.direct import BattleSim, SimPool


class Recorder(BattleSim):
    """Keeps what it is sent instead of writing it to a process."""

    def __init__(self, log_path, formats=()):
        super().__init__(log_path, formats)
        self.got: list[dict[str, Any]] = []

    def send(self, command: dict[str, Any]) -> None:
        self.got.append(command)


def test_battles_go_to_the_least_busy_simulator_and_stay_there(tmp_path):
    pool = SimPool(tmp_path / "sim-i00.log", 2, sim_type=Recorder)
    a, b = pool.sims
    assert [s.log_path.name for s in pool.sims] == ["sim-i00-s0.log", "sim-i00-s1.log"]
    for k in range(3):
        pool.send({"t": "start", "id": f"t{k}"})
    assert [c["id"] for c in a.got] == ["t0", "t2"] and [c["id"] for c in b.got] == ["t1"]
    pool.send({"t": "choose", "id": "t1", "side": "p1", "choice": "move 1"})
    pool.send({"t": "forfeit", "id": "t2", "side": "p2"})
    assert b.got[-1]["t"] == "choose" and a.got[-1]["t"] == "forfeit"
    pool.send({"t": "close", "id": "t0"})
    pool.send({"t": "close", "id": "t2"})  # a now holds none, b one: the next two start on a
    pool.send({"t": "start", "id": "t3"})
    pool.send({"t": "start", "id": "t4"})
    assert [c["id"] for c in a.got if c["t"] == "start"] == ["t0", "t2", "t3", "t4"]
    pool.send({"t": "close", "id": "t0"})  # a second close of the same battle changes nothing
    pool.send({"t": "start", "id": "t5"})
    assert b.got[-1]["id"] == "t5"


def test_one_simulator_keeps_its_log_name(tmp_path):
    pool = SimPool(tmp_path / "sim.log", 1, sim_type=Recorder)
    assert [s.log_path.name for s in pool.sims] == ["sim.log"]


def test_several_simulators_need_the_direct_backend():
    assert load_config(["collect.simulators=2"]).collect.simulators == 2
    with pytest.raises(ConfigError, match="collect.simulators"):
        load_config(["collect.simulators=2", "collect.backend=showdown"])
    with pytest.raises(ConfigError, match="collect.simulators"):
        load_config(["collect.simulators=0"])
