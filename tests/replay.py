"""Replay recorded server messages into a poke-env Battle, as a Player would, without a server."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterator

import orjson
from poke_env.battle import Battle

from metamon_sp.battle_state import make_lean
from metamon_sp.gen1_battle import Gen1Battle

FIXTURES = Path(__file__).parent / "fixtures"
_IGNORED = {"t:", "init", "title", "j", "J", "l", "L", "deinit", "expire", "uhtmlchange",
            "tempnotify", "tempnotifyoff", "error", "bigerror", "showteam"}


def battle_logs() -> list[dict]:
    """Recorded battles (one per side): {battle_tag, username, quirks, chunks}."""
    path = FIXTURES / "gen1ou_battles.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _feed(battle: Battle, log: dict) -> Iterator[Battle]:
    for chunk in log["chunks"]:
        for msg in chunk[1:]:
            if len(msg) < 2 or msg[1] in _IGNORED:
                continue
            if msg[1] == "request":
                if msg[2]:
                    battle.parse_request(orjson.loads(msg[2]))
                    if not battle._wait and not battle.teampreview:
                        yield battle
            elif msg[1] == "win":
                battle.won_by(msg[2])
            elif msg[1] == "tie":
                battle.tied()
            else:
                battle.parse_message(msg)


def _new(log: dict, lean: bool = False, gen1: bool = False) -> Battle:
    if gen1:
        return Gen1Battle(log["battle_tag"], log["username"])  # type: ignore[return-value]
    battle = Battle(log["battle_tag"], log["username"], logging.getLogger("replay"), gen=1)
    return make_lean(battle) if lean else battle


def decisions(log: dict, lean: bool = False, gen1: bool = False) -> Iterator[Battle]:
    """Yield the battle each time its player must choose (the same object, updated); `lean`:
    tracked as players track it (metamon_sp/battle_state.py); `gen1`: tracked by
    metamon_sp/gen1_battle.py instead of poke-env."""
    yield from _feed(_new(log, lean, gen1), log)


def final_battle(log: dict, gen1: bool = False) -> Battle:
    """The battle after its last message."""
    battle = _new(log, gen1=gen1)
    for _ in _feed(battle, log):
        pass
    assert battle.finished, f"{log['battle_tag']} did not finish in the recording"
    return battle
