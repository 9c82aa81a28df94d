"""Gen 1 damage estimates, against hand-computed values, and the per-action features built on them."""

import numpy as np
import pytest

from metamon_sp import damage
from metamon_sp import features as F
from metamon_sp.damage import Side
from tests.replay import battle_logs, decisions

NUM = {name: i for i, name in enumerate(F.FEATURE_SPEC.num)}


def _side(types, base, hp_frac=1.0, **kw):
    """An opponent-style side from base stats (hp, atk, def, spc, spe)."""
    hp = damage.estimated_stat(base[0], hp=True)
    atk, de, spc, spe = (damage.estimated_stat(b) for b in base[1:])
    return Side(types=types, atk=atk, defense=de, special=spc, speed=spe, hp=hp * hp_frac,
                max_hp=hp, **kw)


TAUROS = _side(("NORMAL",), (75, 100, 95, 70, 110))
CHANSEY = _side(("NORMAL",), (250, 5, 5, 105, 50))
GENGAR = _side(("GHOST", "POISON"), (60, 65, 60, 130, 110))


def test_level_100_stats_with_full_dvs_and_stat_experience():
    assert damage.estimated_stat(100) == 298 and damage.estimated_stat(250, hp=True) == 703


def test_body_slam_matches_the_gen1_formula_by_hand():
    # ((42 * 85 * 298 / 108) / 50 + 2) * 1.5 STAB * 236/255 average roll
    expected = ((42 * 85 * 298 / 108) / 50 + 2) * 1.5 * 236 / 255
    assert damage.move_damage("bodyslam", TAUROS, CHANSEY) == pytest.approx(expected)
    assert damage.hp_share(expected, CHANSEY) == pytest.approx(expected / 703)


def test_type_immunity_special_split_and_gen1_quirks():
    assert damage.move_damage("bodyslam", TAUROS, GENGAR) == 0.0  # Ghost: immune to Normal
    assert damage.move_damage("seismictoss", CHANSEY, GENGAR) == 100.0  # ignores immunity in Gen 1
    assert damage.move_damage("superfang", TAUROS, _side(("NORMAL",), (250, 5, 5, 105, 50), 0.5)) \
        == pytest.approx(703 * 0.5 / 2)
    # Ice is special in Gen 1: Chansey's 308 Special, not its 108 Defense, takes the hit
    blizzard = damage.move_damage("blizzard", TAUROS, CHANSEY)
    assert blizzard == pytest.approx(((42 * 120 * 238 / 308) / 50 + 2) * 236 / 255)
    # Explosion halves the target's Defense; Reflect doubles it
    halved = damage.move_damage("explosion", TAUROS, CHANSEY)
    assert halved == pytest.approx(((42 * 170 * 298 / 54) / 50 + 2) * 1.5 * 236 / 255)
    shielded = CHANSEY._replace(reflect=True)
    assert damage.move_damage("bodyslam", TAUROS, shielded) < damage.move_damage("bodyslam", TAUROS, CHANSEY)
    assert damage.move_damage("thunderwave", TAUROS, CHANSEY) == 0.0
    assert damage.move_damage("dreameater", GENGAR, CHANSEY) == 0.0  # only on a sleeping target
    assert damage.move_damage("not-a-move", TAUROS, CHANSEY) == 0.0


def test_knockouts_cap_at_one_and_unrevealed_threats_use_stab():
    weak = _side(("NORMAL",), (250, 5, 5, 105, 50), hp_frac=0.1)
    assert damage.best_share(["bodyslam"], TAUROS, weak) == 1.0
    assert damage.best_share(["hyperbeam", "bodyslam"], TAUROS, CHANSEY) == pytest.approx(
        damage.move_damage("hyperbeam", TAUROS, CHANSEY) * 0.9 / 703)  # accuracy-weighted
    assert damage.threat_share(["_stab_NORMAL"], TAUROS, GENGAR) == 0.0
    assert 0 < damage.threat_share(["_stab_NORMAL"], TAUROS, CHANSEY) < 1


def test_action_features_are_filled_from_recorded_battles():
    """Across recorded decisions: a legal damaging move has a damage estimate, the matchup of a
    fainted slot is empty, and knockout implies the estimate reaches the opponent's HP."""
    damaging = fainted = 0
    for log in battle_logs()[:4]:
        for battle in decisions(log):
            obs = F.featurize(battle)
            for i in range(F.N_MOVES):
                d, ko = obs.num[NUM[f"move{i}_damage"]], obs.num[NUM[f"move{i}_knockout"]]
                assert 0.0 <= d <= 1.0 and ko in (0.0, 1.0)
                if ko:
                    assert d > 0.8
                damaging += d > 0
            for i, mon in enumerate(list(battle.team.values())[:F.N_SLOTS]):
                row = [obs.num[NUM[f"own{i}_{k}"]] for k in F.MATCHUP]
                if mon.fainted:
                    fainted += 1
                    assert row == [0.0] * len(F.MATCHUP)
                else:
                    assert 0 <= row[0] <= 1 and 0 <= row[1] <= 1 and row[2] in (-1, 0, 1)
    assert damaging > 50 and fainted > 0
    assert np.isfinite(obs.num).all()


def test_both_rolls_at_once_equal_move_damage_to_the_last_bit():
    asleep = CHANSEY._replace(asleep=True)
    for move in ("bodyslam", "blizzard", "explosion", "pinmissile", "seismictoss", "superfang",
                 "fissure", "dreameater", "thunderwave", "notamove"):
        for attacker, defender in ((TAUROS, CHANSEY), (GENGAR, asleep), (CHANSEY, GENGAR)):
            avg, low = damage.move_damages(move, attacker, defender)
            assert avg == damage.move_damage(move, attacker, defender)
            assert low == damage.move_damage(move, attacker, defender, roll=damage.MIN_ROLL)
