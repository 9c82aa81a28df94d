"""Gen 1 dex facts and the categorical vocabularies, all derived from poke-env's Gen 1 data.

Ids are stable: species by National Dex number, moves by move number, with a few reserved ids
first. Changing any of this changes the observation, so `FEATURES_VERSION` in features.py moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from poke_env.battle.pokemon_type import PokemonType
from poke_env.data import GenData

GEN = 1
PAD, UNKNOWN = 0, 1  # an empty slot; something that exists but is not revealed (or not in the dex)

# Moves the server offers that are not real moves: `fight` (asleep, frozen or partially trapped),
# `recharge` (after Hyper Beam) and `struggle` (no PP left).
PSEUDO_MOVES = ("fight", "recharge", "struggle")
STATUSES = ("brn", "frz", "par", "psn", "slp", "tox", "fnt")  # the protocol's status ids


def _data() -> GenData:
    return GenData.from_gen(GEN)


def _gen1_species() -> dict[str, dict]:
    return {k: v for k, v in _data().pokedex.items() if 1 <= v["num"] <= 151 and not v.get("forme")}


def _real_moves() -> dict[str, dict]:
    return {k: v for k, v in _data().moves.items() if v["num"] >= 1}


# The 15 Gen 1 types, from the species and moves that exist in Gen 1.
TYPES = tuple(sorted({t.upper() for v in _gen1_species().values() for t in v["types"]}
                     | {v["type"].upper() for v in _real_moves().values() if v["type"] != "???"}))
# Partial-trapping moves: in Gen 1 they lock both sides for 2-5 turns, with no poke-env effect.
PARTIAL_TRAPPING_MOVES = frozenset(k for k, v in _real_moves().items()
                                   if v.get("volatileStatus") == "partiallytrapped")
HEALING_MOVES = frozenset(k for k, v in _real_moves().items()
                          if v.get("heal") or v.get("flags", {}).get("heal"))


@lru_cache(maxsize=1)
def species_vocab() -> dict[str, int]:
    ids = sorted((v["num"], k) for k, v in _gen1_species().items())
    return {name: i + 2 for i, (_, name) in enumerate(ids)}


@lru_cache(maxsize=1)
def move_vocab() -> dict[str, int]:
    vocab = {m: i + 2 for i, m in enumerate(PSEUDO_MOVES)}
    for _, name in sorted((v["num"], k) for k, v in _real_moves().items()):
        if name not in vocab:
            vocab[name] = len(vocab) + 2
    return vocab


TYPE_VOCAB = {t: i + 1 for i, t in enumerate(TYPES)}  # 0: no (second) type
STATUS_VOCAB = {s: i + 1 for i, s in enumerate(STATUSES)}  # 0: healthy


def vocab_sizes() -> dict[str, int]:
    return {
        "species": len(species_vocab()) + 2,
        "move": len(move_vocab()) + 2,
        "type": len(TYPE_VOCAB) + 1,
        "status": len(STATUS_VOCAB) + 1,
    }


@dataclass(frozen=True)
class SpeciesInfo:
    id: int
    types: tuple[int, int]
    base: tuple[float, float, float, float, float]  # hp, atk, def, spc, spe, each / 255


@dataclass(frozen=True)
class MoveInfo:
    id: int
    type: int
    power: float      # base power / 150 (fixed-damage moves count as 0.5)
    accuracy: float   # 0..1 (moves that never miss: 1)
    priority: float
    is_status: bool
    heals: bool
    traps: bool
    max_pp: int


_EMPTY_SPECIES = SpeciesInfo(PAD, (0, 0), (0.0,) * 5)
_UNKNOWN_SPECIES = SpeciesInfo(UNKNOWN, (0, 0), (0.0,) * 5)


@lru_cache(maxsize=512)
def species_info(species: str | None) -> SpeciesInfo:
    if not species:
        return _EMPTY_SPECIES
    entry = _data().pokedex.get(species)
    sid = species_vocab().get(species)
    if entry is None or sid is None:
        return _UNKNOWN_SPECIES
    types = [TYPE_VOCAB.get(t.upper(), 0) for t in entry["types"]] + [0]
    b = entry["baseStats"]
    base = tuple(b[k] / 255.0 for k in ("hp", "atk", "def", "spa", "spe"))
    return SpeciesInfo(sid, (types[0], types[1]), base)  # type: ignore[arg-type]


@lru_cache(maxsize=1024)
def move_entry(move: str) -> dict | None:
    """The dex entry of a real Gen 1 move (None for pseudo-moves and unknown ids)."""
    entry = _data().moves.get(move)
    return entry if entry is not None and entry.get("num", 0) >= 1 else None


@lru_cache(maxsize=512)
def move_info(move: str) -> MoveInfo:
    entry = _data().moves.get(move)
    mid = move_vocab().get(move, UNKNOWN)
    if entry is None:
        return MoveInfo(mid, 0, 0.0, 1.0, 0.0, False, False, False, 0)
    acc = entry.get("accuracy", True)
    power = entry.get("basePower", 0) / 150.0
    if entry.get("damage") is not None or move in ("seismictoss", "nightshade", "superfang"):
        power = max(power, 0.5)
    return MoveInfo(
        id=mid,
        type=TYPE_VOCAB.get(str(entry.get("type", "")).upper(), 0),
        power=power,
        accuracy=1.0 if acc is True else acc / 100.0,
        priority=float(entry.get("priority", 0)),
        is_status=entry.get("category") == "Status",
        heals=move in HEALING_MOVES,
        traps=move in PARTIAL_TRAPPING_MOVES,
        max_pp=int(entry.get("pp", 0) * 8 // 5),
    )


@lru_cache(maxsize=None)
def type_multiplier(attack_type: int, defend_types: tuple[int, int]) -> float:
    """Gen 1 type effectiveness of an attack type (vocab id) on a defender's types."""
    if attack_type == 0:
        return 1.0
    atk = PokemonType[TYPES[attack_type - 1]]
    t1, t2 = (PokemonType[TYPES[t - 1]] if t else None for t in defend_types)
    return atk.damage_multiplier(t1, t2, type_chart=_data().type_chart) if t1 else 1.0
