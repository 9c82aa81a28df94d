"""Evaluate: a player against opponents, fairly.

Each pairing plays N battles as N/2 mirrored team pairs: the same two teams are played once each
way round, and the player is p1 in the first half and p2 in the second, so neither side keeps a
team (or seat) advantage. Every game goes to the results table; `summary.json` maps each
opponent to wins, losses, ties, win rate with its 95% Wilson interval, valid-action rate and
mean turns.
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from metamon_sp import atomic
from metamon_sp.collect import collect
from metamon_sp.config import Config
from metamon_sp.players import check_player_spec
from metamon_sp.showdown import OnDemandServer, ShowdownServer
from metamon_sp.results import GAMES, append_games, games_from_dataset, label, pairing_summary, slug
from metamon_sp.teams import TeamSequence, load_team_set

log = logging.getLogger(__name__)

SUMMARY = "summary.json"


def team_pairs(cfg: Config, a: str, b: str, n_pairs: int) -> tuple[list[str], list[str]]:
    """Seeded (team A, team B) pairs for a pairing, the same whoever asks."""
    teams = load_team_set(cfg.team_set)
    rng = random.Random(f"{cfg.seed}:{'|'.join(sorted((a, b)))}")
    firsts, seconds = [], []
    for _ in range(n_pairs):
        ta, tb = rng.sample(teams, 2) if len(teams) > 1 else (teams[0], teams[0])
        firsts.append(ta.packed)
        seconds.append(tb.packed)
    return firsts, seconds


def play_pairing(cfg: Config, a: str, b: str, n: int, out_dir: Path | str,
                 names: dict[str, str] | None = None, show_progress: bool = False,
                 server: ShowdownServer | None = None) -> list[dict[str, Any]]:
    """Play `n` games of `a` against `b` (mirrored team pairs, seats swapped between halves);
    return their result rows (from `a`'s point of view). Re-running resumes."""
    out_dir = Path(out_dir)
    first_half = (n + 1) // 2
    team_a, team_b = team_pairs(cfg, a, b, first_half)
    rows: list[dict[str, Any]] = []
    for half, (p1, p2, count) in enumerate(((a, b, first_half), (b, a, n - first_half))):
        if count == 0:
            continue
        data = out_dir / ("a-is-p1" if half == 0 else "a-is-p2")
        hcfg = replace(cfg, collect=replace(cfg.collect, p1=p1, p2=p2, battles=count,
                                            record="both", parallel_instances=1))
        # p1 always gets the pair's first team: swapping seats swaps the teams between players.
        collect(hcfg, data, show_progress=show_progress, server=server,
                teams_for=(TeamSequence(team_a[:count]), TeamSequence(team_b[:count])))
        rows += games_from_dataset(data, a, b, a_side="p1" if half == 0 else "p2",
                                   source=str(data), names=names)
    return rows


def pairing_dir(out_dir: Path | str, opponent_name: str) -> Path:
    """Where `evaluate(..., out_dir)` keeps the games against one opponent."""
    return Path(out_dir) / "games" / slug(opponent_name)


def evaluate(cfg: Config, player: str, opponents: Sequence[str], battles: int,
             out_dir: Path | str, names: dict[str, str] | None = None,
             show_progress: bool = True) -> dict[str, Any]:
    """Evaluate `player` against each opponent; writes the games and `summary.json`."""
    out_dir = Path(out_dir)
    check_player_spec(player, "player")
    for i, opp in enumerate(opponents):
        check_player_spec(opp, f"opponents[{i}]")
    names = names or {}
    summary: dict[str, Any] = {"player": names.get(player, label(player)), "player_spec": player,
                               "battles_per_opponent": battles, "opponents": {}}
    # One server for every pairing, started only if a pairing has games left to play.
    with OnDemandServer(out_dir / "logs" / "showdown.log") as server:
        for opp in opponents:
            name = names.get(opp, label(opp))
            log.info("evaluate: %s vs %s, %d battles", summary["player"], name, battles)
            rows = play_pairing(cfg, player, opp, battles, pairing_dir(out_dir, name), names,
                                show_progress=show_progress, server=server)
            append_games(out_dir / GAMES, rows)
            summary["opponents"][name] = {"spec": opp, **pairing_summary(rows)}
    atomic.write_json(out_dir / SUMMARY, summary)
    return summary
