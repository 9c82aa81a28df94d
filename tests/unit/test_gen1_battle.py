"""`Gen1Battle` tracks recorded battles as poke-env's `Battle` does: every observation the
featurizer makes of them, both sides, every decision, is the same."""

from __future__ import annotations

import numpy as np
import pytest

from metamon_sp.features import action_to_order, featurize, reward_facts
from metamon_sp.gen1_battle import Gen1Battle, Gen1Mon
from tests.replay import battle_logs, decisions, final_battle

FIELDS = ("num", "cat", "mask", "facts")


@pytest.mark.parametrize("log", battle_logs(), ids=lambda g: f"{g['battle_tag']}-{g['username']}")
def test_every_observation_is_poke_envs(log):
    ours = [(featurize(b), b.turn, b.force_switch) for b in decisions(log, gen1=True)]
    theirs = [(featurize(b), b.turn, b.force_switch) for b in decisions(log, lean=True)]
    assert len(ours) == len(theirs) > 0
    for i, ((a, ta, fa), (b, tb, fb)) in enumerate(zip(ours, theirs)):
        assert (ta, fa) == (tb, fb), f"decision {i}"
        for name in FIELDS:
            assert np.array_equal(getattr(a, name), getattr(b, name)), f"decision {i}: {name}"


@pytest.mark.parametrize("log", battle_logs(), ids=lambda g: f"{g['battle_tag']}-{g['username']}")
def test_the_end_and_the_orders_are_poke_envs(log):
    ours, theirs = final_battle(log, gen1=True), final_battle(log)
    assert isinstance(ours, Gen1Battle)
    assert (ours.won, ours.lost, ours.finished, ours.turn) == \
        (theirs.won, theirs.lost, theirs.finished, theirs.turn)
    assert np.array_equal(reward_facts(ours), reward_facts(theirs))
    assert [(m.species, list(m.moves)) for m in ours.team.values()] == \
        [(m.species, list(m.moves)) for m in theirs.team.values()]
    for g, p in zip(decisions(log, gen1=True), decisions(log, lean=True)):
        mask = featurize(g).mask
        for action in np.flatnonzero(mask):
            assert action_to_order(int(action), g).message == \
                action_to_order(int(action), p).message


@pytest.mark.parametrize("log", battle_logs()[:2], ids=lambda g: g["battle_tag"])
def test_the_log_is_kept_from_the_previous_turn_on(log):
    """What `features.last_turn_events` reads, and no more (the observations above are
    poke-env's, whose battle keeps its whole log)."""
    longest = 0
    for b in decisions(log, gen1=True):
        turns = [i for i, ev in enumerate(b._replay_data) if ev[1:2] == ["turn"]]
        assert len(turns) <= 2 and (b.turn < 2 or turns[0] == 0)
        longest = max(longest, len(b._replay_data))
    assert b.turn > 10 and longest < 60


@pytest.mark.parametrize("log", battle_logs()[:2], ids=lambda g: g["battle_tag"])
def test_what_the_featurizer_keeps_on_a_mon_follows_every_message(log):
    """Per-Pokémon results are reused while the Pokémon's `version` stands: each decision's
    observation equals one made with nothing kept, and most Pokémon are reused."""
    reused = total = 0
    for b in decisions(log, gen1=True):
        kept = {id(m): m.feature_view for m in [*b.team.values(), *b.opponent_team.values()]}
        ours = featurize(b)
        for m in [*b.team.values(), *b.opponent_team.values()]:
            total += 1
            reused += kept[id(m)] is not None and m.feature_view is kept[id(m)]
            m.feature_view = m.feature_matchup = None
        fresh = featurize(b)
        for name in FIELDS:
            assert np.array_equal(getattr(ours, name), getattr(fresh, name)), name
    assert reused > total / 3


def test_a_mon_from_a_request_reads_like_poke_envs():
    entry = {"ident": "p1: Snorlax", "details": "Snorlax", "condition": "400/523 slp",
             "active": True, "stats": {"atk": 318, "def": 228, "spa": 228, "spd": 228,
                                       "spe": 158},
             "moves": ["bodyslam", "reflect", "rest", "icebeam"], "baseAbility": "noability",
             "item": "", "pokeball": "pokeball"}
    mon = Gen1Mon(request=entry)
    assert (mon.species, mon.current_hp, mon.max_hp, mon.status.name, mon.fainted) == \
        ("snorlax", 400, 523, "SLP", False)
    assert list(mon.moves) == ["bodyslam", "reflect", "rest", "icebeam"]
    assert mon.stats["atk"] == 318 and mon.stats["hp"] == 523
    assert [t.name for t in mon.types] == ["NORMAL"]


def test_players_that_read_only_the_observation_track_gen1_battles():
    import asyncio

    from poke_env.concurrency import POKE_LOOP

    from metamon_sp.battle_state import LeanBattle
    from metamon_sp.players import build_player

    kinds = {}
    for i, spec in enumerate(("random", "simple_heuristics")):
        player = build_player(spec, username=f"tracker{i}", server_url=None,
                              battle_format="gen1ou", concurrency=1, team=None)
        battle = asyncio.run_coroutine_threadsafe(
            player._create_battle([">battle", "gen1ou", f"{i}"]), POKE_LOOP).result(10)
        assert player.battles[battle.battle_tag] is battle
        kinds[spec] = type(battle)
    assert kinds == {"random": Gen1Battle, "simple_heuristics": LeanBattle}


def test_random_chooses_uniformly_among_legal_actions_and_replays_its_seed():
    from metamon_sp.players import build_player

    log = battle_logs()[0]
    battle = next(b for b in decisions(log, gen1=True) if featurize(b).mask.sum() >= 3)
    obs = featurize(battle)
    seen = {}
    for seed in range(300):
        player = build_player("random", username=log["username"], server_url=None,
                              battle_format="gen1ou", concurrency=1, team=None, seed=seed)
        action = player.choose_action(battle, obs)
        assert obs.mask[action]
        assert player.choose_action(battle, obs) == action  # the same decision, the same seed
        seen[action] = seen.get(action, 0) + 1
    legal = int(obs.mask.sum())
    assert len(seen) == legal and min(seen.values()) > 300 / legal / 2, seen
