"""`gen1_heuristics`: `simple_heuristics`, except that a frozen active Pokémon is switched out."""

from __future__ import annotations

from poke_env.battle import Status

from metamon_sp.features import featurize
from metamon_sp.players import build_player
from tests.replay import battle_logs, decisions


def _player(spec: str):
    return build_player(spec, username="fixture1", server_url=None, battle_format="gen1ou",
                        concurrency=1, team=None)


def test_it_plays_simple_heuristics_unless_frozen_and_then_switches():
    ours, theirs = _player("gen1_heuristics"), _player("simple_heuristics")
    frozen_tested = 0
    for log in battle_logs():
        for battle in decisions(log, lean=True):
            obs = featurize(battle)
            assert ours.choose_action(battle, obs).message == \
                theirs.choose_action(battle, obs).message
            active = battle.active_pokemon
            if active is None or not battle.available_switches or active.fainted:
                continue
            status = active.status
            active.status = Status.FRZ
            try:
                order = ours.choose_action(battle, obs)
            finally:
                active.status = status
            assert order.message.startswith("/choose switch "), order.message
            assert order.order in battle.available_switches
            frozen_tested += 1
    assert frozen_tested > 20
