"""The direct backend: real battles in the simulator's own Node process, no server.

It must be the same game as on a server (the same protocol reaches the same battle-state
tracking and featurizer), replay exactly from a seed, and survive its simulator's death."""

from __future__ import annotations

import asyncio
import hashlib
from contextlib import contextmanager

import numpy as np
import orjson
import pytest
from poke_env.concurrency import POKE_LOOP

from metamon_sp.collect import collect
from metamon_sp.config import load_config
from metamon_sp.players import RecordingMixin, build_player
from metamon_sp.showdown.direct import split_message
from metamon_sp.trajectories import Dataset

pytestmark = pytest.mark.timeout(300)


def data_hash(folder) -> str:
    """Every trajectory's content, in battle order (shards fill in completion order)."""
    h = hashlib.sha256()
    for t in sorted(Dataset(folder), key=lambda t: (t.battle_id, t.side)):
        h.update(f"{t.battle_id}|{t.side}|{t.team}|{t.opponent_team}|{t.outcome}|{t.turns}".encode())
        for a in (t.obs_num, t.obs_cat, t.masks, t.actions, t.explored, t.facts):
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@contextmanager
def captured_frames():
    """Every battle frame any player receives, as (username, text), in order, on either backend
    (the server's client and the direct backend both hand a player its battle's messages split
    into lines and fields: joined, they are the frame)."""
    frames: list[tuple[str, str]] = []
    original = RecordingMixin._handle_battle_message

    async def spy(self, split_messages):
        if split_messages[0][0].startswith(">battle-"):
            frames.append((self.username, "\n".join("|".join(m) for m in split_messages)))
        return await original(self, split_messages)

    RecordingMixin._handle_battle_message = spy
    try:
        yield frames
    finally:
        RecordingMixin._handle_battle_message = original


def by_battle(frames: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for user, text in frames:
        out.setdefault(text.split("\n", 1)[0][1:], []).append((user, text))
    return out


def test_the_same_seed_replays_the_same_battles(tmp_path):
    cfg = load_config(["collect.battles=12", "collect.concurrency=4", "collect.shard_battles=5",
                       "collect.p1=simple_heuristics", "collect.p2=random", "seed=5"])
    a = collect(cfg, tmp_path / "a", show_progress=False)
    b = collect(cfg, tmp_path / "b", show_progress=False)
    assert a["battles"] == b["battles"] == 12 and a["decisions"] == b["decisions"]
    assert data_hash(tmp_path / "a") == data_hash(tmp_path / "b")
    other = load_config(["collect.battles=12", "collect.concurrency=4", "collect.shard_battles=5",
                         "collect.p1=simple_heuristics", "collect.p2=random", "seed=6"])
    collect(other, tmp_path / "c", show_progress=False)
    assert data_hash(tmp_path / "c") != data_hash(tmp_path / "a")


def test_two_simulators_play_the_same_battles_as_one(tmp_path):
    """Battles spread over two simulator processes are the battles one process plays: each is
    seeded on its own, whichever process runs it and whatever order its turns come back in."""
    base = ["collect.battles=12", "collect.concurrency=6", "collect.shard_battles=4",
            "collect.p1=simple_heuristics", "collect.p2=random", "seed=5"]
    one = collect(load_config(base), tmp_path / "one", show_progress=False)
    two = collect(load_config([*base, "collect.simulators=2"]), tmp_path / "two",
                  show_progress=False)
    assert one["battles"] == two["battles"] == 12
    assert sorted(p.name for p in (tmp_path / "two" / "logs").glob("sim-i00-s*.log")) == [
        "sim-i00-s0.log", "sim-i00-s1.log"]
    assert data_hash(tmp_path / "one") == data_hash(tmp_path / "two")


def _kinds(text: str) -> list[str]:
    server_only = {"j", "J", "l", "L", "t:", "raw", "c", "inactive", "inactiveoff", "title",
                   "init", "deinit", "expire", "uhtml", "uhtmlchange", "html", "tempnotify",
                   "tempnotifyoff", "rated", "badge", "-hint", "bigerror", "timer", "n", "N"}
    return [line.split("|")[1] for line in text.split("\n")[1:]
            if line.startswith("|") and line.split("|")[1] not in server_only]


@pytest.mark.parametrize("backend", ["showdown", "direct"])
def test_the_simulator_speaks_the_servers_protocol(tmp_path, backend):
    cfg = load_config(["collect.battles=4", "collect.concurrency=2", "collect.p1=max_base_power",
                       "collect.p2=simple_heuristics", f"collect.backend={backend}"])
    with captured_frames() as frames:
        collect(cfg, tmp_path / "data", show_progress=False)
    battles = by_battle(frames)
    assert len(battles) == 4
    for tag, seen in battles.items():
        for user in {u for u, _ in seen}:
            mine = [text for u, text in seen if u == user]
            assert mine[0].split("\n")[1] == "|init|battle"
            kinds = [k for text in mine for k in _kinds(text)]
            # the opening, as a server sends it once the players and the rules are known
            start = kinds.index("start")
            assert kinds[start + 1:start + 4] == ["switch", "switch", "turn"]
            assert {"player", "teamsize", "gen", "tier"} <= set(kinds[:start])
            assert kinds.count("win") + kinds.count("tie") == 1
            rqids = [orjson.loads(line[9:])["rqid"] for text in mine
                     for line in text.split("\n") if line.startswith("|request|")]
            assert rqids and rqids == sorted(rqids) and len(set(rqids)) == len(rqids)
            # hidden information: own HP in points, the opponent's in percent
            side = "p1" if user.startswith("p1-") else "p2"
            switches = [line.split("|") for text in mine for line in text.split("\n")
                        if line.startswith("|switch|")]
            own = [s[4] for s in switches if s[2].startswith(side)]
            theirs = [s[4] for s in switches if not s[2].startswith(side)]
            assert own and theirs and all(h.endswith("/100") for h in theirs)
            assert any(not h.split()[0].endswith("/100") for h in own)


def test_protocol_fed_without_a_server_records_what_the_server_path_recorded(tmp_path):
    """Battles played on the server; then the very frames each player received, fed to fresh
    players as the direct backend hands them over: the same trajectories, decision for
    decision."""
    cfg = load_config(["collect.battles=3", "collect.concurrency=3", "collect.p1=max_base_power",
                       "collect.p2=simple_heuristics", "collect.backend=showdown"])
    with captured_frames() as frames:
        collect(cfg, tmp_path / "data", show_progress=False)
    served = {(t.battle_id.split(":", 1)[1], t.side): t for t in Dataset(tmp_path / "data")}
    users = sorted({u for u, _ in frames})
    replayed = []
    players = {}
    for user in users:
        spec = "max_base_power" if user.startswith("p1-") else "simple_heuristics"
        players[user] = build_player(spec, username=user, server_url=None, battle_format="gen1ou",
                                     concurrency=3, team=None, on_trajectory=replayed.append,
                                     seed=cfg.seed)

        async def ignore(message, room="", message_2=None):
            return None
        players[user].ps_client.send_message = ignore
    for user, text in frames:
        tag, body = text[1:].split("\n", 1)
        asyncio.run_coroutine_threadsafe(
            players[user]._handle_battle_message(split_message(tag, body)), POKE_LOOP
        ).result(timeout=30)
    assert len(replayed) == len(served) == 6
    for t in replayed:
        s = served[(t.battle_id, t.side)]
        assert (t.outcome, t.turns, t.invalid_actions) == (s.outcome, s.turns, s.invalid_actions)
        for name in ("obs_num", "obs_cat", "masks", "actions", "facts"):
            np.testing.assert_array_equal(getattr(t, name), getattr(s, name), err_msg=name)


def test_a_format_the_simulator_cannot_load_at_start_is_named_and_battles_still_play(tmp_path):
    """`formats` load as the process starts (not on its first battle); a bad one is named in
    the simulator's log, and the process goes on serving the formats that exist."""
    import threading

    from metamon_sp.showdown.direct import BattleSim, battle_seed
    from metamon_sp.teams import load_team_set

    team = load_team_set("gen1ou")[0].packed
    requested = threading.Event()

    def on_rows(rows):
        if any(r[1] == "p1" and r[2].startswith("|request|") for r in rows or ()):
            requested.set()

    log = tmp_path / "sim.log"
    with BattleSim(log, formats=("gen1ou", "gen1nosuchformat")) as sim:
        sim.listen(on_rows)
        POKE_LOOP.call_soon_threadsafe(sim.send, {
            "t": "start", "id": "battle-gen1ou-t0", "format": "gen1ou", "seed": battle_seed(0),
            "p1": ["a", team], "p2": ["b", team]})
        assert requested.wait(60)
    text = log.read_text()
    assert "could not load the data of format gen1nosuchformat" in text
    assert "format gen1ou:" not in text


def test_a_match_keeps_nothing_of_its_finished_battles(tmp_path):
    """Once both players have seen a battle end (its trajectories recorded), neither keeps it:
    a long collection's memory, and each full garbage collection, stay the size of the battles
    in flight."""
    from metamon_sp.showdown.direct import BattleSim, DirectMatch
    from metamon_sp.teams import TeamSampler, load_team_set

    teams = load_team_set("gen1ou")
    recorded = []
    p1, p2 = (build_player("random", username=f"{side}-keep", server_url=None,
                           battle_format="gen1ou", concurrency=3,
                           team=TeamSampler(teams, seed), on_trajectory=recorded.append, seed=0)
              for side, seed in (("p1", 1), ("p2", 2)))
    with BattleSim(tmp_path / "sim.log") as sim:
        DirectMatch(sim, p1, p2, 6, "gen1ou", "keep", seed=0, concurrency=3).run()
    assert len(recorded) == 12
    for player in (p1, p2):
        assert not player._battles and not player.ps_client._battle_locks
