"""Round robin over a pool of players with a budget of games per pair; games already played
(in any results table given) count towards the budget, so nothing is replayed."""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from metamon_sp.config import Config
from metamon_sp.evaluate import play_pairing
from metamon_sp.collect import open_backend
from metamon_sp.results import GAMES, append_games, label, read_games, slug

log = logging.getLogger(__name__)


def pair_counts(rows: Sequence[dict[str, Any]]) -> Counter[frozenset[str]]:
    return Counter(frozenset((r["a"], r["b"])) for r in rows if not r["truncated"])


def missing_games(cfg: Config, pool: Sequence[str], games_per_pair: int, out_dir: Path | str,
                  known: Sequence[Path | str] = (), names: dict[str, str] | None = None
                  ) -> list[tuple[str, str, int, Path]]:
    """(a, b, games, folder) for every pair of `pool` short of `games_per_pair` (whole mirrored
    team pairs): what `round_robin` will play, and what an orchestrator may play beforehand."""
    out_dir = Path(out_dir)
    names = names or {}
    name = {spec: names.get(spec, label(spec)) for spec in pool}
    have = pair_counts(read_games([*known, out_dir]))
    todo = [(a, b, games_per_pair - have[frozenset((name[a], name[b]))])
            for a, b in itertools.combinations(pool, 2)]
    return [(a, b, m + m % 2, out_dir / f"{slug(name[a])}-vs-{slug(name[b])}")
            for a, b, m in todo if m > 0]


def round_robin(cfg: Config, pool: Sequence[str], games_per_pair: int, out_dir: Path | str,
                known: Sequence[Path | str] = (), names: dict[str, str] | None = None
                ) -> list[dict[str, Any]]:
    """Play whatever each pair of `pool` (player specs) lacks to reach `games_per_pair`;
    return every game between pool members (known ones included)."""
    out_dir = Path(out_dir)
    names = names or {}
    name = {spec: names.get(spec, label(spec)) for spec in pool}
    rows = read_games([*known, out_dir])
    todo = missing_games(cfg, pool, games_per_pair, out_dir, known, names)
    if todo:  # a server only if some pair has games left (fanned-out tasks may have played them)
        with open_backend(cfg, out_dir / "logs") as server:
            for a, b, n, folder in todo:
                log.info("tournament: %s vs %s, %d more games", name[a], name[b], n)
                new = play_pairing(cfg, a, b, n, folder, names, server=server)
                append_games(out_dir / GAMES, new)
                rows += new
    members = set(name.values())
    return [r for r in rows if r["a"] in members and r["b"] in members]
