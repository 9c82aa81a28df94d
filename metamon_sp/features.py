"""The one Gen 1 featurizer: battle → observation, legality mask, reward facts; action ↔ order.

The same functions serve live play (players call them on poke-env `Battle` objects, or on the
`Gen1Battle`s of metamon_sp/gen1_battle.py, which read the same), stored data (trajectories hold
exactly what they returned) and evaluation.

Action space (fixed, N_ACTIONS = 10):
    0..3  the i-th move of the current request, i.e. Showdown's `/choose move i+1`. When the
          server offers only a pseudo-move (`fight` while asleep, frozen or partially trapped,
          `recharge` after Hyper Beam, `struggle`), it is action 0 and its id shows in move slot 0.
    4..9  switch to own team slot i-4, slots in the order the server first listed the team.

Observation = `num` (float32[N_NUM]) + `cat` (int16[N_CAT]); `FEATURE_SPEC` names every column and
the vocabulary each categorical column indexes, so a model can build its embeddings from it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from poke_env.battle import Battle, Effect, Move, Pokemon, Status
from poke_env.player.battle_order import BattleOrder, DefaultBattleOrder, SingleBattleOrder

from metamon_sp import damage, dex
from metamon_sp.gen1_battle import Gen1Mon

FEATURES_VERSION = 2
N_MOVES, N_SLOTS = 4, 6
N_ACTIONS = N_MOVES + N_SLOTS
MOVE_ACTIONS = range(0, N_MOVES)
SWITCH_ACTIONS = range(N_MOVES, N_ACTIONS)

BOOSTS = ("atk", "def", "spa", "spe", "accuracy", "evasion")  # Gen 1: spa is Special
VOLATILES = (Effect.CONFUSION, Effect.SUBSTITUTE, Effect.REFLECT,
             Effect.LEECH_SEED, Effect.FOCUS_ENERGY, Effect.MIST, Effect.DISABLE)
_STATUS_ID = {Status.BRN: 1, Status.FRZ: 2, Status.PAR: 3, Status.PSN: 4, Status.SLP: 5,
              Status.TOX: 6, Status.FNT: 7}
# Keyed by name: an Enum member's hash runs in Python, a string's is cached.
_STATUS_ID_BY_NAME = {s._name_: i for s, i in _STATUS_ID.items()}
_NO_VOLATILES = [0.0] * len(VOLATILES)
_VOLATILE_NAMES = tuple(e._name_ for e in VOLATILES)

# Per own slot, against the opponent's active Pokémon (see `damage`): the best share of its HP
# one of our moves takes, the best share of ours one of its (revealed or typical) moves takes,
# who moves first (+1 us, -1 them), and the worst type multiplier its types have on us (log2 / 2).
MATCHUP = ("best_damage", "threat", "outspeeds", "type_threat")

# Reward facts, one row per decision plus a final row at the end of the battle.
FACTS = ("own_hp", "opp_hp", "own_status", "opp_status", "own_fainted", "opp_fainted")
N_FACTS = len(FACTS)


def _names() -> tuple[list[str], list[tuple[str, str]]]:
    num = ["turn", "own_alive", "opp_alive", "opp_revealed", "force_switch", "trapped",
           "pseudo_move_only", "must_recharge", "partially_trapped", "trapping_opponent",
           "own_last_move_hit", "opp_last_move_hit"]
    for i in range(N_SLOTS):
        num += [f"own{i}_{k}" for k in ("hp", "fainted", "active", "max_hp", "atk", "def", "spc",
                                        "spe", "status_turns")]
    for side in ("own", "opp"):
        num += [f"{side}_active_boost_{b}" for b in BOOSTS]
        num += [f"{side}_active_{e.name.lower()}" for e in VOLATILES]
    for i in range(N_SLOTS):
        num += [f"opp{i}_{k}" for k in ("hp", "fainted", "active", "revealed", "base_hp",
                                        "base_atk", "base_def", "base_spc", "base_spe")]
    for i in range(N_MOVES):
        num += [f"move{i}_{k}" for k in ("power", "accuracy", "pp", "priority", "effectiveness",
                                         "immune", "stab", "is_status", "heals", "legal",
                                         "damage", "knockout")]
    for i in range(N_SLOTS):
        num += [f"own{i}_{k}" for k in MATCHUP]
    cat: list[tuple[str, str]] = []
    for side in ("own", "opp"):
        for i in range(N_SLOTS):
            cat += [(f"{side}{i}_species", "species"), (f"{side}{i}_status", "status"),
                    (f"{side}{i}_type1", "type"), (f"{side}{i}_type2", "type")]
            cat += [(f"{side}{i}_move{j}", "move") for j in range(N_MOVES)]
    for i in range(N_MOVES):
        cat += [(f"move{i}_id", "move"), (f"move{i}_type", "type")]
    cat += [("own_last_move", "move"), ("opp_last_move", "move")]
    return num, cat


@dataclass(frozen=True)
class FeatureSpec:
    version: int
    num: tuple[str, ...]
    cat: tuple[str, ...]
    cat_vocab: tuple[str, ...]
    vocab_sizes: dict[str, int]
    n_actions: int
    facts: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "num": list(self.num), "cat": list(self.cat),
                "cat_vocab": list(self.cat_vocab), "vocab_sizes": self.vocab_sizes,
                "n_actions": self.n_actions, "facts": list(self.facts)}

    @property
    def hash(self) -> str:
        blob = json.dumps(self.to_json(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _spec() -> FeatureSpec:
    num, cat = _names()
    return FeatureSpec(FEATURES_VERSION, tuple(num), tuple(n for n, _ in cat),
                       tuple(v for _, v in cat), dex.vocab_sizes(), N_ACTIONS, FACTS)


FEATURE_SPEC = _spec()
N_NUM, N_CAT = len(FEATURE_SPEC.num), len(FEATURE_SPEC.cat)


@dataclass
class Observation:
    num: np.ndarray   # (N_NUM,) float32
    cat: np.ndarray   # (N_CAT,) int16
    mask: np.ndarray  # (N_ACTIONS,) bool
    facts: np.ndarray  # (N_FACTS,) float32


# --------------------------------------------------------------------------------- the request
def request_moves(battle: Battle) -> list[dict[str, Any]]:
    """The active Pokémon's move slots as the server lists them (what `/choose move i` means)."""
    req = battle.last_request or {}
    if battle.force_switch or not req.get("active"):
        return []
    return list(req["active"][0].get("moves", []))[:N_MOVES]


def _slot_legal(slot: dict[str, Any]) -> bool:
    return not slot.get("disabled", False) and slot.get("pp", 1) != 0


def action_mask(battle: Battle, slots: list[dict[str, Any]] | None = None) -> np.ndarray:
    """Legal actions; `slots` are the request's move slots when the caller has them already."""
    # built as a list, then one array: item assignment into an array costs more than the list
    legal = [_slot_legal(s) for s in (request_moves(battle) if slots is None else slots)]
    legal += _NO_ACTIONS[:N_MOVES - len(legal)]
    switches = battle.available_switches
    if switches:
        switchable = {id(m) for m in switches}
        team = list(battle.team.values())[:N_SLOTS]
        legal += [id(m) in switchable for m in team]
        legal += _NO_ACTIONS[:N_SLOTS - len(team)]
    else:
        legal += _NO_ACTIONS[:N_SLOTS]
    return np.array(legal, dtype=bool)


_NO_ACTIONS = [False] * N_ACTIONS


def action_to_order(action: int, battle: Battle, mask: np.ndarray | None = None) -> BattleOrder:
    """The order that carries out `action`; raises ValueError if the action is not legal now
    (`mask`: the battle's `action_mask`, when the caller has it already)."""
    if not (action_mask(battle) if mask is None else mask)[action]:
        raise ValueError(f"action {action} is not legal in {battle.battle_tag} turn {battle.turn}")
    if action < N_MOVES:
        return SingleBattleOrder(f"/choose move {action + 1}")
    mon = list(battle.team.values())[action - N_MOVES]
    # poke-env's order names a poke-env Pokémon; a `Gen1Battle`'s is named the same way
    return SingleBattleOrder(mon if isinstance(mon, Pokemon) else f"/choose switch {mon.name}")


def order_to_action(order: BattleOrder, battle: Battle) -> int | None:
    """The action index of an order a player chose, or None for Showdown's default choice."""
    if isinstance(order, DefaultBattleOrder) or not isinstance(order, SingleBattleOrder):
        return None
    target = order.order
    if isinstance(target, Pokemon):
        for i, mon in enumerate(list(battle.team.values())[:N_SLOTS]):
            if mon is target or mon.species == target.species:
                return N_MOVES + i
        return None
    if isinstance(target, Move):
        slots = request_moves(battle)
        for i, slot in enumerate(slots):
            if slot.get("id") == target.id and _slot_legal(slot):
                return i
        if target.id in dex.PSEUDO_MOVES and slots:
            return 0
        return None
    if isinstance(target, str) and target.startswith("/choose move "):
        arg = target.split()[-1]
        return int(arg) - 1 if arg.isdigit() else None
    return None


def default_action(mask: np.ndarray) -> int:
    """Showdown's default choice: the first legal move, else the first legal switch."""
    legal = np.flatnonzero(mask)
    if legal.size == 0:
        raise ValueError("no legal action: the request is a wait request")
    return int(legal[0])


# ----------------------------------------------------------------------------- battle history
def _is_turn(ev: list[str]) -> bool:
    return len(ev) > 1 and ev[1] == "turn"


def last_turn_events(battle: Battle) -> list[list[str]]:
    """Messages since the previous `|turn|`: the turn just played when a move is requested,
    the turn so far when a switch is forced mid-turn. (Showdown sends the log before the
    request; poke-env 0.16 keeps every parsed message.)"""
    events = battle._replay_data  # pinned poke-env version; covered by the featurizer tests
    i = len(events) - 1
    if i >= 0 and _is_turn(events[i]):
        i -= 1
    start = i
    while i >= 0 and not _is_turn(events[i]):
        i -= 1
    return events[i + 1:start + 1]


def _move_outcomes(battle: Battle) -> dict[str, tuple[str, bool]]:
    """For each side, the last move it used last turn and whether that move connected."""
    role = battle.player_role or "p1"
    result: dict[str, tuple[str, bool]] = {}
    current: str | None = None
    for ev in last_turn_events(battle):
        if len(ev) < 3:
            continue
        kind = ev[1]
        if kind == "move":
            current = "own" if ev[2].startswith(role) else "opp"
            move_id = _to_id(ev[3])
            missed = not _MISSED.isdisjoint(ev[4:])
            result[current] = (move_id, not missed)
        elif kind in ("-miss", "-fail", "-immune") and current in result:
            result[current] = (result[current][0], False)
    return result


_MISSED = frozenset({"[miss]", "[still]", "[notarget]"})


@lru_cache(maxsize=1 << 12)
def _to_id(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


# --------------------------------------------------------------------------------- featurizing
def _status_id(mon: Pokemon) -> int:
    status = mon.status
    return _STATUS_ID_BY_NAME.get(status._name_, 0) if status else 0


@lru_cache(maxsize=1 << 14)
def _mon_cat(species: str, status_id: int, moves: tuple[str, ...]) -> tuple[int, ...]:
    """A Pokémon's categorical columns: species, status, types, moves (padded)."""
    info = dex.species_info(species)
    ids = [dex.move_info(m).id for m in moves[:N_MOVES]]
    return (info.id, status_id, *info.types, *ids, *[dex.PAD] * (N_MOVES - len(ids)))


@lru_cache(maxsize=1 << 14)
def _damaging(moves: tuple[str, ...]) -> tuple[str, ...]:
    """The real moves among `moves` (those the damage estimates know)."""
    return tuple(m for m in moves if dex.move_entry(m) is not None)


class _View(NamedTuple):
    """What featurizing reads of one Pokémon on its own: its slot's numeric and categorical
    columns, its side for the damage estimates and the moves they use (our damaging moves,
    the opponent's threats)."""
    num: tuple[float, ...]
    cat: tuple[int, ...]
    side: damage.Side
    attacks: tuple[str, ...]


def _view(mon: Pokemon, own: bool) -> _View:
    """`mon`'s `_View`; a `Gen1Mon`'s is kept on it until its `version` changes (most of a
    team stands still from one decision to the next)."""
    if type(mon) is not Gen1Mon:
        return _make_view(mon, own)
    kept = mon.feature_view
    if kept is not None and kept[0] == mon.version:
        return kept[1]
    view = _make_view(mon, own)
    mon.feature_view = (mon.version, view)
    return view


def _view_of(mon: Pokemon, mons: list[Pokemon], views: list[_View], own: bool) -> _View:
    """`mon`'s view among `views` (those of `mons`), else its own."""
    for m, v in zip(mons, views):
        if m is mon:
            return v
    return _view(mon, own)


def _make_view(m: Pokemon, own: bool) -> _View:
    if own:
        st = m.stats
        num = (m.current_hp_fraction, float(m.fainted), float(m.active), (m.max_hp or 0) / 704.0,
               (st.get("atk") or 0) / 500.0, (st.get("def") or 0) / 500.0,
               (st.get("spa") or 0) / 500.0, (st.get("spe") or 0) / 500.0,
               min(m.status_counter, 8) / 8.0)
    else:
        num = (m.current_hp_fraction, float(m.fainted), float(m.active), 1.0,
               *dex.species_info(m.species).base)
    moves = tuple(m.moves)
    return _View(num, _mon_cat(m.species, _status_id(m), moves),
                 damage.side_of(m, known_stats=own),
                 _damaging(moves) if own else tuple(damage.threat_moves(m)))


def _facts(battle: Battle) -> list[float]:
    own_hp, own_status, own_fainted = _side_facts(battle.team.values())
    opp = list(battle.opponent_team.values())
    opp_hp, opp_status, opp_fainted = _side_facts(opp)
    return [own_hp, opp_hp + max(0, N_SLOTS - len(opp)), own_status, opp_status,
            own_fainted, opp_fainted]


def _side_facts(mons: Any) -> tuple[float, int, int]:
    """Summed HP fraction, Pokémon alive with a status, Pokémon fainted."""
    hp, statused, fainted = 0, 0, 0
    for m in mons:
        hp += m.current_hp_fraction
        status = m.status
        if status is Status.FNT:
            fainted += 1
        elif status:
            statused += 1
    return hp, statused, fainted


def _matchups(own: list[Pokemon], own_views: list[_View], opp_active: Pokemon | None,
              facing: _View | None) -> list[float]:
    """`MATCHUP` for each own slot against the opponent's active Pokémon (`facing`: its view).
    All but our best damage's share of its HP are kept on a `Gen1Mon` while it stands and the
    opponent's side but for its HP does (its HP changes most turns)."""
    out: list[float] = []
    if opp_active is None or facing is None:
        return [0.0] * (len(MATCHUP) * N_SLOTS)
    them, threats = facing.side, facing.attacks
    them_profile = damage.profile(them)
    opp_types: tuple[int, ...] | None = None
    for i in range(N_SLOTS):
        if i >= len(own) or own[i].fainted:
            out += _NO_MATCHUP
            continue
        mon = own[i]
        us, mine = own_views[i].side, own_views[i].attacks
        kept = getattr(mon, "feature_matchup", None)
        if kept is not None and kept[0] == mon.version and kept[1] == them_profile \
                and kept[2] == threats:
            hits, rest = kept[3], kept[4]
        else:
            if opp_types is None:
                opp_types = tuple(dex.TYPE_VOCAB.get(t._name_, 0) for t in opp_active.types
                                  if t is not None)
            hits, threat_hits = damage.matchup_hits(mine, threats, damage.profile(us),
                                                    them_profile)
            speed, their_speed = us.speed, them.speed
            rest = (damage.shares(threat_hits, threats, them, us),
                    # np.sign's values, without its call
                    1.0 if speed > their_speed else (-1.0 if speed < their_speed else 0.0),
                    _type_threat(opp_types, dex.species_info(mon.species).types))
            if type(mon) is Gen1Mon:
                mon.feature_matchup = (mon.version, them_profile, threats, hits, rest)
        out.append(damage.shares(hits, mine, us, them))
        out += rest
    return out


_NO_MATCHUP = (0.0,) * len(MATCHUP)


@lru_cache(maxsize=1 << 12)
def _type_threat(opp_types: tuple[int, ...], own_types: tuple[int, int]) -> float:
    """The worst type multiplier the opponent's types have on ours, as log2 / 2."""
    worst = max((dex.type_multiplier(t, own_types) for t in opp_types), default=1.0)
    return float(np.log2(worst)) / 2.0 if worst > 0 else -1.0


def reward_facts(battle: Battle) -> np.ndarray:
    return np.asarray(_facts(battle), dtype=np.float32)


def featurize(battle: Battle) -> Observation:
    """Observation, legality mask and reward facts of `battle` as the player to move sees it."""
    num: list[float] = []
    cat: list[int] = []
    own = list(battle.team.values())[:N_SLOTS]
    opp = list(battle.opponent_team.values())[:N_SLOTS]
    active, opp_active = battle.active_pokemon, battle.opponent_active_pokemon
    slots = request_moves(battle)
    slot_ids = [s.get("id", "") for s in slots]
    pseudo_only = len(slot_ids) == 1 and slot_ids[0] in dex.PSEUDO_MOVES
    outcomes = _move_outcomes(battle)
    own_last, own_hit = outcomes.get("own", ("", False))
    opp_last, opp_hit = outcomes.get("opp", ("", False))
    # Gen 1 partial trapping has no poke-env effect: infer it. `fight` is offered only while
    # asleep, frozen or partially trapped, so `fight` while awake and unfrozen means trapped.
    asleep_or_frozen = active is not None and active.status in (Status.SLP, Status.FRZ)
    partially_trapped = slot_ids == ["fight"] and not asleep_or_frozen
    trapping = own_hit and own_last in dex.PARTIAL_TRAPPING_MOVES and opp_active is not None \
        and not opp_active.fainted

    own_fainted = len([m for m in own if m.fainted])  # (generators cost more per item)
    opp_fainted = len([m for m in opp if m.fainted])
    num += [min(battle.turn, 300) / 100.0,
            (len(own) - own_fainted) / N_SLOTS,
            (N_SLOTS - opp_fainted) / N_SLOTS,
            len(opp) / N_SLOTS,
            float(battle.force_switch), float(battle.trapped), float(pseudo_only),
            float(active is not None and active.must_recharge),
            float(partially_trapped), float(trapping), float(own_hit), float(opp_hit)]

    own_views = [_view(m, True) for m in own]
    opp_views = [_view(m, False) for m in opp]
    for v in own_views:
        num += v.num
    num += [0.0] * (9 * (N_SLOTS - len(own)))
    for mon in (active, opp_active):
        boosts = mon.boosts if mon is not None else {}
        effects = mon.effects if mon is not None else {}
        num += [boosts.get(b, 0) / 6.0 for b in BOOSTS]
        if effects:  # by name: an Effect's hash runs in Python, and effects are few
            names = {e._name_ for e in effects}
            num += [float(n in names) for n in _VOLATILE_NAMES]
        else:
            num += _NO_VOLATILES
    for v in opp_views:
        num += v.num
    num += [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0] * (N_SLOTS - len(opp))

    opp_types = dex.species_info(opp_active.species).types if opp_active else (0, 0)
    own_types = dex.species_info(active.species).types if active else (0, 0)
    # the actives' views from the slots' (a poke-env battle's are not kept: made once only)
    me = _view_of(active, own, own_views, True).side if active is not None else None
    facing = _view_of(opp_active, opp, opp_views, False) if opp_active is not None else None
    them = facing.side if facing is not None else None
    move_cat: list[int] = []
    for i in range(N_MOVES):
        if i < len(slots):
            s = slots[i]
            info = dex.move_info(s.get("id", ""))
            maxpp = s.get("maxpp") or info.max_pp
            mult = dex.type_multiplier(info.type, opp_types) if not info.is_status else 1.0
            if me is not None and them is not None:
                dmg, dmg_min = damage.move_damages(s.get("id", ""), me, them)
                ko = them.hp > 0 and dmg_min >= them.hp
            else:
                dmg, ko = 0.0, False
            num += [info.power, info.accuracy, (s.get("pp", maxpp) / maxpp) if maxpp else 1.0,
                    info.priority, math.log2(mult) / 2.0 if mult > 0 else 0.0,
                    float(mult == 0), float(info.type != 0 and info.type in own_types),
                    float(info.is_status), float(info.heals), float(_slot_legal(s)),
                    damage.hp_share(dmg, them) if them else 0.0, float(ko)]
            move_cat += [info.id, info.type]
        else:
            num += [0.0] * 12
            move_cat += [dex.PAD, 0]
    num += _matchups(own, own_views, opp_active, facing)

    for views, revealed_only in ((own_views, False), (opp_views, True)):
        for v in views:
            cat += v.cat
        # An opponent slot not yet revealed holds an unknown Pokémon; ours are never empty.
        cat += ([dex.UNKNOWN if revealed_only else dex.PAD, 0, 0, 0] + [dex.PAD] * N_MOVES) \
            * (N_SLOTS - len(views))
    cat += move_cat
    cat += [dex.move_info(own_last).id if own_last else dex.PAD,
            dex.move_info(opp_last).id if opp_last else dex.PAD]

    return Observation(
        num=np.fromiter(num, np.float32, len(num)),  # asarray's conversion, at half its cost
        cat=np.asarray(cat, dtype=np.int16),
        mask=action_mask(battle, slots),
        facts=np.asarray(_facts(battle), dtype=np.float32),
    )
