"""Evaluate: a player against opponents, fairly.

Each pairing plays N battles as N/2 mirrored team pairs from `eval.team_set` (by default the
held-out split, teams never trained on): the same two teams are played once each way round, and
the player is p1 in the first half and p2 in the second, so neither side keeps a team (or seat)
advantage. Every game goes to the results table; `summary.json` names the team set and maps each
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
from metamon_sp.collect import Backend, collect, open_backend
from metamon_sp.config import Config
from metamon_sp.players import check_player_spec
from metamon_sp.results import GAMES, append_games, games_from_dataset, label, pairing_summary, slug
from metamon_sp.teams import TeamError, TeamSequence, load_team_set, shared_teams

log = logging.getLogger(__name__)

SUMMARY = "summary.json"


def team_pairs(cfg: Config, a: str, b: str, n_pairs: int, key: str | None = None
               ) -> tuple[list[str], list[str]]:
    """Seeded (team A, team B) pairs for a pairing, drawn from `eval.team_set`, the same whoever
    asks. Keyed by the players' roles (a baseline's name, a checkpoint's generation folder), not
    by the run folder they live in: the arms of a study then meet each opponent on the same team
    pairs and battle seeds (common random numbers), so what differs between them is the play.
    `key` replaces the roles (players compared against one opponent on the same pairs)."""
    teams = load_team_set(cfg.eval.team_set)
    roles = [key] if key is not None else sorted(label(p).rsplit("/", 1)[-1] for p in (a, b))
    rng = random.Random(f"{cfg.seed}:{'|'.join(roles)}")
    firsts, seconds = [], []
    for _ in range(n_pairs):
        ta, tb = rng.sample(teams, 2) if len(teams) > 1 else (teams[0], teams[0])
        firsts.append(ta.packed)
        seconds.append(tb.packed)
    return firsts, seconds


def play_pairing(cfg: Config, a: str, b: str, n: int, out_dir: Path | str,
                 names: dict[str, str] | None = None, show_progress: bool = False,
                 server: Backend | None = None, pair_key: str | None = None
                 ) -> list[dict[str, Any]]:
    """Play `n` games of `a` against `b` (mirrored team pairs, seats swapped between halves);
    return their result rows (from `a`'s point of view). Re-running resumes. `pair_key`: see
    `team_pairs`."""
    out_dir = Path(out_dir)
    first_half = (n + 1) // 2
    team_a, team_b = team_pairs(cfg, a, b, first_half, pair_key)
    rows: list[dict[str, Any]] = []
    for half, (p1, p2, count) in enumerate(((a, b, first_half), (b, a, n - first_half))):
        if count == 0:
            continue
        data = out_dir / ("a-is-p1" if half == 0 else "a-is-p2")
        # team_set=eval.team_set: collect validates, and names the games' teams from, that set.
        # policy.search_rate=0: a game to rate is played by the policy alone
        hcfg = replace(cfg, team_set=cfg.eval.team_set, team_remix=0,
                       policy=replace(cfg.policy, search_rate=0.0),
                       collect=replace(cfg.collect, p1=p1, p2=p2, battles=count, record="both",
                                       parallel_instances=1))
        # p1 always gets the pair's first team: swapping seats swaps the teams between players.
        collect(hcfg, data, show_progress=show_progress, server=server,
                teams_for=(TeamSequence(team_a[:count]), TeamSequence(team_b[:count])))
        rows += games_from_dataset(data, a, b, a_side="p1" if half == 0 else "p2",
                                   source=str(data), names=names)
    return rows


def warn_if_trained_on(cfg: Config) -> None:
    """Log a warning when evaluation teams are also training teams (e.g. `eval.team_set=gen1ou`):
    allowed, but the figures then measure play on teams the agent has seen."""
    if cfg.eval.team_set == cfg.team_set:
        log.warning("evaluation plays the training teams (eval.team_set=%s)", cfg.eval.team_set)
        return
    try:
        shared = shared_teams(load_team_set(cfg.eval.team_set), load_team_set(cfg.team_set))
    except TeamError:  # an unusable training set is not evaluation's concern
        return
    if shared:
        log.warning("%d evaluation team(s) of %s are also in the training set %s: %s", len(shared),
                    cfg.eval.team_set, cfg.team_set, ", ".join(a for a, _ in shared[:5]))


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
    warn_if_trained_on(cfg)
    summary: dict[str, Any] = {"player": names.get(player, label(player)), "player_spec": player,
                               "team_set": cfg.eval.team_set, "battles_per_opponent": battles,
                               "opponents": {}}
    # One server (or simulator) for every pairing, started only if a pairing has games left.
    with open_backend(cfg, out_dir / "logs") as server:
        for opp in opponents:
            name = names.get(opp, label(opp))
            log.info("evaluate: %s vs %s, %d battles", summary["player"], name, battles)
            rows = play_pairing(cfg, player, opp, battles, pairing_dir(out_dir, name), names,
                                show_progress=show_progress, server=server)
            append_games(out_dir / GAMES, rows)
            summary["opponents"][name] = {"spec": opp, **pairing_summary(rows)}
    atomic.write_json(out_dir / SUMMARY, summary)
    return summary
