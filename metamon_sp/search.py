"""A player that decides by one-step search in the simulator (direct backend only).

At each decision it asks the simulator (`DirectMatch.search` → search.js) to value every legal
choice by forking the battle and playing short heuristic rollouts from each fork, then plays
the best. By default the forks see both teams whole: a determinized, perfect-information
search that measures how much a policy leaves on the table and labels decisions for training,
whose games against other players are not fair games. Given a pool (a team set), every fork
first redraws the opponent's Pokémon not yet seen from that pool's sets: an information-set
search, which knows only what its side has seen (and the true moves of the opponent's seen
Pokémon).

    player spec: search                     (defaults below)
                 search:16:5:0.1              (forks per choice, turns per rollout, epsilon)
                 search:8:3:0.1:gen1ou        (… drawing unseen Pokémon from team set gen1ou)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from poke_env.battle import Battle
from poke_env.player import Player
from poke_env.player.battle_order import BattleOrder, SingleBattleOrder

from metamon_sp.features import Observation, order_to_action
from metamon_sp.players import RecordingMixin
from metamon_sp.teams import TeamError, load_team_set

SEARCH_PREFIX = "search"


@dataclass(frozen=True)
class SearchOptions:
    forks: int = 8        # rollouts per legal choice
    depth: int = 3        # turns per rollout before the material count scores it
    epsilon: float = 0.1  # rollout players' uniform-choice rate
    pool: str = ""        # a team set to draw the opponent's unseen Pokémon from ("": none)


def parse_search_spec(spec: str) -> SearchOptions:
    """`search`, or `search:FORKS:DEPTH[:EPSILON[:POOL]]` (e.g. `search:16:5`); a ValueError
    names what is wrong."""
    if spec == SEARCH_PREFIX:
        return SearchOptions()
    parts = spec.split(":")
    if parts[0] != SEARCH_PREFIX or not 3 <= len(parts) <= 5:
        raise ValueError(f"{spec!r} is not a search player: write search or "
                         f"search:FORKS:DEPTH[:EPSILON[:POOL]], e.g. search:8:3")
    try:
        opts = SearchOptions(*(int(p) for p in parts[1:3]),
                             *(float(p) for p in parts[3:4]), *parts[4:])
    except (TypeError, ValueError):
        raise ValueError(f"{spec!r}: FORKS and DEPTH are whole numbers and EPSILON a number, "
                         f"e.g. search:8:3:0.1") from None
    if opts.forks < 1 or opts.depth < 1 or not 0 <= opts.epsilon <= 1:
        raise ValueError(f"{spec!r}: search FORKS and DEPTH must be ≥ 1 and EPSILON in [0, 1]")
    if opts.pool:
        try:
            pool_teams(opts.pool)
        except TeamError as e:
            raise ValueError(f"{spec!r}: POOL must be a team set: {e}") from None
    return opts


@lru_cache(maxsize=4)
def pool_teams(team_set: str) -> tuple[str, ...]:
    """The packed teams of a search pool."""
    return tuple(t.packed for t in load_team_set(team_set))


def search_request(battle: Battle, options: SearchOptions) -> dict[str, Any]:
    """What search.js takes besides the battle, side and seed: the rollouts' settings, and
    with a pool, the pool's teams and the opponent's species this side has seen."""
    out: dict[str, Any] = {"forks": options.forks, "depth": options.depth,
                           "epsilon": options.epsilon}
    if options.pool:
        out.update(pool_id=options.pool, pool=pool_teams(options.pool),
                   seen=sorted({m.species for m in battle.opponent_team.values()}))
    return out


def search_seed(seed: int, key: tuple[str, str], step: int) -> str:
    """The simulator PRNG seed of one decision's search (its forks' futures)."""
    digest = hashlib.blake2b(f"{seed}|{key[0]}|{key[1]}|{step}".encode(), digest_size=16)
    return "sodium," + digest.hexdigest()


def choice_to_order(battle: Battle, choice: str) -> BattleOrder | None:
    """The poke-env order for a simulator choice (`move 2`, `switch 4`) under the battle's
    last request, or None when the battle's state has no such option."""
    kind, _, index = choice.partition(" ")
    req = battle.last_request or {}
    try:
        i = int(index) - 1
        if kind == "move":
            move_id = req["active"][0]["moves"][i]["id"]
            for move in battle.available_moves:
                if move.id == move_id:
                    return SingleBattleOrder(move)
            if len(battle.available_moves) == 1:  # a locked move poke-env names its own way
                return SingleBattleOrder(battle.available_moves[0])
        elif kind == "switch":
            ident = req["side"]["pokemon"][i]["ident"]
            mon = battle.team.get(ident)
            if mon is not None and mon in battle.available_switches:
                return SingleBattleOrder(mon)
    except (KeyError, IndexError, ValueError, TypeError):
        return None
    return None


async def _ask(match: Any, battle: Battle, player: RecordingMixin, options: SearchOptions,
               choices: list[str] | None = None) -> dict[str, Any]:
    """The simulator's answer for `player` now, seeded by the player's seed, the battle and the
    decision's index."""
    rec = player._records.get(battle.battle_tag)
    seed = search_seed(player.decision_seed, (player.username, battle.battle_tag),
                       len(rec.actions) if rec else 0)
    return await match.search(battle.battle_tag, battle.player_role, seed=seed,
                              choices=choices, **search_request(battle, options))


def request_choices(battle: Battle) -> list[str]:
    """The legal choices of the battle's last request as the simulator names them (`move 1`,
    `switch 3`): search.js's `legalChoices`, read from our side of the protocol."""
    req = battle.last_request or {}
    if not req or req.get("wait"):
        return []
    mons = (req.get("side") or {}).get("pokemon", [])
    bench = [i for i, p in enumerate(mons)
             if not p.get("active") and not str(p.get("condition", "")).endswith(" fnt")]
    if req.get("forceSwitch"):
        return [f"switch {i + 1}" for i in bench]
    active = (req.get("active") or [{}])[0]
    out = [f"move {i + 1}" for i, m in enumerate(active.get("moves", [])) if not m.get("disabled")]
    if not out:
        out = ["move 1"]  # Struggle, or a locked move
    if not active.get("trapped"):
        out += [f"switch {i + 1}" for i in bench]
    return out


def choice_to_action(battle: Battle, choice: str) -> int | None:
    """Our action index for a simulator choice, or None where the battle's state has none."""
    order = choice_to_order(battle, choice)
    return None if order is None else order_to_action(order, battle)


async def searched_values(match: Any, battle: Battle, player: RecordingMixin,
                          options: SearchOptions, actions: set[int] | None = None
                          ) -> dict[int, np.ndarray]:
    """Per action index, the search's per-fork values (fork f of every action shares its
    dice, so two actions compare fork by fork). `actions` restricts the search to those."""
    choices = None
    if actions is not None:
        choices = [c for c in request_choices(battle) if choice_to_action(battle, c) in actions]
    answer = await _ask(match, battle, player, options, choices)
    out: dict[int, np.ndarray] = {}
    for choice, values in zip(answer["choices"], answer["samples"]):
        action = choice_to_action(battle, choice)
        if action is not None and action not in out:
            out[action] = np.asarray(values, dtype=np.float64)
    return out


def confident_best(samples: dict[int, np.ndarray], own: int, z: float) -> int | None:
    """The searched action to play instead of `own`: the best by mean value, where its paired
    per-fork advantage over `own` is more than `z` standard errors above 0; None keeps `own`
    (also when the search did not value `own`)."""
    if own not in samples:
        return None
    best = max(samples, key=lambda a: (samples[a].mean(), a == own))  # ties keep our own
    if best == own:
        return None
    diff = samples[best] - samples[own]
    n = len(diff)
    se = diff.std(ddof=1) / math.sqrt(n) if n > 1 else math.inf
    return best if diff.mean() > (z * se if z > 0 else 0.0) else None


async def ranked_orders(match: Any, battle: Battle, player: RecordingMixin,
                        options: SearchOptions) -> list[BattleOrder]:
    """The simulator search's choices for `player` now, best first, as poke-env orders (those
    the battle's state has an order for)."""
    answer = await _ask(match, battle, player, options)
    ranked = sorted(zip(answer["values"], answer["choices"]), reverse=True)
    return [o for _, choice in ranked if (o := choice_to_order(battle, choice)) is not None]


class SearchPlayer(RecordingMixin, Player):
    """Plays the argmax of the simulator's search (needs a `DirectMatch`: direct backend)."""

    def __init__(self, *args: Any, search: SearchOptions, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.search = search
        self.match: Any = None

    def attach_match(self, match: Any) -> None:
        self.match = match

    def choose_action(self, battle: Battle, obs: Observation) -> Any:
        if self.match is None:
            raise RuntimeError("the search player needs the direct backend "
                               "(collect.backend=direct): its search runs in the simulator")
        return self._decide(battle)

    async def _decide(self, battle: Battle) -> BattleOrder:
        orders = await ranked_orders(self.match, battle, self, self.search)
        return orders[0] if orders else self.choose_default_move()
