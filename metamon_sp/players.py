"""Players by name, and the recording wrapper that turns any poke-env player's battles into
trajectories through the one featurizer.

    cls = player_class("simple_heuristics")      # a recording subclass of poke-env's player
    p = cls(policy_id="simple_heuristics", on_trajectory=sink.add, team_names=index, ...)

The wrapper also counts, per battle, the server's `|error|[Invalid choice]` answers (a missing
action is not an invalid one), and marks battles that a timeout forfeited as truncated. A
baseline's random draws are seeded per decision (player, battle, decision index), so a seeded
battle replays whatever else the process plays at the same time.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import numpy as np
from poke_env.battle import Battle, Status
from poke_env.player import MaxBasePowerPlayer, Player, RandomPlayer, SimpleHeuristicsPlayer
from poke_env.player.battle_order import BattleOrder

from metamon_sp.battle_state import make_lean
from metamon_sp.features import (N_ACTIONS, N_CAT, N_NUM, Observation, action_to_order,
                                 default_action, featurize, order_to_action, reward_facts)
from metamon_sp.gen1_battle import Gen1Battle
from metamon_sp.teams import fingerprint
from metamon_sp.trajectories import Trajectory

log = logging.getLogger(__name__)

_NOT_SEARCHED = np.full((2, N_ACTIONS), np.nan, np.float32)  # shared by every unsearched decision
_NOT_SEARCHED.setflags(write=False)


class Gen1HeuristicsPlayer(SimpleHeuristicsPlayer):
    """`simple_heuristics`, which also switches a frozen Pokémon out. In Gen 1 a freeze never
    thaws by itself (only an opponent's Fire move does), so a frozen active Pokémon is a slot
    lost until it leaves; `simple_heuristics` keeps attacking into `cant` messages. The
    switch-in is the one it rates best against the opponent's active Pokémon. (A teacher for
    generation 0: the agent it imitates seldom switches at all, docs/strength.md.)"""

    def choose_move(self, battle: Battle) -> BattleOrder:
        active, opponent = battle.active_pokemon, battle.opponent_active_pokemon
        if active is not None and opponent is not None and active.status is Status.FRZ \
                and battle.available_switches:
            return self.create_order(max(battle.available_switches,
                                         key=lambda m: self._estimate_matchup(m, opponent)))
        return super().choose_move(battle)


BASELINES: dict[str, type[Player]] = {
    "random": RandomPlayer,
    "max_base_power": MaxBasePowerPlayer,
    "simple_heuristics": SimpleHeuristicsPlayer,
    "gen1_heuristics": Gen1HeuristicsPlayer,
}


class PlayerSpecError(ValueError):
    pass


CHECKPOINT_PREFIX = "checkpoint:"


def is_search_spec(spec: str) -> bool:
    """`search` or `search:…`: the simulator-search player of metamon_sp/search.py."""
    return spec == "search" or spec.startswith("search:")


def check_player_spec(spec: str, key: str, allow_self: bool = False) -> None:
    """Fail early, naming the config key, on a player nobody can build."""
    if spec in BASELINES or (allow_self and spec == "self"):
        return
    if is_search_spec(spec):
        from metamon_sp.search import parse_search_spec

        try:
            parse_search_spec(spec)
        except ValueError as e:
            raise PlayerSpecError(f"{key}={spec!r}: {e}") from e
        return
    if spec.startswith(CHECKPOINT_PREFIX):
        from metamon_sp.checkpoint import CheckpointError, read_meta

        try:
            read_meta(spec[len(CHECKPOINT_PREFIX):])
        except CheckpointError as e:
            raise PlayerSpecError(f"{key}={spec!r}: {e}") from e
        return
    choices = ", ".join(BASELINES) + ", checkpoint:PATH, search[:FORKS:DEPTH[:EPS[:POOL]]]" + (
        ", or `self` (a copy of p1)" if allow_self else "")
    raise PlayerSpecError(f"{key}={spec!r} is not a known player; choose one of {choices}.")


@dataclass
class _BattleRecord:
    started: float = field(default_factory=time.monotonic)
    rqids: list[Any] = field(default_factory=list)
    obs_num: list[np.ndarray] = field(default_factory=list)
    obs_cat: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    facts: list[np.ndarray] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    explored: list[bool] = field(default_factory=list)
    searched: list[bool] = field(default_factory=list)
    search: list[np.ndarray] = field(default_factory=list)  # (2, A): values, then the prior
    invalid: int = 0
    unavailable: int = 0
    errors: list[str] = field(default_factory=list)
    truncated: bool = False


# Lines poke-env's message loop does more with than `battle.parse_message` (or than nothing,
# for those it ignores); a line of one or no field it ignores too (but for team preview, which
# Gen 1 has not).
_PLAYER_KINDS = frozenset({"init", "request", "showteam", "win", "tie", "error", "bigerror"})
_IGNORED = frozenset(Player.MESSAGES_TO_IGNORE)


class RecordingMixin:
    """Mix in before a poke-env Player class; see `player_class`."""

    def __init__(self, *args: Any, policy_id: str, opponent_id: str = "",
                 on_trajectory: Callable[[Trajectory], None] | None = None,
                 team_names: dict[str, str] | None = None, generation: int = 0,
                 decision_seed: int = 0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.decision_seed = decision_seed
        self.policy_id = policy_id
        self.opponent_id = opponent_id
        self.on_trajectory = on_trajectory
        self.team_names = team_names or {}
        self.generation = generation
        self._records: dict[str, _BattleRecord] = {}

    def _record_of(self, tag: str) -> _BattleRecord:
        """The battle's record, made on first use (not built and thrown away on every call)."""
        rec = self._records.get(tag)
        if rec is None:
            rec = self._records[tag] = _BattleRecord()
        return rec

    # -------------------------------------------------------------------- server messages
    @property
    def tracks_gen1(self) -> bool:
        """Whether this player's battles are `Gen1Battle`s rather than poke-env's: players
        whose choices read only the observation (and its request), in a Gen 1 singles format.
        The featurizer sees the same either way (tests/unit/test_gen1_battle.py)."""
        return False

    async def _create_battle(self, split_message: list[str]) -> Any:
        if not self.tracks_gen1:
            return make_lean(await super()._create_battle(split_message))  # type: ignore[misc]
        # poke-env's `Player._create_battle` (pinned version) with our battle class: the same
        # bookkeeping of concurrent battles, which its message loop and `battle_against` wait on
        battle_tag = "-".join(split_message)[1:]
        battles = self._battles  # type: ignore[attr-defined]
        if battle_tag in battles:
            return battles[battle_tag]
        battle = Gen1Battle(battle_tag, self.username,  # type: ignore[attr-defined]
                            self.logger)  # type: ignore[attr-defined]
        await self._battle_count_queue.put(None)  # type: ignore[attr-defined]
        if battle_tag in battles:
            await self._battle_count_queue.get()  # type: ignore[attr-defined]
            return battles[battle_tag]
        async with self._battle_start_condition:  # type: ignore[attr-defined]
            self._battle_semaphore.release()  # type: ignore[attr-defined]
            self._battle_start_condition.notify_all()  # type: ignore[attr-defined]
            battles[battle_tag] = battle
        return battle

    async def _handle_battle_message(self, split_messages: list[list[str]]) -> None:
        battle = self._battles.get(split_messages[0][0][1:])  # type: ignore[attr-defined]
        if type(battle) is Gen1Battle:
            # poke-env's loop (`Player._handle_battle_message`) gives each line to the battle
            # unless it means more to the player: lines up to the first such one go straight
            # to the battle (most messages hold none: the updates between requests)
            lines = split_messages[1:]
            parse = battle.parse_message
            for i, msg in enumerate(lines):
                if len(msg) > 1:
                    kind = msg[1]
                    if kind in _PLAYER_KINDS:
                        split_messages = [split_messages[0], *lines[i:]]
                        break
                    if kind not in _IGNORED:
                        parse(msg)
            else:
                return
        await self._handle_player_lines(split_messages)

    async def _handle_player_lines(self, split_messages: list[list[str]]) -> None:
        tag = split_messages[0][0].lstrip(">")
        if tag.startswith("battle-"):
            rec = self._record_of(tag)
            for msg in split_messages[1:]:
                if len(msg) > 2 and msg[1] == "error":
                    if msg[2].startswith("[Invalid choice]"):
                        rec.invalid += 1  # poke-env asks choose_move again for the same request
                    elif msg[2].startswith("[Unavailable choice]"):
                        rec.unavailable += 1
                        self._drop_last_step(rec)  # the server will send a new request
                        self._forget_last_turn(tag)
                    else:
                        rec.errors.append(msg[2])
                elif len(msg) > 1 and msg[1] == "bigerror":
                    rec.errors.append("|".join(msg[2:]))
        await super()._handle_battle_message(split_messages)  # type: ignore[misc]

    def _forget_last_turn(self, battle_tag: str) -> None:
        """The last decision was refused and will be asked again with a new request: whatever
        keeps a history besides the record drops it too (see PolicyPlayer)."""

    @staticmethod
    def _drop_last_step(rec: _BattleRecord) -> None:
        if rec.actions:
            for seq in (rec.rqids, rec.obs_num, rec.obs_cat, rec.masks, rec.facts, rec.actions,
                        rec.explored, rec.searched, rec.search):
                seq.pop()

    # ------------------------------------------------------------------------- decisions
    def choose_move(self, battle: Battle) -> BattleOrder | Awaitable[BattleOrder]:
        obs = featurize(battle)
        choice = self.choose_action(battle, obs)
        if isinstance(choice, Awaitable):
            return self._finish_async(battle, obs, choice)
        return self._record(battle, obs, choice)

    def choose_action(self, battle: Battle, obs: Observation
                      ) -> BattleOrder | int | Awaitable[BattleOrder | int | tuple[int, bool]]:
        """An order or an action index. Baselines defer to their poke-env `choose_move`;
        a learned policy overrides this and uses `obs` (already featurized), and may answer
        (action, explored)."""
        self._seed_decision(battle)
        return super().choose_move(battle)  # type: ignore[misc]

    def _seed_decision(self, battle: Battle) -> None:
        """Seed `random` from the player, the battle and the decision: baselines replay."""
        random.seed(self._decision_hash(battle))

    def _decision_hash(self, battle: Battle) -> int:
        """64 bits that depend on the player, the battle and the decision only."""
        rec = self._record_of(battle.battle_tag)
        key = f"{self.decision_seed}|{self.username}|{battle.battle_tag}|{len(rec.actions)}|" \
              f"{rec.invalid}"
        return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")

    async def _finish_async(self, battle: Battle, obs: Observation, choice: Awaitable) -> BattleOrder:
        result = await choice
        if isinstance(result, tuple):  # (action, explored[, searched[, search]])
            return self._record(battle, obs, *result)
        return self._record(battle, obs, result)

    def _record(self, battle: Battle, obs: Observation, choice: BattleOrder | int,
                explored: bool = False, searched: bool = False,
                search: np.ndarray | None = None) -> BattleOrder:
        if isinstance(choice, (int, np.integer)):
            action = int(choice)
            order = action_to_order(action, battle, obs.mask)
        else:
            action = order_to_action(choice, battle)
            order = choice
            if action is None or not obs.mask[action]:
                # Showdown's default choice, or an order outside our action space: send the
                # explicit first legal action instead, so what is recorded is what was played.
                action = default_action(obs.mask)
                order = action_to_order(action, battle, obs.mask)
        rec = self._record_of(battle.battle_tag)
        rqid = (battle.last_request or {}).get("rqid")
        if rec.rqids and rqid is not None and rec.rqids[-1] == rqid:
            self._drop_last_step(rec)  # a retry after an invalid choice replaces the decision
        rec.rqids.append(rqid)
        rec.obs_num.append(obs.num)
        rec.obs_cat.append(obs.cat)
        rec.masks.append(obs.mask)
        rec.facts.append(obs.facts)
        rec.actions.append(action)
        rec.explored.append(explored)
        rec.searched.append(searched)
        rec.search.append(_NOT_SEARCHED if search is None else search)
        return order

    # ----------------------------------------------------------------------- battle end
    def forget_battle(self, battle_tag: str) -> None:
        """A battle that will never finish (its simulator died): drop what is kept for it."""
        self._records.pop(battle_tag, None)

    def mark_truncated(self, battle_tag: str) -> None:
        self._record_of(battle_tag).truncated = True

    def battle_ages(self) -> dict[str, float]:
        """Seconds since each unfinished battle's first message."""
        now = time.monotonic()
        return {tag: now - rec.started for tag, rec in self._records.items()
                if tag in self.battles and not self.battles[tag].finished}  # type: ignore[attr-defined]

    def _team_name(self, battle: Battle) -> str:
        fp = fingerprint((m.species, m.moves.keys()) for m in battle.team.values())
        return self.team_names.get(fp, f"custom:{fp}")

    def _battle_finished_callback(self, battle: Battle) -> None:
        rec = self._records.pop(battle.battle_tag, _BattleRecord())
        if self.on_trajectory is not None:
            outcome = 1 if battle.won else -1 if battle.lost else 0
            searches = np.stack(rec.search) if rec.search else np.zeros((0, 2, N_ACTIONS),
                                                                         np.float32)
            traj = Trajectory(
                battle_id=battle.battle_tag,
                side=battle.player_role or "",
                player=self.policy_id,
                opponent=self.opponent_id,
                team=self._team_name(battle),
                opponent_team="",
                outcome=outcome,
                turns=battle.turn,
                obs_num=np.stack(rec.obs_num) if rec.obs_num else np.zeros((0, N_NUM), np.float32),
                obs_cat=np.stack(rec.obs_cat) if rec.obs_cat else np.zeros((0, N_CAT), np.int16),
                actions=np.asarray(rec.actions, dtype=np.int8),
                explored=np.asarray(rec.explored, dtype=bool),
                searched=np.asarray(rec.searched, dtype=bool),
                search_values=searches[:, 0],
                search_prior=searches[:, 1],
                masks=np.stack(rec.masks) if rec.masks else np.zeros((0, N_ACTIONS), bool),
                facts=np.stack([*rec.facts, reward_facts(battle)]),
                invalid_actions=rec.invalid,
                unavailable_choices=rec.unavailable,
                truncated=rec.truncated or not (battle.won or battle.lost or battle.finished),
                errors=rec.errors,
                generation=self.generation,
                format=self.format,  # type: ignore[attr-defined]
            )
            self.on_trajectory(traj)
        super()._battle_finished_callback(battle)  # type: ignore[misc]


def _is_gen1_singles(player: Any) -> bool:
    return player.format.startswith("gen1") and not player.format_is_doubles


class RecordingRandomPlayer(RecordingMixin, RandomPlayer):
    """poke-env's random player, choosing as it does (uniformly among the legal moves and
    switches) from the observation's mask, so it needs no poke-env battle and tracks
    `Gen1Battle`s. Its one draw per decision is the decision's hash (`random.seed`'s state
    from it would cost 5x more)."""

    @property
    def tracks_gen1(self) -> bool:
        return _is_gen1_singles(self)

    def choose_action(self, battle: Battle, obs: Observation) -> int:
        uniform = (self._decision_hash(battle) >> 11) / 2.0 ** 53  # in [0, 1), as random()'s
        legal = obs.mask.nonzero()[0]  # np.flatnonzero's result, without its Python layers
        return int(legal[int(uniform * len(legal))])


class PolicyPlayer(RecordingMixin, Player):
    """Plays a checkpoint through a shared, batched `Policy` (see metamon_sp/policy.py)."""

    def __init__(self, *args: Any, policy: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.policy = policy
        self.match: Any = None  # the DirectMatch playing it, for `policy.search_rate`

    def attach_match(self, match: Any) -> None:
        self.match = match

    @property
    def tracks_gen1(self) -> bool:
        # the search (metamon_sp/search.py) names its choices through poke-env's move objects
        return _is_gen1_singles(self) and self.policy.cfg.search_rate <= 0

    def choose_action(self, battle: Battle, obs: Observation) -> Awaitable[tuple[int, bool]]:
        rqid = (battle.last_request or {}).get("rqid")
        key = (self.username, battle.battle_tag)
        if self._searches_now(battle):
            return self._searched(battle, key, obs, rqid)
        return self.policy.decide(key, obs, rqid)

    def _searches_now(self, battle: Battle) -> bool:
        """Whether this decision goes to the simulator's search: a seeded coin per decision,
        at `policy.search_rate`, and only where a search can run (the direct backend)."""
        rate = self.policy.cfg.search_rate
        if rate <= 0 or self.match is None:
            return False
        rec = self._records.get(battle.battle_tag)
        key = f"{self.decision_seed}|search|{self.username}|{battle.battle_tag}|" \
              f"{len(rec.actions) if rec else 0}"
        coin = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
        return coin / 2**64 < rate

    async def _searched(self, battle: Battle, key: tuple[str, str], obs: Observation,
                        rqid: Any) -> tuple[int, bool, bool, np.ndarray]:
        """The policy decides as always; the search then values its choice against the others
        (the policy's `search_top_k` likeliest, or all) and plays its best instead where that is
        better by more than `search_z` standard errors. Only such decisions are flagged; every
        searched decision records the search's values and the policy's probabilities before it
        (`train.search_beta` learns from both)."""
        from metamon_sp.search import SearchOptions, confident_best, searched_values

        action, explored = await self.policy.decide(key, obs, rqid)
        cfg = self.policy.cfg
        probs = self.policy.probabilities(key, obs.mask)
        candidates = None
        if cfg.search_top_k:
            candidates = {int(a) for a in np.argsort(-probs, kind="stable")[:cfg.search_top_k]
                          if obs.mask[a]} | {action}
        options = SearchOptions(forks=cfg.search_forks, depth=cfg.search_depth,
                                pool=cfg.search_pool)
        samples = await searched_values(self.match, battle, self, options, candidates)
        search = np.full((2, N_ACTIONS), np.nan, np.float32)  # the values, the prior
        for a, v in samples.items():
            if obs.mask[a]:
                search[0, a] = v.mean()
        search[1, obs.mask] = probs[obs.mask]
        best = confident_best(samples, action, cfg.search_z)
        if best is not None and obs.mask[best]:
            return best, False, True, search
        return action, explored, False, search

    def _forget_last_turn(self, battle_tag: str) -> None:
        # live play must see the same history as the stored trajectory, which drops the turn
        self.policy.drop_last((self.username, battle_tag))

    def _battle_finished_callback(self, battle: Battle) -> None:
        self.policy.forget((self.username, battle.battle_tag))
        super()._battle_finished_callback(battle)

    def forget_battle(self, battle_tag: str) -> None:
        self.policy.forget((self.username, battle_tag))
        super().forget_battle(battle_tag)


_CLASSES: dict[type[Player], type[Player]] = {RandomPlayer: RecordingRandomPlayer}


def recording(cls: type[Player]) -> type[Player]:
    """`cls` with the recording wrapper mixed in (one class per base, reused)."""
    if cls not in _CLASSES:
        _CLASSES[cls] = type(f"Recording{cls.__name__}", (RecordingMixin, cls), {})
    return _CLASSES[cls]


def player_class(name: str) -> type[Player]:
    if name not in BASELINES:
        raise PlayerSpecError(f"unknown player {name!r}; choose one of {', '.join(BASELINES)}.")
    return recording(BASELINES[name])


# Showdown never checks it with --no-security; poke-env requires one.
_UNUSED_AUTH_URL = "http://127.0.0.1/unused-auth"
_NO_SERVER = "ws://127.0.0.1:1/no-server"


def build_player(spec: str, *, username: str, server_url: str | None, battle_format: str,
                 concurrency: int, team: Any, opponent_id: str = "",
                 on_trajectory: Callable[[Trajectory], None] | None = None,
                 team_names: dict[str, str] | None = None, generation: int = 0,
                 policy_cfg: Any = None, seed: int = 0) -> Player:
    """A recording player for `spec` (a baseline name or checkpoint:PATH) connected to the
    local server at `server_url`, or, with `server_url=None`, not connected: the direct
    backend (metamon_sp/showdown/direct.py) feeds it instead."""
    from poke_env import AccountConfiguration, ServerConfiguration

    extra: dict[str, Any] = {}
    if spec.startswith(CHECKPOINT_PREFIX):
        from metamon_sp.config import PolicyConfig
        from metamon_sp.policy import shared_policy

        cls: type[Player] = PolicyPlayer
        extra["policy"] = shared_policy(spec[len(CHECKPOINT_PREFIX):],
                                        policy_cfg or PolicyConfig(), seed=seed)
    elif is_search_spec(spec):
        from metamon_sp.search import SearchPlayer, parse_search_spec

        cls = SearchPlayer
        extra["search"] = parse_search_spec(spec)
    else:
        cls = player_class(spec)
    return cls(
        AccountConfiguration(username, None),
        battle_format=battle_format,
        server_configuration=ServerConfiguration(server_url or _NO_SERVER, _UNUSED_AUTH_URL),
        start_listening=server_url is not None,
        max_concurrent_battles=concurrency,
        team=team,
        # poke-env warns on every Gen 1 partial-trapping message; we count real errors ourselves.
        log_level=logging.ERROR,
        policy_id=spec,
        opponent_id=opponent_id,
        decision_seed=seed,
        on_trajectory=on_trajectory,
        team_names=team_names,
        generation=generation,
        **extra,
    )
