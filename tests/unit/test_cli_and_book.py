from __future__ import annotations

import pytest

from metamon_sp.cli import UsageError, main, split_args
from metamon_sp.collect import BattleBook, PlayClock, split_battles
from tests.factories import make_battle


def test_split_args_separates_io_from_overrides():
    io, overrides = split_args("filter", ["data=a,b", "filter.min_turns=3", "out=o"])
    assert io == {"data": "a,b", "out": "o"} and overrides == ["filter.min_turns=3"]
    with pytest.raises(UsageError, match="needs out=DIR"):
        split_args("collect", ["collect.battles=3"])
    with pytest.raises(UsageError, match="key=value"):
        split_args("collect", ["out=x", "oops"])


def test_bad_override_exits_2_naming_the_key(capsys):
    assert main(["collect", "collect.battles=-1", "out=/tmp/never"]) == 2
    assert "collect.battles" in capsys.readouterr().err


def test_config_command_prints_the_hash(capsys):
    assert main(["config", "reward=binary"]) == 0
    out = capsys.readouterr().out
    assert '"name": "binary"' in out and "config hash:" in out


@pytest.mark.parametrize("record, kept_sides", [("both", {"p1", "p2"}), ("p1", {"p1"}),
                                                ("p2", {"p2"})])
def test_battle_book_pairs_sides_and_keeps_recorded_ones(record, kept_sides):
    book = BattleBook(record)
    p1, p2 = make_battle(1)
    p1.team, p2.team = "A", "B"
    book.add(p2)
    assert book.pop_ready() == [] and book.completed == 0
    book.add(p1)
    [battle] = book.pop_ready()
    assert {t.side for t in battle} == kept_sides
    assert {t.side: t.opponent_team for t in battle} == {s: {"p1": "B", "p2": "A"}[s]
                                                         for s in kept_sides}


def test_split_battles():
    assert split_battles(10, 3) == [4, 3, 3] and sum(split_battles(7, 7)) == 7


def test_play_time_starts_with_the_first_players_and_a_restart_does_not_reset_it(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("metamon_sp.collect.time.monotonic", lambda: now[0])
    clock = PlayClock()
    now[0] = 103.0  # the backend starts, torch is imported, the policy loads: not play
    assert clock.seconds() == 0.0
    clock.start()
    now[0] = 110.0
    clock.start()  # the players of a restarted backend
    now[0] = 112.0
    assert clock.seconds() == 9.0
