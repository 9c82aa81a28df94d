"""Gen 1 damage estimates: what a move of one Pokémon would do to another, as a share of HP.

The featurizer gives the model these per action (each move, each switch-in) so a choice can be
scored by the same small network whatever the slot, species or team: the quantities a player
reasons with, computed from what the player can see. Own stats are known exactly (the request
lists them); the opponent's are estimated from base stats at level 100 with maximal DVs and stat
experience, the Gen 1 OU norm. Critical hits, damage rolls' spread and move side effects are left
to the model.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple, Sequence

from poke_env.battle import Effect, Move, Pokemon, Status

from metamon_sp import dex

LEVEL = 100
AVG_ROLL = 236 / 255  # Gen 1 damage is multiplied by a roll in [217, 255] / 255
MIN_ROLL = 217 / 255
# Gen 1 decides physical or special by the move's type, not by the move.
SPECIAL_TYPES = frozenset({"FIRE", "WATER", "GRASS", "ELECTRIC", "ICE", "PSYCHIC", "DRAGON"})
FIXED_DAMAGE = {"seismictoss": LEVEL, "nightshade": LEVEL, "dragonrage": 40, "sonicboom": 20,
                "psywave": 75}
GENERIC_POWER = 80  # the power assumed for an opponent's unrevealed STAB attack


def estimated_stat(base: int, hp: bool = False) -> float:
    """A level-100 Gen 1 stat with DV 15 and full stat experience."""
    return 2 * base + (203 if hp else 98)


def boost_multiplier(stage: int) -> float:
    return (2 + stage) / 2 if stage >= 0 else 2 / (2 - stage)


class Side(NamedTuple):
    """What a damage estimate needs to know of one Pokémon. (A tuple: built several times per
    decision and part of the featurizer's cache keys, so cheap to make and to hash.)"""
    types: tuple[str, ...]         # upper-case type names
    atk: float                     # effective stats, boosts and burn applied
    defense: float
    special: float
    speed: float
    hp: float                      # current HP points (estimated for the opponent)
    max_hp: float
    asleep: bool = False
    reflect: bool = False


def side_of(mon: Pokemon, known_stats: bool) -> Side:
    """Own Pokémon: the request's stats. Opponent's: estimates from base stats."""
    # Built ~5 times per decision: no generators, and enum members are read by `_name_` and
    # tested for membership only in non-empty dicts (an Enum's hash runs in Python).
    boosts, status, st = mon.boosts, mon.status, mon.stats
    if known_stats and st.get("atk"):
        atk, de = float(st.get("atk") or 0), float(st.get("def") or 0)
        spa, spe = float(st.get("spa") or 0), float(st.get("spe") or 0)
        max_hp = float(mon.max_hp or 1)
        hp = float(mon.current_hp or 0) if mon.max_hp else mon.current_hp_fraction * max_hp
    else:
        b = mon.base_stats  # a transformed Pokémon's are its target's
        atk, de = estimated_stat(b.get("atk", 0)), estimated_stat(b.get("def", 0))
        spa, spe = estimated_stat(b.get("spa", 0)), estimated_stat(b.get("spe", 0))
        max_hp = estimated_stat(b.get("hp", 0), hp=True)
        hp = mon.current_hp_fraction * max_hp
    atk = atk * _BOOST[boosts.get("atk", 0)]
    if status is Status.BRN:
        atk /= 2
    speed = spe * _BOOST[boosts.get("spe", 0)]
    if status is Status.PAR:
        speed /= 4
    t1, t2 = mon.type_1, mon.type_2
    types = (() if t1 is None else (t1._name_,)) + (() if t2 is None else (t2._name_,))
    effects = mon.effects
    return Side(types, atk, de * _BOOST[boosts.get("def", 0)],
                spa * _BOOST[boosts.get("spa", 0)], speed, hp, max_hp,
                status is Status.SLP, bool(effects) and Effect.REFLECT in effects)


class _Multipliers(dict):
    """Stage -> multiplier, looked up at C speed for the stages Showdown allows (-6..6)."""

    def __missing__(self, stage: int) -> float:
        return boost_multiplier(stage)


_BOOST = _Multipliers({stage: boost_multiplier(stage) for stage in range(-6, 7)})


@lru_cache(maxsize=4096)
def _type_mult(move_type: str, defender_types: tuple[str, ...]) -> float:
    t = dex.TYPE_VOCAB.get(move_type, 0)
    d = [dex.TYPE_VOCAB.get(x, 0) for x in defender_types] + [0, 0]
    return dex.type_multiplier(t, (d[0], d[1])) if d[0] else 1.0


class _Attack(NamedTuple):
    """What `move_damage` reads of a move's dex entry, looked up once per move."""
    kind: str          # "none" (no damage or unknown), "fixed", "superfang", "ohko", "formula"
    move_type: str
    power: float
    n_hits: float
    halve_defense: bool
    fixed: float = 0.0


@lru_cache(maxsize=1024)
def _attack(move_id: str) -> _Attack:
    entry = dex.move_entry(move_id)
    if entry is None:
        return _Attack("none", "", 0, 1, False)
    move_type = str(entry.get("type", "")).upper()
    if move_id in FIXED_DAMAGE:  # fixed damage ignores type immunity in Gen 1
        return _Attack("fixed", move_type, 0, 1, False, float(FIXED_DAMAGE[move_id]))
    if move_id == "superfang":
        return _Attack("superfang", move_type, 0, 1, False)
    if entry.get("ohko"):
        return _Attack("ohko", move_type, 0, 1, False)
    power = entry.get("basePower", 0)
    if entry.get("category") == "Status" or power <= 1:
        return _Attack("none", move_type, 0, 1, False)
    hits = entry.get("multihit")
    n_hits = (sum(hits) / 2 + 0.5 if isinstance(hits, list) else hits) if hits else 1
    # Explosion and Self-Destruct halve the target's Defense in Gen 1
    return _Attack("dreameater" if move_id == "dreameater" else "formula", move_type, power,
                   n_hits, bool(entry.get("selfdestruct")))


def move_damage(move: Move | str, attacker: Side, defender: Side, roll: float = AVG_ROLL) -> float:
    """Expected HP points a hit of `move` takes off `defender` (accuracy not applied)."""
    a = _attack(move if isinstance(move, str) else move.id)
    kind = a.kind
    if kind == "formula" or (kind == "dreameater" and defender.asleep):
        return _formula(a.power, a.move_type, attacker, defender, roll,
                        halve_defense=a.halve_defense) * a.n_hits
    if kind == "fixed":
        return a.fixed
    if kind == "superfang":
        return defender.hp / 2
    if kind == "ohko":
        return defender.hp if attacker.speed >= defender.speed else 0.0
    return 0.0


def move_damages(move_id: str, attacker: Side, defender: Side) -> tuple[float, float]:
    """`move_damage` at the average roll and at the lowest, the formula worked out once."""
    a = _attack(move_id)
    kind = a.kind
    if kind == "formula" or (kind == "dreameater" and defender.asleep):
        p = _unrolled(a.power, a.move_type, attacker, defender, a.halve_defense)
        return p * AVG_ROLL * a.n_hits, p * MIN_ROLL * a.n_hits
    dmg = move_damage(move_id, attacker, defender)
    return dmg, dmg


def _formula(power: float, move_type: str, attacker: Side, defender: Side, roll: float,
             halve_defense: bool = False) -> float:
    """Gen 1's damage formula at level 100 for one hit of an attack of this power and type."""
    return _unrolled(power, move_type, attacker, defender, halve_defense) * roll


def _unrolled(power: float, move_type: str, attacker: Side, defender: Side,
              halve_defense: bool) -> float:
    """`_formula` before the roll (multiplied last, so either roll gives `_formula`'s bits)."""
    special = move_type in SPECIAL_TYPES
    a = attacker.special if special else attacker.atk
    d = defender.special if special else defender.defense * (2 if defender.reflect else 1)
    if halve_defense:
        d /= 2
    base = (2 * LEVEL / 5 + 2) * power * a / max(d, 1.0) / 50 + 2
    stab = 1.5 if move_type in attacker.types else 1.0
    return base * stab * _type_mult(move_type, defender.types)


def hp_share(damage: float, defender: Side) -> float:
    """Damage as a share of the defender's current HP, capped at 1 (a knockout)."""
    return min(1.0, damage / defender.hp) if defender.hp > 0 else 0.0


def best_share(moves: Sequence[str], attacker: Side, defender: Side) -> float:
    """The largest accuracy-weighted share of the defender's HP one of `moves` takes."""
    moves = tuple(moves)
    return shares(_hits(moves, profile(attacker), profile(defender), False), moves, attacker,
                  defender)


def threat_share(moves: Sequence[str], attacker: Side, defender: Side) -> float:
    """`best_share`, where `_stab_<TYPE>` stands for an unrevealed STAB attack of that type
    (its share not weighted by accuracy)."""
    moves = tuple(moves)
    return shares(_hits(moves, profile(attacker), profile(defender), True), moves, attacker,
                  defender)


def profile(side: Side) -> tuple:
    """`side` without its HP, which a hit's damage does not depend on (but Super Fang's and
    one-hit KOs', which `shares` works out): the same pairs recur decision after decision while
    HP changes, so their damages are cached under this key."""
    return side[:5] + side[7:]


Hits = tuple[tuple[float | None, float], ...]


@lru_cache(maxsize=1 << 16)
def _hits(moves: tuple[str, ...], attacker: tuple, defender: tuple, threats: bool) -> Hits:
    """Per move, (damage of a hit, the weight its share of HP gets): damage None where it
    depends on HP. `threats`: `_stab_<TYPE>` stands for an unrevealed STAB attack (weight 1)."""
    a = Side(*attacker[:5], 0.0, 0.0, *attacker[5:])
    d = Side(*defender[:5], 0.0, 0.0, *defender[5:])
    rows: list[tuple[float | None, float]] = []
    for m in moves:
        if threats and m.startswith("_stab_"):
            rows.append((_formula(GENERIC_POWER, m[len("_stab_"):], a, d, AVG_ROLL), 1.0))
        elif _attack(m).kind in _HP_BOUND:
            rows.append((None, _accuracy(m)))
        else:
            rows.append((move_damage(m, a, d), _accuracy(m)))
    return tuple(rows)


_HP_BOUND = frozenset({"superfang", "ohko"})


@lru_cache(maxsize=1 << 16)
def matchup_hits(mine: tuple[str, ...], threats: tuple[str, ...], us: tuple, them: tuple
                 ) -> tuple[Hits, Hits]:
    """`best_share`'s hits of our moves on them and `threat_share`'s of theirs on us, under
    one cache key (`us`, `them`: `profile`s): the featurizer asks for both per own slot."""
    return _hits(mine, us, them, False), _hits(threats, them, us, True)


def shares(hits: Hits, moves: tuple[str, ...], attacker: Side, defender: Side) -> float:
    """The largest of `hp_share(damage, defender) * weight` over `hits` (0 if none)."""
    # the same operations in the same order as `hp_share` per move: the same bits
    hp = defender.hp
    best = 0.0
    for (dmg, weight), m in zip(hits, moves):
        if dmg is None:
            dmg = move_damage(m, attacker, defender)
        share = (min(1.0, dmg / hp) if hp > 0 else 0.0) * weight
        if share > best:
            best = share
    return best


@lru_cache(maxsize=1024)
def _accuracy(move_id: str) -> float:
    entry = dex.move_entry(move_id)
    acc = entry.get("accuracy", True) if entry else True
    return 1.0 if acc is True else acc / 100


def threat_moves(mon: Pokemon) -> list[str]:
    """The opponent's moves a player should fear: those it revealed, else a STAB attack per type."""
    revealed = [m for m in mon.moves if dex.move_entry(m) is not None]
    if revealed:
        return revealed
    return [f"_stab_{t.name}" for t in mon.types if t is not None]
