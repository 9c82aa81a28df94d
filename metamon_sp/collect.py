"""Collect: play `collect.battles` battles between `collect.p1` and `collect.p2` and record them.

The battles are split over `collect.parallel_instances` independent instances, each with its own
battle backend and players (a process each when there are several). The backend is
`collect.backend`: `direct`, the simulator in a Node process of its own (seeded battles: the
same seed replays the same battles), or `showdown`, a local server over websockets. An instance
writes a shard whenever `collect.shard_battles` battles are complete, so a crash loses only
battles in flight. If its simulator or server dies it is restarted and play resumes until the
instance's count is reached; a re-run into the same folder resumes the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import threading
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from poke_env.concurrency import POKE_LOOP
from poke_env.teambuilder import Teambuilder
from websockets.exceptions import ConnectionClosed

from metamon_sp import atomic
from metamon_sp.battle_gc import battle_gc
from metamon_sp.config import Config
from metamon_sp.players import (PlayerSpecError, build_player, check_player_spec,
                                 is_search_spec)
from metamon_sp.showdown import OnDemandServer, ShowdownServer
from metamon_sp.showdown.direct import (BattleSim, DirectMatch, OnDemandSim, OnDemandSimPool,
                                        SimDied, SimPool)
from metamon_sp.teams import (TeamSampler, TeamSequence, team_index, training_teams,
                              validate_team_set)
from metamon_sp.trajectories import MANIFEST, ShardWriter, Trajectory, write_manifest

log = logging.getLogger(__name__)

SUMMARY = "collect_summary.json"


class CollectError(RuntimeError):
    pass


def dataset_hash(cfg: Config) -> str:
    """What makes two collections the same kind of data: the config without the battle target,
    so asking for more battles extends a dataset instead of refusing it."""
    return cfg.hash(ignore=("collect.battles",))


class ServerDied(RuntimeError):
    """The server, or a player's connection to it, is gone: restart it and resume."""


Backend = ShowdownServer | BattleSim | SimPool
"""Where an instance's battles run: a Showdown server, or the direct simulator (one process or
several)."""
DIRECT = (BattleSim, SimPool)


def open_backend(cfg: Config, log_dir: Path | str, suffix: str = "") -> Backend:
    """`collect.backend`'s host for battles, started on first use (see `with`)."""
    log_dir = Path(log_dir)
    if cfg.collect.backend == "direct":
        formats = (cfg.format,)  # its data loads while the players are built
        if cfg.collect.simulators > 1:
            return OnDemandSimPool(log_dir / f"sim{suffix}.log", cfg.collect.simulators,
                                   formats=formats)
        return OnDemandSim(log_dir / f"sim{suffix}.log", formats=formats)
    return OnDemandServer(log_dir / f"showdown{suffix}.log")


class BattleBook:
    """Pairs the two sides' trajectories of each battle (they finish on poke-env's thread)."""

    def __init__(self, record: str):
        self.keep = {"both": {"p1", "p2"}, "p1": {"p1"}, "p2": {"p2"}}[record]
        self._pending: dict[str, dict[str, Trajectory]] = {}
        self._ready: list[list[Trajectory]] = []
        self._lock = threading.Lock()
        self.completed = 0

    def add(self, traj: Trajectory) -> None:
        with self._lock:
            sides = self._pending.setdefault(traj.battle_id, {})
            sides[traj.side] = traj
            if len(sides) < 2:
                return
            del self._pending[traj.battle_id]
            p1, p2 = sides["p1"], sides["p2"]
            p1.opponent_team, p2.opponent_team = p2.team, p1.team
            self._ready.append([t for t in (p1, p2) if t.side in self.keep])
            self.completed += 1

    def pop_ready(self, multiple_of: int = 1) -> list[list[Trajectory]]:
        """Complete battles (each a list of kept trajectories), as many as fill whole groups of
        `multiple_of` (full shards); the rest wait for the next call."""
        with self._lock:
            n = len(self._ready) // multiple_of * multiple_of
            ready, self._ready = self._ready[:n], self._ready[n:]
            return ready


class PlayClock:
    """Play time: from when the first players are built (the backend started, their policies
    loaded, on a server logged in: once per collection, however many battles) to the end,
    restarts included. What rates of play (`battles_per_s`) divide by."""

    def __init__(self) -> None:
        self._t0: float | None = None

    def start(self) -> None:
        if self._t0 is None:
            self._t0 = time.monotonic()

    def seconds(self) -> float:
        return 0.0 if self._t0 is None else time.monotonic() - self._t0


@dataclass
class InstanceResult:
    instance: int
    battles_played: int
    play_seconds: float
    restarts: int
    server_peak_rss_bytes: int | None


def _player_ids(cfg: Config) -> tuple[str, str]:
    p2 = cfg.collect.p1 if cfg.collect.p2 == "self" else cfg.collect.p2
    return cfg.collect.p1, p2


async def _stop(players: list[Any]) -> None:
    for p in players:
        try:
            await asyncio.wait_for(p.ps_client.stop_listening(), timeout=5)
        except Exception:  # the socket may already be gone with the server
            pass


def _forfeit_overdue(p1: Any, p2: Any, timeout_s: float, forfeited: set[str],
                     forfeit: Callable[[str], Any]) -> None:
    """Forfeit (for p1) every battle older than `timeout_s`, once, and mark it truncated."""
    for battle_tag, age in p1.battle_ages().items():
        if age > timeout_s and battle_tag not in forfeited:
            log.warning("Battle %s exceeded %.0fs: forfeiting it (marked truncated)",
                        battle_tag, timeout_s)
            forfeited.add(battle_tag)
            p1.mark_truncated(battle_tag)
            p2.mark_truncated(battle_tag)
            forfeit(battle_tag)


async def _logged_in(players: list[Any], server: ShowdownServer, timeout_s: float = 30.0) -> None:
    """Until the players are logged in (their play starts then), the server dies, or
    `timeout_s` passes; what follows in `_play` reports a dead server or a stuck battle."""
    deadline = time.monotonic() + timeout_s
    for p in players:
        done = asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(p.ps_client.logged_in.wait(), POKE_LOOP))
        while not done.done() and server.alive() and time.monotonic() < deadline:
            await asyncio.wait({done}, timeout=0.5)
        done.cancel()


async def _play(server: ShowdownServer, cfg: Config, n: int, book: BattleBook,
                flush: Callable[[list[list[Trajectory]]], None], samplers: list[Teambuilder],
                names: dict[str, str], generation: int, tag: str, clock: PlayClock) -> None:
    """Play `n` battles on `server`, flushing complete battles as shards fill up."""
    p1_id, p2_id = _player_ids(cfg)
    c = cfg.collect
    common = dict(server_url=server.websocket_url, battle_format=cfg.format,
                  concurrency=c.concurrency, on_trajectory=book.add, team_names=names,
                  generation=generation, policy_cfg=cfg.policy, seed=cfg.seed)
    p1 = build_player(p1_id, username=f"p1-{tag}", team=samplers[0], opponent_id=p2_id, **common)
    p2 = build_player(p2_id, username=f"p2-{tag}", team=samplers[1], opponent_id=p1_id, **common)
    await _logged_in([p1, p2], server)
    clock.start()
    games = asyncio.ensure_future(p1.battle_against(p2, n_battles=n))
    forfeited: set[str] = set()
    try:
        while not games.done():
            await asyncio.wait({games}, timeout=0.5)
            flush(book.pop_ready(multiple_of=c.shard_battles))
            if not server.alive():
                raise ServerDied(f"the Showdown server died (see {server.log_path})")
            _forfeit_overdue(p1, p2, c.battle_timeout_s, forfeited, lambda tag: (
                asyncio.run_coroutine_threadsafe(p1.ps_client.send_message("/forfeit", tag),
                                                 POKE_LOOP)))
        try:
            games.result()
        except ConnectionClosed as e:  # a player lost its socket: recover as from a dead server
            raise ServerDied(f"a player's connection to the server closed ({e})") from e
    finally:
        flush(book.pop_ready())  # complete battles are kept, whatever happened
        if not games.done():
            games.cancel()
        await _stop([p1, p2])


def _play_direct(sim: BattleSim | SimPool, cfg: Config, n: int, book: BattleBook,
                 flush: Callable[[list[list[Trajectory]]], None], samplers: list[Teambuilder],
                 names: dict[str, str], generation: int, session: str, first_index: int,
                 clock: PlayClock) -> None:
    """`_play` on the direct backend: battle k of `session` is seeded from the run seed."""
    p1_id, p2_id = _player_ids(cfg)
    c = cfg.collect
    common = dict(server_url=None, battle_format=cfg.format, concurrency=c.concurrency,
                  on_trajectory=book.add, team_names=names, generation=generation,
                  policy_cfg=cfg.policy, seed=cfg.seed)
    p1 = build_player(p1_id, username=f"p1-{session}", team=samplers[0], opponent_id=p2_id,
                      **common)
    if c.p2 != "self":  # only the learner searches: an opponent's decisions are not its data
        common["policy_cfg"] = replace(cfg.policy, search_rate=0.0)
    p2 = build_player(p2_id, username=f"p2-{session}", team=samplers[1], opponent_id=p1_id,
                      **common)
    sim.ensure_started()
    clock.start()
    match = DirectMatch(sim, p1, p2, n, cfg.format, session, seed=cfg.seed,
                        concurrency=c.concurrency, first_index=first_index)
    games = match.future()
    forfeited: set[str] = set()
    try:
        while not games.done():
            wait([games], timeout=0.5)
            flush(book.pop_ready(multiple_of=c.shard_battles))
            _forfeit_overdue(p1, p2, c.battle_timeout_s, forfeited, match.forfeit)
        try:
            games.result()
        except SimDied as e:
            raise ServerDied(str(e)) from e
    finally:
        flush(book.pop_ready())  # complete battles are kept, whatever happened
        if not games.done():
            games.cancel()


def run_instance(cfg: Config, out_dir: Path | str, instance: int, n_battles: int,
                 generation: int = 0, progress: Callable[[int], None] | None = None,
                 teams_for: tuple[TeamSequence, TeamSequence] | None = None,
                 server: Backend | None = None,
                 opponents: Sequence[Matchup] | None = None) -> InstanceResult:
    """Play this instance's share of battles into `out_dir` with its own server.

    `teams_for` gives p1's and p2's teams battle by battle (poke-env pairs the k-th challenge
    with the k-th acceptance); by default each side samples from the team set. A running
    `server` (a Showdown server or a direct simulator) is used, and left running, instead of
    starting one. `opponents` (an opponent pool) replaces `collect.p2`: p1 plays each matchup's
    battles in turn, on the same server, each into shards of its own
    (`i00.vs_<name>-NNNNN.parquet`), so each resumes on its own."""
    if opponents is None:
        return _run_matchup(cfg, out_dir, instance, f"i{instance:02d}", n_battles, generation,
                            progress, teams_for, server)
    own = open_backend(cfg, Path(out_dir) / "logs", f"-i{instance:02d}") if server is None \
        else None
    results = []
    with own or nullcontext(server) as server:
        for m in opponents:
            mcfg = replace(cfg, collect=replace(cfg.collect, p2=m.spec, record=m.record))
            results.append(_run_matchup(mcfg, out_dir, instance, f"i{instance:02d}.vs_{m.name}",
                                        m.battles, generation, progress, None, server))
    return InstanceResult(instance, sum(r.battles_played for r in results),
                          sum(r.play_seconds for r in results),
                          results[-1].restarts if results else 0,
                          max((r.server_peak_rss_bytes or 0 for r in results), default=None))


@dataclass(frozen=True)
class Matchup:
    """One opponent of a pool: its name in shard names, its player spec, battles, whose side is
    recorded (`both` for self-play, else `p1`, the learner, unless opponents are kept too)."""

    name: str
    spec: str
    battles: int
    record: str = "p1"


def _run_matchup(cfg: Config, out_dir: Path | str, instance: int, prefix: str, n_battles: int,
                 generation: int, progress: Callable[[int], None] | None,
                 teams_for: tuple[TeamSequence, TeamSequence] | None,
                 server: Backend | None) -> InstanceResult:
    out_dir = Path(out_dir)
    c = cfg.collect
    teams = training_teams(cfg.team_set, cfg.team_remix)
    names = team_index(teams)
    p1_id, p2_id = _player_ids(cfg)
    writer = ShardWriter(out_dir, prefix=prefix, extra_meta={
        "instance": instance, "p1": p1_id, "p2": p2_id, "format": cfg.format,
        "team_set": cfg.team_set, "generation": generation, "config_hash": dataset_hash(cfg)})
    written = writer.existing_summary()["battles"]
    if written >= n_battles:
        return InstanceResult(instance, 0, 0.0, 0, None)
    seed = cfg.seed * 10_007 + instance
    if "." in prefix:  # each matchup of a pool draws its own teams
        seed += zlib.crc32(prefix.encode()) * 7
    random.seed(seed)  # poke-env's baselines draw from the global RNG
    np.random.seed(seed % 2**32)
    samplers = list(teams_for or (TeamSampler(teams, seed * 2), TeamSampler(teams, seed * 2 + 1)))
    for sampler in teams_for or ():
        sampler.skip(written)  # fixed sequences go on where the battles already written stop
    played = 0

    session = ""  # battle ids restart per server (and parallel servers share a counter)

    def flush(battles: list[list[Trajectory]]) -> None:
        nonlocal written, played
        size = c.shard_battles
        for battle in battles:
            for t in battle:
                t.battle_id = f"{session}:{t.battle_id}"
        for i in range(0, len(battles), size):
            chunk = battles[i:i + size]
            writer.write([t for battle in chunk for t in battle])
            written += len(chunk)
            played += len(chunk)
            if progress:
                progress(len(chunk))

    own = open_backend(cfg, out_dir / "logs", f"-i{instance:02d}") if server is None else None
    stream = f"g{generation}i{instance}x{zlib.crc32(prefix.encode()):08x}"
    with battle_gc(), own or nullcontext(server) as server:
        if isinstance(server, DIRECT):
            server.ensure_started()  # it loads its data while the players are built
        clock = PlayClock()
        while written < n_battles:
            book = BattleBook(c.record)
            try:
                if isinstance(server, DIRECT):
                    # battle k of a stream is seeded by (seed, stream, k): a fresh collection
                    # replays the same battles, a resumed one goes on where the data stops
                    session = f"{stream}r{server.restarts}"
                    _play_direct(server, cfg, n_battles - written, book, flush, samplers, names,
                                 generation, session, first_index=written, clock=clock)
                else:
                    tag = f"i{instance}r{server.restarts}{secrets.token_hex(2)}"
                    session = tag
                    asyncio.run(_play(server, cfg, n_battles - written, book, flush, samplers,
                                      names, generation, tag, clock))
            except ServerDied as e:
                if server.restarts >= c.max_server_restarts:
                    raise CollectError(f"instance {instance}: {e}; gave up after "
                                       f"{server.restarts} restarts ({written} battles kept).") from e
                log.warning("Instance %d: %s; restarting it (%d battles kept)", instance, e, written)
                server.restart()
        peak = server.peak_rss_bytes()
        restarts = server.restarts
    return InstanceResult(instance, played, clock.seconds(), restarts, peak)


def _instance_entry(args: tuple) -> InstanceResult:
    cfg, out_dir, instance, n, generation, queue, opponents = args
    logging.basicConfig(level=logging.WARNING)
    return run_instance(cfg, out_dir, instance, n, generation,
                        progress=(lambda k: queue.put(k)) if queue is not None else None,
                        opponents=opponents)


def instance_share(pool: Sequence[Matchup] | None, instance: int, parts: int
                   ) -> list[Matchup] | None:
    """An instance's part of each matchup of a pool."""
    if pool is None:
        return None
    return [replace(m, battles=split_battles(m.battles, parts)[instance]) for m in pool]


def split_battles(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


def _check_out_dir(out_dir: Path, cfg: Config) -> None:
    manifest = out_dir / MANIFEST
    if manifest.exists():
        meta = json.loads(manifest.read_text()).get("meta", {})
        if meta.get("config_hash") not in (None, dataset_hash(cfg)):
            raise CollectError(f"out={out_dir} already holds a dataset collected with another config "
                               f"(hash {meta.get('config_hash')}, now {dataset_hash(cfg)}); choose an "
                               f"empty folder so nothing already written is mixed or lost.")


def prepare_collection(cfg: Config, out_dir: Path | str,
                       pool: Sequence[Matchup] | None = None) -> None:
    """Everything that can fail before a battle: players, teams (an illegal team would hang its
    battles), and an output folder holding another config's data."""
    c = cfg.collect
    check_player_spec(c.p1, "collect.p1")
    check_player_spec(c.p2, "collect.p2", allow_self=True)
    for m in pool or ():
        check_player_spec(m.spec, f"pool opponent {m.name}", allow_self=True)
    if c.backend != "direct":
        for key, spec in (("collect.p1", c.p1), ("collect.p2", c.p2),
                          *((f"pool opponent {m.name}", m.spec) for m in pool or ())):
            if is_search_spec(spec):
                raise PlayerSpecError(
                    f"{key}={spec!r} searches in the simulator's own battles, which only the "
                    f"direct backend has; set collect.backend=direct (now {c.backend!r}).")
    validate_team_set(training_teams(cfg.team_set, cfg.team_remix), cfg.format)
    _check_out_dir(Path(out_dir), cfg)
    Path(out_dir).mkdir(parents=True, exist_ok=True)


def finish_collection(cfg: Config, out_dir: Path | str, results: list[InstanceResult],
                      seconds: float, generation: int = 0,
                      pool: Sequence[Matchup] | None = None) -> dict[str, Any]:
    """Write the manifest (from the shards) and `collect_summary.json`; return the summary."""
    out_dir = Path(out_dir)
    p1_id, p2_id = _player_ids(cfg)
    meta = {"p1": p1_id, "p2": p2_id, "format": cfg.format, "team_set": cfg.team_set,
            "record": cfg.collect.record, "generation": generation,
            "config_hash": dataset_hash(cfg)}
    if pool is not None:  # who played whom: p1 against each of these (see the shards' meta)
        meta["pool"] = [asdict(m) for m in pool]
    manifest = write_manifest(out_dir, meta=meta)
    played = sum(r.battles_played for r in results)
    play_seconds = max((r.play_seconds for r in results), default=0.0)
    summary = {
        "battles": manifest["battles"],
        "battles_played": played,
        "seconds": round(seconds, 3),
        "play_seconds": round(play_seconds, 3),
        "battles_per_s": round(played / play_seconds, 3) if played and play_seconds > 0 else 0.0,
        "p1": p1_id,
        "p2": p2_id,
        "p1_win_rate": round(manifest["p1_wins"] / max(1, manifest["battles"]), 4),
        "invalid_actions": manifest["invalid_actions"],
        "decisions": manifest["steps"],
        "invalid_rate": round(manifest["invalid_actions"] / max(1, manifest["steps"]), 6),
        "truncated": manifest["truncated"],
        **({"pool": meta["pool"]} if pool is not None else {}),
        "server_restarts": sum(r.restarts for r in results),
        "instances": [asdict(r) for r in results],
    }
    atomic.write_json(out_dir / SUMMARY, summary)
    return summary


def collect(cfg: Config, out_dir: Path | str, generation: int = 0, show_progress: bool = True,
            teams_for: tuple[TeamSequence, TeamSequence] | None = None,
            server: Backend | None = None,
            on_progress: Callable[[int, int], None] | None = None,
            pool: Sequence[Matchup] | None = None) -> dict[str, Any]:
    """Play and record `cfg.collect.battles` battles into `out_dir`; return the summary.
    `teams_for` (one instance only) fixes both sides' teams battle by battle; `server` (one
    instance only) plays on a server or simulator the caller keeps running; `pool` replaces `collect.p2` by
    an opponent pool (its battles are the total)."""
    from tqdm import tqdm

    c = cfg.collect
    if (teams_for is not None or server is not None) and c.parallel_instances != 1:
        raise CollectError("fixed team sequences or a shared server need "
                           "collect.parallel_instances=1.")
    prepare_collection(cfg, out_dir, pool)
    total = c.battles if pool is None else sum(m.battles for m in pool)
    parts = split_battles(total, c.parallel_instances)
    bar = _Progress(tqdm(total=total, desc="collect", unit="battle",
                         disable=not show_progress, mininterval=1.0), on_progress)
    t0 = time.monotonic()
    if c.parallel_instances == 1:
        results = [run_instance(cfg, out_dir, 0, parts[0], generation, progress=bar.update,
                                teams_for=teams_for, server=server, opponents=pool)]
    else:
        results = _run_parallel(cfg, Path(out_dir), parts, generation, bar, pool)
    bar.close()
    return finish_collection(cfg, out_dir, results, time.monotonic() - t0, generation, pool)


class _Progress:
    """A tqdm bar that also reports (done, total) to a callback."""

    def __init__(self, bar: Any, callback: Callable[[int, int], None] | None):
        self.bar, self.callback = bar, callback

    def update(self, n: int) -> None:
        self.bar.update(n)
        if self.callback is not None:
            self.callback(int(self.bar.n), int(self.bar.total))

    def close(self) -> None:
        self.bar.close()


def _run_parallel(cfg: Config, out_dir: Path, parts: list[int], generation: int, bar: Any,
                  pool: Sequence[Matchup] | None = None) -> list[InstanceResult]:
    ctx = get_context("spawn")  # poke-env runs a background event loop thread: never fork it
    with ctx.Manager() as manager, ProcessPoolExecutor(len(parts), mp_context=ctx) as executor:
        queue = manager.Queue()
        futures = [executor.submit(_instance_entry, (cfg, out_dir, i, n, generation, queue,
                                                     instance_share(pool, i, len(parts))))
                   for i, n in enumerate(parts)]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.5)
            while not queue.empty():
                bar.update(queue.get())
        while not queue.empty():
            bar.update(queue.get())
        return [f.result() for f in futures]
