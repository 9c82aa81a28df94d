"""A Gen 1 singles battle tracked from Showdown's protocol alone: what the featurizer reads, in
plain attributes, without poke-env's `Battle`.

poke-env's `Battle` serves every generation and every player's needs, and pays for it on each
message (a chain of tests over ~80 message kinds, properties over properties, Pokémon looked up
through illusion checks) and each request (every move through its move-set's Transform and
Mimic layers). The featurizer needs a fixed, small part of it. `Gen1Battle` keeps exactly that
part and updates it as poke-env's `Battle` (pinned version) does, rule for rule, for what Gen 1
can send: a test replays recorded battles, both sides, through both and compares every
observation (tests/unit/test_gen1_battle.py), and `benchmarks/tracker_equivalence.py` does the
same on as many seeded battles as asked.

It has the interface the featurizer, `damage`, the recording player and poke-env's `Player`
message loop use (`parse_message`, `parse_request`, `team`, `active_pokemon`, `won_by`, …);
its Pokémon (`Gen1Mon`) hold `species`, `status`, `boosts`, `effects`, `moves` (ids in the order
learnt, Transform and Mimic applied) and the rest as attributes. Enums are poke-env's, so the
featurizer's checks (`status is Status.SLP`, `Effect.REFLECT in effects`) read the same.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from poke_env.battle import Effect, Move, PokemonType, Status
from poke_env.data import GenData
from poke_env.data.normalize import to_id_str

GEN = 1
_DEX = GenData.from_gen(GEN)
_BOOST_KEYS = ("accuracy", "atk", "def", "evasion", "spa", "spd", "spe")
_NO_STATS: dict[str, int | None] = {"hp": None, "atk": None, "def": None, "spa": None,
                                    "spd": None, "spe": None}
_FAILED_SUFFIXES = ("[miss]", "[still]", "[notarget]")
_LOCKED = {"[from] lockedmove", "[from]lockedmove", "[from] Sky Attack"}


move_id = lru_cache(maxsize=None)(Move.retrieve_id)


@lru_cache(maxsize=None)
def _storable(mid: str) -> bool:
    return Move.should_be_stored(mid, GEN)


@lru_cache(maxsize=None)
def _effect(message: str) -> Effect:
    return Effect.from_showdown_message(message)


@lru_cache(maxsize=None)
def _status(name: str) -> Status:
    return Status[name.upper()]


@lru_cache(maxsize=None)
def _species(species: str) -> tuple[str, dict[str, int], PokemonType, PokemonType | None]:
    """id, base stats and types of a species as poke-env's pokedex gives them."""
    sid = to_id_str(species)
    entry = _DEX.pokedex[sid]
    types = entry["types"]
    return (sid, entry["baseStats"], PokemonType.from_name(types[0]),
            PokemonType.from_name(types[1]) if len(types) > 1 else None)


@lru_cache(maxsize=1 << 14)  # the same few hundred strings recur in every battle
def _hp_status(hp_status: str) -> tuple[int, int, Status | None, bool]:
    """(current HP, max HP, status, fainted) of a condition string; `fainted` means "0 fnt"."""
    if hp_status == "0 fnt":
        return 0, 0, Status.FNT, True
    if " " in hp_status:
        hp, status = hp_status.split(" ")
        st: Status | None = _status(status)
    else:
        hp, st = hp_status, None
    cur, mx = "".join([c for c in hp if c in "0123456789/"]).split("/")
    return int(cur), int(mx), st, False


class Gen1Mon:
    """One Pokémon as one side sees it; the attributes the featurizer and `damage` read."""

    __slots__ = ("species", "base_species_stats", "_type_1", "_type_2", "_temp_types",
                 "_temp_base_stats", "active", "status", "fainted", "status_counter",
                 "current_hp", "max_hp", "current_hp_fraction", "stats", "boosts", "effects",
                 "must_recharge", "moves", "_base_moves", "_transform_moves", "_mimic",
                 "_transform_mimic",
                 "_last_request", "_last_details", "name",
                 "version", "feature_view", "feature_matchup")

    def __init__(self, *, details: str = "", request: dict[str, Any] | None = None,
                 name: str = ""):
        self.species = ""
        self._last_details = ""
        self._temp_types: list[PokemonType] = []
        self._temp_base_stats: dict[str, int] | None = None
        self.active = False
        self.status: Status | None = None
        self.fainted = False
        self.status_counter = 0
        self.current_hp = 0
        self.max_hp = 0
        self.current_hp_fraction: float = 0
        self.stats = dict(_NO_STATS)
        self.boosts = dict.fromkeys(_BOOST_KEYS, 0)
        self.effects: dict[Effect, int] = {}
        self.must_recharge = False
        self._base_moves: dict[str, None] = {}
        self._transform_moves: dict[str, None] | None = None
        # Mimic's copy belongs to a move set, as in poke-env: a Transform's set has its own
        self._mimic: str | None = None
        self._transform_mimic: str | None = None
        self.moves: dict[str, None] = self._base_moves
        self._last_request: dict[str, Any] | None = {}
        self.name = name
        # Counts the battle's updates that may have changed this Pokémon (`Gen1Battle` bumps it
        # wherever a message or request reaches it): the featurizer's per-Pokémon results are
        # kept here and reused while it stands (metamon_sp/features.py).
        self.version = 0
        self.feature_view: Any = None
        self.feature_matchup: Any = None
        if request:
            self.update_from_request(request)
        elif details:
            self._update_from_details(details)

    # ------------------------------------------------------------------- what is read
    @property
    def type_1(self) -> PokemonType:
        return self._temp_types[0] if self._temp_types else self._type_1

    @property
    def type_2(self) -> PokemonType | None:
        if len(self._temp_types) == 1:
            return None
        return self._temp_types[1] if self._temp_types else self._type_2

    @property
    def types(self) -> list[PokemonType]:
        t2 = self.type_2
        return [self.type_1] if t2 is None else [self.type_1, t2]

    @property
    def base_stats(self) -> dict[str, int]:
        return self._temp_base_stats if self._temp_base_stats is not None \
            else self.base_species_stats

    @property
    def transformed(self) -> bool:
        return self._transform_moves is not None

    # ------------------------------------------------------------------------ updates
    def _set_status(self, status: Status | None) -> None:
        self.status = status
        self.fainted = status is Status.FNT

    def _set_hp(self, cur: int, mx: int) -> None:
        self.current_hp, self.max_hp = cur, mx
        self.current_hp_fraction = cur / mx if cur else 0

    def set_hp_status(self, hp_status: str, store: bool = False) -> None:
        cur, mx, status, fnt = _hp_status(hp_status)
        if fnt:
            self.current_hp = 0
            self.current_hp_fraction = 0
            self._set_status(Status.FNT)
            return
        self._set_status(status)
        self._set_hp(cur, mx)
        if store:
            self.stats["hp"] = mx

    def _update_from_details(self, details: str) -> None:
        if details == self._last_details:
            return
        self._last_details = details
        # the species leads the details ("Snorlax, L88"); level, gender and shine are not read
        self.species, self.base_species_stats, self._type_1, self._type_2 = \
            _species(details.split(", ")[0])

    def update_from_request(self, entry: dict[str, Any]) -> None:
        self.active = entry["active"]
        self._last_request = entry
        self.set_hp_status(entry["condition"], store=True)
        self.name = entry["ident"][4:]
        self._update_from_details(entry["details"])
        for m in entry["moves"]:
            self._add_move(m)
        stats = entry.get("stats")
        if stats:
            self.stats.update(stats)

    def _resolved(self) -> dict[str, None]:
        return self._transform_moves if self._transform_moves is not None else self._base_moves

    def _mimicked(self) -> str | None:
        return self._transform_mimic if self._transform_moves is not None else self._mimic

    def _refresh_moves(self) -> None:
        base, mimic = self._resolved(), self._mimicked()
        if mimic is None:
            self.moves = base
        else:
            self.moves = {(mimic if k == "mimic" else k): None for k in base}

    def _add_move(self, name: str) -> bool:
        """Learn a move if poke-env would store it; whether it is now known."""
        mid = move_id(name)
        if mid in self.moves:
            return True
        if not _storable(mid):
            return False
        base = self._resolved()
        if mid not in base:
            base[mid] = None
            if self._mimicked() is not None:
                self._refresh_moves()
        return True

    def moved(self, name: str, reveal: bool) -> None:
        self.must_recharge = False
        if reveal:
            self._add_move(name)
        if self.status is Status.SLP:
            self.status_counter += 1

    def cant_move(self) -> None:
        if self.status is Status.SLP:
            self.status_counter += 1

    def boost(self, stat: str, amount: int) -> None:
        self.boosts[stat] = max(-6, min(6, self.boosts[stat] + amount))

    def clear_boosts(self) -> None:
        for stat in self.boosts:
            self.boosts[stat] = 0

    def start_effect(self, message: str, details: str | None = None) -> None:
        effect = _effect(message)
        if effect not in self.effects:
            self.effects[effect] = 0
        elif effect.is_action_countable:
            self.effects[effect] += 1
        if effect is Effect.TYPECHANGE and details is not None:
            self._temp_types = [PokemonType.from_name(t) for t in details.split("/")]

    def end_effect(self, message: str) -> None:
        self._end(_effect(message))

    def _end(self, effect: Effect) -> None:
        self.effects.pop(effect, None)
        if effect is Effect.TYPECHANGE:
            self._temp_types = []

    def _clear_effects(self) -> None:
        for effect in list(self.effects):
            self._end(effect)

    def cure_status(self, status: str | None = None) -> None:
        if status and _status(status) is self.status:
            self._set_status(None)
            self.status_counter = 0
        elif status is None and not self.fainted:
            self._set_status(None)

    def end_turn(self) -> None:
        if self.status is Status.TOX:
            self.status_counter += 1
        for effect in list(self.effects):
            if effect.is_turn_countable:
                self.effects[effect] += 1
            if effect.ends_on_turn:
                self._end(effect)

    def faint(self) -> None:
        self.current_hp = 0
        self.current_hp_fraction = 0
        self._set_status(Status.FNT)
        self._temp_base_stats = None
        self._transform_moves = self._transform_mimic = self._mimic = None
        self._refresh_moves()
        self._clear_effects()

    def switch_in(self, details: str | None = None) -> None:
        self.active = True
        if details:
            self._update_from_details(details)

    def switch_out(self) -> None:
        self.active = False
        self.clear_boosts()
        self._clear_effects()
        self.must_recharge = False
        self._temp_base_stats = None
        self._transform_moves = self._transform_mimic = self._mimic = None
        self._refresh_moves()
        self._temp_types = []
        if self.status is Status.TOX:
            self.status_counter = 0

    def transform(self, into: "Gen1Mon") -> None:
        _, base, t1, t2 = _species(into.species)
        self._temp_base_stats = base
        self._temp_types = [t1] if t2 is None else [t1, t2]
        self._transform_moves = dict.fromkeys(into.moves)
        self._transform_mimic = None
        self._refresh_moves()
        self.boosts = into.boosts.copy()

    def set_mimic(self, name: str) -> None:
        if self._transform_moves is not None:
            self._transform_mimic = move_id(name)
        else:
            self._mimic = move_id(name)
        self._refresh_moves()


def _first_active(team: dict[str, Gen1Mon]) -> Gen1Mon | None:
    for mon in team.values():
        if mon.active:
            return mon
    return None


class Gen1Battle:
    """One side's view of a Gen 1 singles battle (see the module's docstring)."""

    def __init__(self, battle_tag: str, username: str, logger: Any = None, gen: int = GEN):
        if gen != GEN:
            raise ValueError(f"Gen1Battle tracks Gen 1 battles only, not gen {gen}")
        self.battle_tag = battle_tag
        self.player_username = username
        self.logger = logger
        self.gen = gen
        self.player_role: str | None = None
        self.turn = 0
        self.team: dict[str, Gen1Mon] = {}
        self.opponent_team: dict[str, Gen1Mon] = {}
        self.last_request: dict[str, Any] = {}
        self.force_switch = False
        self.trapped = False
        self.available_switches: list[Gen1Mon] = []
        self.teampreview = False
        self._wait = False
        self._won: bool | None = None
        self.finished = False
        # The log from the previous turn's `|turn|` on: all the featurizer reads of it
        # (`features.last_turn_events`). poke-env keeps a battle's whole log, which the
        # garbage collector walked again and again as it grew.
        self._replay_data: list[list[str]] = []
        self._turn_at = -1  # where the last `|turn|` is in it

    # ------------------------------------------------------------------- what is read
    @property
    def active_pokemon(self) -> Gen1Mon | None:
        return _first_active(self.team)

    @property
    def opponent_active_pokemon(self) -> Gen1Mon | None:
        return _first_active(self.opponent_team)

    @property
    def won(self) -> bool | None:
        return self._won

    @property
    def lost(self) -> bool | None:
        return None if self._won is None else not self._won

    # ------------------------------------------------------------------------ the end
    # (the end's line is logged once: poke-env's loop gives `win`/`tie` lines to these, never to
    # `parse_message`, so only an earlier call of either has logged one)
    def won_by(self, username: str) -> None:
        if not self.finished:
            self._replay_data.append(["", "win", username])
        self._won = username == self.player_username
        self.finished = True

    def tied(self) -> None:
        if not self.finished:
            self._replay_data.append(["", "tie"])
        self.finished = True

    # ----------------------------------------------------------------------- requests
    def parse_request(self, request: dict[str, Any], strict_battle_tracking: bool = False
                      ) -> None:
        self._wait = bool(request.get("wait"))
        side = request["side"]
        self.trapped = False
        self.force_switch = request.get("forceSwitch", [False])[0]
        self.last_request = request
        self.teampreview = bool(request.get("teamPreview", False))
        entries = side["pokemon"]
        if entries:
            self.player_role = entries[0]["ident"][:2]
        self._update_team(entries)
        if "active" in request and request["active"][0].get("trapped"):
            self.trapped = True
        switches: list[Gen1Mon] = []
        if not self.trapped:
            team = self.team
            for entry in entries:
                mon = team[entry["ident"]]
                if not mon.active and not mon.fainted:
                    switches.append(mon)
        self.available_switches = switches

    def _update_team(self, entries: list[dict[str, Any]]) -> None:
        """poke-env's `_update_team_from_request`, skipping entries already applied (as
        `LeanBattle` does: metamon_sp/battle_state.py)."""
        team = self.team
        changed = []
        for entry in entries:
            mon = team.get(entry["ident"])
            if mon is None:
                team[entry["ident"]] = mon = Gen1Mon(request=entry,
                                                     name=entry["ident"][4:].strip())
                changed.append(entry)
            elif mon._last_request != entry or mon.active != entry["active"]:
                changed.append(entry)
        falsely, truly = [], []
        for entry in changed:
            mon = team[entry["ident"]]
            mon.version += 1
            if entry["active"] and not mon.active:
                truly.append(mon)
            elif not entry["active"] and mon.active:
                falsely.append(mon)
        for mon in falsely:  # poke-env's `was_illusioned`
            mon.current_hp, mon.max_hp, mon.current_hp_fraction = 0, 0, 0
            mon._set_status(None)
            last, mon._last_request = mon._last_request, None
            if last:
                mon.update_from_request(last)
            mon.switch_out()
        for mon in truly:
            mon.switch_in()
        for entry in changed:
            team[entry["ident"]].update_from_request(entry)

    # ----------------------------------------------------------------------- messages
    def get_pokemon(self, identifier: str, details: str = "") -> Gen1Mon:
        """The Pokémon a message names, made if new. Handlers reach the Pokémon they change
        through here, or count the change themselves (`Gen1Mon.version`)."""
        if identifier[3] != " ":
            identifier = identifier[:2] + identifier[3:]
        mon = self.team.get(identifier) or self.opponent_team.get(identifier)
        if mon is not None:
            mon.version += 1
            return mon
        role = identifier[:2]
        team = self.team if role == self.player_role else self.opponent_team
        name = identifier[3:].strip()
        team[identifier] = mon = Gen1Mon(details=details or identifier[4:], name=name)
        return mon

    def parse_message(self, event: list[str]) -> None:
        # kept as it is, not copied as poke-env does: no handler changes an event in place
        # (`_move` trims a copy), and nothing else holds the split line
        self._replay_data.append(event)
        kind = event[1]
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, event)

    def _switch(self, event: list[str]) -> None:
        ident, details, hp_status = event[2:5]
        own = ident.split(":")[0][:2] == self.player_role
        out = self.active_pokemon if own else self.opponent_active_pokemon
        if out is not None:
            out.version += 1
            out.switch_out()
        mon = self.get_pokemon(ident, details=details)
        mon.switch_in(details=details)
        mon.set_hp_status(hp_status)

    def _move(self, event: list[str]) -> None:
        # poke-env's `move` handler, for what it decides: whether the move is revealed (learnt
        # by the mover). PP, protect counts and "last used" are not tracked here.
        event = event[:]
        for suffix in _FAILED_SUFFIXES:
            if event[-1] == suffix:
                event = event[:-1]
        if event[-1] == "[notarget]":
            event = event[:-1]
        while event[-1].startswith("[spread]"):
            event = event[:-1]
        while event[-1] == "[still]":
            event = event[:-1]
        reveal = True
        if event[-1] in _LOCKED:
            reveal = False
            event = event[:-1]
        if event[-1] in ("[from] Pursuit", "[from]Pursuit", "[zeffect]"):
            event = event[:-1]
        if event[-1].startswith("[anim]"):
            event = event[:-1]
        calling = None
        if event[-1].startswith(("[from] move: ", "[from]move: ")):
            calling = event.pop().split(": ")[-1]
            if calling in ("Copycat", "Metronome", "Nature Power", "Round"):
                reveal = False
        if event[-1] == "null":
            event = event[:-1]
        if event[-1] in ("[from] Magic Coat", "[from] Mirror Move"):
            reveal = False
            event = event[:-1]
        ident, move = event[2], event[3]
        if move.upper().strip() == "MINIMIZE":
            self.get_pokemon(ident).start_effect("MINIMIZE")
        mon = self.get_pokemon(ident)
        mon.moved(move, reveal=reveal)
        if calling and move_id(calling) not in mon.moves:
            # poke-env looks the calling move up here and fails the same way
            raise KeyError(f"{self.battle_tag}: {ident} used {move} through {calling}, "
                           "which it was never seen to know")

    def _start(self, event: list[str]) -> None:
        mon = self.get_pokemon(event[2])
        effect = event[3]
        if effect == "typechange":
            if len(event) > 5 and event[5].startswith("[of] "):
                types = "/".join(t.name for t in self.get_pokemon(event[5][5:]).types)
            else:
                types = event[4]
            mon.start_effect(effect, details=types)
            return
        if effect == "Mimic":
            mon.set_mimic(event[4])
        mon.start_effect(effect)

    def _activate(self, event: list[str]) -> None:
        target, effect = event[2:4]
        if effect == "move: Mimic":
            self.get_pokemon(target).set_mimic(event[4])
        elif target != "" and effect.replace("move: ", "") != "Skill Swap" and \
                effect not in _NOT_STARTED:
            self.get_pokemon(target).start_effect(effect)

    def _turn(self, event: list[str]) -> None:
        self.turn = int(event[2])
        log = self._replay_data  # (`event` is its last entry)
        if self._turn_at > 0:
            del log[:self._turn_at]
        self._turn_at = len(log) - 1
        for mon in (self.active_pokemon, self.opponent_active_pokemon):
            if mon is not None:
                mon.version += 1
                mon.end_turn()

    def _player(self, event: list[str]) -> None:
        if len(event) in (5, 6):
            role, username = event[2], event[3]
            self.player_role = role if username == self.player_username else \
                ("p1" if role == "p2" else "p2")

    def _cureteam(self, event: list[str]) -> None:
        team = self.team if event[2][:2] == self.player_role else self.opponent_team
        for mon in team.values():
            mon.version += 1
            mon.cure_status()

    def _clearallboost(self, event: list[str]) -> None:
        for mon in (self.active_pokemon, self.opponent_active_pokemon):
            if mon is not None:
                mon.version += 1
                mon.clear_boosts()

    def _swapboost(self, event: list[str]) -> None:
        source, target = self.get_pokemon(event[2]), self.get_pokemon(event[3])
        stats = _BOOST_KEYS if "[from]" in event[4] else event[4].split(", ")
        for stat in stats:
            source.boosts[stat], target.boosts[stat] = target.boosts[stat], source.boosts[stat]


# Effects poke-env's `-activate` handler treats otherwise (abilities and items Gen 1 lacks).
_NOT_STARTED = frozenset({"ability: Dancer", "ability: Mummy", "ability: Wandering Spirit",
                          "ability: Symbiosis", "item: Leppa Berry", "move: Trick"})


def _hp(b: Gen1Battle, e: list[str]) -> None:
    b.get_pokemon(e[2]).set_hp_status(e[3])


def _set_status(b: Gen1Battle, e: list[str]) -> None:
    b.get_pokemon(e[2])._set_status(_status(e[3]))


def _setboost(b: Gen1Battle, e: list[str]) -> None:
    b.get_pokemon(e[2]).boosts[e[3]] = int(e[4])


def _clear_sign(sign: int):
    def clear(b: Gen1Battle, e: list[str]) -> None:
        boosts = b.get_pokemon(e[2]).boosts
        for stat, value in boosts.items():
            if value * sign > 0:
                boosts[stat] = 0
    return clear


def _copyboost(b: Gen1Battle, e: list[str]) -> None:
    b.get_pokemon(e[3]).boosts = dict(b.get_pokemon(e[2]).boosts)


def _invertboost(b: Gen1Battle, e: list[str]) -> None:
    mon = b.get_pokemon(e[2])
    mon.boosts = {k: -v for k, v in mon.boosts.items()}


def _transform(b: Gen1Battle, e: list[str]) -> None:
    mon = b.get_pokemon(e[2])
    if len(e) > 4 and e[4] == "[from] ability: Imposter":
        mon._add_move("transform")
    mon.transform(b.get_pokemon(e[3]))


def _recharge(b: Gen1Battle, e: list[str]) -> None:
    b.get_pokemon(e[2]).must_recharge = True


_HANDLERS = {
    "switch": Gen1Battle._switch, "drag": Gen1Battle._switch,
    "-damage": _hp, "-heal": _hp, "-sethp": _hp,
    "move": Gen1Battle._move,
    "cant": lambda b, e: b.get_pokemon(e[2]).cant_move(),
    "turn": Gen1Battle._turn,
    "-boost": lambda b, e: b.get_pokemon(e[2]).boost(e[3], int(e[4])),
    "-unboost": lambda b, e: b.get_pokemon(e[2]).boost(e[3], -int(e[4])),
    "-setboost": _setboost,
    "-clearallboost": Gen1Battle._clearallboost,
    "-clearboost": lambda b, e: b.get_pokemon(e[2]).clear_boosts(),
    "-clearnegativeboost": _clear_sign(-1),
    "-clearpositiveboost": _clear_sign(+1),
    "-copyboost": _copyboost,
    "-swapboost": Gen1Battle._swapboost,
    "-invertboost": _invertboost,
    "faint": lambda b, e: b.get_pokemon(e[2]).faint(),
    "-start": Gen1Battle._start,
    "-activate": Gen1Battle._activate,
    "-end": lambda b, e: b.get_pokemon(e[2]).end_effect(e[3]),
    "-singleturn": lambda b, e: b.get_pokemon(e[2]).start_effect(e[3].replace("move: ", "")),
    "-singlemove": lambda b, e: b.get_pokemon(e[2]).start_effect(e[3].replace("move: ", "")),
    "-status": _set_status,
    "-curestatus": lambda b, e: b.get_pokemon(e[2]).cure_status(e[3]),
    "-cureteam": Gen1Battle._cureteam,
    "-mustrecharge": _recharge,
    "-transform": _transform,
    "player": Gen1Battle._player,
}
