"""The featurizer on recorded real Gen 1 OU battles (no server)."""

from __future__ import annotations

import numpy as np
import pytest
from poke_env.battle import Status
from poke_env.player.battle_order import DefaultBattleOrder, SingleBattleOrder

from metamon_sp import dex
from metamon_sp import features as F
from tests.replay import battle_logs, decisions, final_battle

LOGS = battle_logs()
NUM = {name: i for i, name in enumerate(F.FEATURE_SPEC.num)}


def all_decisions():
    for log in LOGS:
        for battle in decisions(log):
            yield log, battle


def test_fixtures_cover_the_gen1_quirks():
    covered = set().union(*(log["quirks"] for log in LOGS))
    assert {"fight", "recharge", "force_switch", "partial_trap"} <= covered


def test_spec_names_are_unique_and_match_the_arrays():
    spec = F.FEATURE_SPEC
    assert len(set(spec.num)) == len(spec.num) == F.N_NUM
    assert len(set(spec.cat)) == len(spec.cat) == F.N_CAT == len(spec.cat_vocab)
    assert set(spec.cat_vocab) <= set(spec.vocab_sizes)
    _, battle = next(all_decisions())
    obs = F.featurize(battle)
    assert obs.num.shape == (F.N_NUM,) and obs.num.dtype == np.float32
    assert obs.cat.shape == (F.N_CAT,) and obs.cat.dtype == np.int16
    assert obs.mask.shape == (F.N_ACTIONS,) and obs.facts.shape == (F.N_FACTS,)


def test_every_decision_featurizes_within_vocab_with_a_legal_action():
    limits = np.array([F.FEATURE_SPEC.vocab_sizes[v] for v in F.FEATURE_SPEC.cat_vocab])
    n = 0
    for _, battle in all_decisions():
        obs = F.featurize(battle)
        n += 1
        assert np.isfinite(obs.num).all()
        assert (obs.cat >= 0).all() and (obs.cat < limits).all()
        assert obs.mask.any(), f"no legal action at turn {battle.turn}"
        # the mask agrees with poke-env's own view of the request
        assert obs.mask[F.N_MOVES:].sum() == len(battle.available_switches)
        assert obs.mask[:F.N_MOVES].sum() == len(battle.available_moves)
    assert n > 50


def test_featurize_is_deterministic():
    _, battle = next(all_decisions())
    a, b = F.featurize(battle), F.featurize(battle)
    for x, y in zip((a.num, a.cat, a.mask, a.facts), (b.num, b.cat, b.mask, b.facts)):
        np.testing.assert_array_equal(x, y)


def test_forced_switch_allows_only_switches():
    seen = 0
    for _, battle in all_decisions():
        if battle.force_switch:
            mask = F.action_mask(battle)
            assert not mask[:F.N_MOVES].any() and mask[F.N_MOVES:].any()
            assert F.featurize(battle).num[NUM["force_switch"]] == 1.0
            seen += 1
    assert seen


def test_pseudo_moves_are_action_zero_and_flagged():
    seen = set()
    for _, battle in all_decisions():
        ids = [s["id"] for s in F.request_moves(battle)]
        if ids in (["recharge"], ["fight"]):
            obs = F.featurize(battle)
            seen.add(ids[0])
            assert obs.mask[0] and not obs.mask[1:F.N_MOVES].any()
            assert obs.num[NUM["pseudo_move_only"]] == 1.0
            assert obs.cat[F.FEATURE_SPEC.cat.index("move0_id")] == dex.move_vocab()[ids[0]]
            if ids == ["recharge"]:
                assert obs.num[NUM["must_recharge"]] == 1.0 and not obs.mask[F.N_MOVES:].any()
            if ids == ["fight"]:
                asleep = battle.active_pokemon.status in (Status.SLP, Status.FRZ)
                assert obs.num[NUM["partially_trapped"]] == float(not asleep)
    assert seen == {"recharge", "fight"}


def test_partial_trapping_is_inferred_from_the_last_turn():
    trapped_turns = 0
    for _, battle in all_decisions():
        events = F.last_turn_events(battle)
        assert not any(len(e) > 1 and e[1] == "turn" for e in events)
        if F.featurize(battle).num[NUM["partially_trapped"]] == 1.0:
            trapped_turns += 1
            # `fight` while awake: the opponent's Wrap/Bind/Clamp/Fire Spin hit us last turn
            assert [s["id"] for s in F.request_moves(battle)] == ["fight"]
            opp_moves = {"".join(c for c in e[3].lower() if c.isalnum()) for e in events
                         if len(e) > 3 and e[1] == "move" and not e[2].startswith(battle.player_role)}
            assert opp_moves & dex.PARTIAL_TRAPPING_MOVES
    assert trapped_turns


def test_forced_switch_sees_the_faint_of_this_turn():
    for _, battle in all_decisions():
        if battle.force_switch:
            kinds = [e[1] for e in F.last_turn_events(battle) if len(e) > 1]
            assert "faint" in kinds
            return
    pytest.fail("no forced switch in the fixtures")


def test_every_legal_action_round_trips_through_an_order():
    for _, battle in all_decisions():
        mask = F.action_mask(battle)
        for a in range(F.N_ACTIONS):
            if mask[a]:
                assert F.order_to_action(F.action_to_order(a, battle), battle) == a
                # the mask the caller already has gives the same order
                assert F.action_to_order(a, battle, mask).message == \
                    F.action_to_order(a, battle).message
            else:
                with pytest.raises(ValueError):
                    F.action_to_order(a, battle)
                with pytest.raises(ValueError):
                    F.action_to_order(a, battle, mask)


def test_poke_env_orders_map_to_our_actions():
    for _, battle in all_decisions():
        mask = F.action_mask(battle)
        for move in battle.available_moves:
            a = F.order_to_action(SingleBattleOrder(move), battle)
            assert a is not None and mask[a]
        for mon in battle.available_switches:
            a = F.order_to_action(SingleBattleOrder(mon), battle)
            assert a is not None and mask[a] and a >= F.N_MOVES
        assert F.order_to_action(DefaultBattleOrder(), battle) is None
        assert mask[F.default_action(mask)]


@pytest.mark.parametrize("log", LOGS, ids=lambda log: f"{log['battle_tag']}-{log['username']}")
def test_final_facts_match_the_outcome(log):
    battle = final_battle(log)
    facts = dict(zip(F.FACTS, F.reward_facts(battle)))
    if battle.won:
        assert facts["opp_fainted"] == 6 and facts["opp_hp"] == 0.0
    else:
        assert facts["own_fainted"] == 6 and facts["own_hp"] == 0.0


def test_type_chart_is_gen1():
    t = dex.TYPE_VOCAB
    assert dex.type_multiplier(t["GHOST"], (t["PSYCHIC"], 0)) == 0  # the Gen 1 bug
    assert dex.type_multiplier(t["BUG"], (t["POISON"], 0)) == 2
    assert dex.type_multiplier(t["ICE"], (t["FIRE"], 0)) == 1
    assert dex.type_multiplier(t["ELECTRIC"], (t["GROUND"], t["ROCK"])) == 0


def test_vocabularies_are_stable_and_gen1_only():
    species, moves = dex.species_vocab(), dex.move_vocab()
    assert len(species) == 151 and species["bulbasaur"] == 2 and species["mew"] == 152
    assert moves["fight"] == 2 and moves["recharge"] == 3 and moves["struggle"] == 4
    assert len(moves) == 165 + 2  # 165 Gen 1 moves (Struggle among them) + fight + recharge


def test_dex_facts_come_from_the_gen1_data():
    assert len(dex.TYPES) == 15 and "STEEL" not in dex.TYPES and "DRAGON" in dex.TYPES
    assert dex.PARTIAL_TRAPPING_MOVES == {"wrap", "bind", "clamp", "firespin"}
    assert dex.HEALING_MOVES == {"recover", "softboiled", "rest"}
