"""The results table: one row per game played for evaluation or ratings (Parquet, appendable).

Rows are written from the recorded datasets of the games, so a table can always be rebuilt from
them; appending replaces rows with the same `game_id` (re-running an evaluation never counts a
game twice).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from metamon_sp.atomic import atomic_path
from metamon_sp.players import CHECKPOINT_PREFIX
from metamon_sp.trajectories import Dataset

GAMES = "games.parquet"
SCHEMA = pa.schema([
    ("game_id", pa.string()), ("a", pa.string()), ("b", pa.string()),
    ("a_spec", pa.string()), ("b_spec", pa.string()), ("a_side", pa.string()),
    ("a_team", pa.string()), ("b_team", pa.string()), ("score_a", pa.float32()),
    ("turns", pa.int32()), ("a_decisions", pa.int32()), ("a_invalid", pa.int32()),
    ("b_decisions", pa.int32()), ("b_invalid", pa.int32()), ("truncated", pa.bool_()),
    ("source", pa.string()),
])


def label(spec: str) -> str:
    """A short, readable name for a player: baselines as they are, checkpoints by their folders
    (`runs/bar-1a2b/gen-003/train/checkpoint` → `bar-1a2b/gen-003`, and so its gate's choice,
    `…/gen-003/gate/checkpoint`)."""
    if not spec.startswith(CHECKPOINT_PREFIX):
        return spec
    path = Path(spec[len(CHECKPOINT_PREFIX):]).resolve()
    if path.name == "checkpoint" and path.parent.name == "gate":
        path = path.parent.parent
    parts = [p for p in path.parts if p not in ("checkpoint", "train")]
    return "/".join(parts[-2:])


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def games_from_dataset(data_dir: Path | str, a_spec: str, b_spec: str, a_side: str, source: str,
                       names: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per battle of a dataset recorded with both sides, from `a`'s point of view
    (`a` played as `a_side`)."""
    names = names or {}
    a_name, b_name = names.get(a_spec, label(a_spec)), names.get(b_spec, label(b_spec))
    by_battle: dict[str, dict[str, Any]] = {}
    for t in Dataset(data_dir):
        by_battle.setdefault(t.battle_id, {})[t.side] = t
    rows = []
    for battle_id, sides in sorted(by_battle.items()):
        if len(sides) != 2:
            continue
        a, b = sides[a_side], sides["p2" if a_side == "p1" else "p1"]
        rows.append({
            "game_id": f"{source}/{battle_id}", "a": a_name, "b": b_name, "a_spec": a_spec,
            "b_spec": b_spec, "a_side": a_side, "a_team": a.team, "b_team": b.team,
            "score_a": 1.0 if a.outcome > 0 else 0.0 if a.outcome < 0 else 0.5,
            "turns": a.turns, "a_decisions": a.steps, "a_invalid": a.invalid_actions,
            "b_decisions": b.steps, "b_invalid": b.invalid_actions,
            "truncated": bool(a.truncated or b.truncated), "source": source,
        })
    return rows


def read_games(paths: Iterable[Path | str]) -> list[dict[str, Any]]:
    """Rows of every results table given (files, or folders searched for games.parquet)."""
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(p.rglob(GAMES)) if p.is_dir() else [p] if p.exists() else []
    seen: dict[str, dict[str, Any]] = {}
    for f in files:
        for row in pq.read_table(f).to_pylist():
            seen[row["game_id"]] = row
    return [seen[k] for k in sorted(seen)]


def append_games(path: Path | str, rows: list[dict[str, Any]]) -> Path:
    """Add rows to a results table (atomically), replacing rows with the same game_id."""
    path = Path(path)
    merged = {r["game_id"]: r for r in (read_games([path]) if path.exists() else [])}
    merged.update({r["game_id"]: r for r in rows})
    table = pa.Table.from_pylist([merged[k] for k in sorted(merged)], schema=SCHEMA)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def wilson(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (ties count as half a success)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def pairing_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """wins/losses/ties, win rate with its Wilson interval, valid-action rate, mean turns."""
    played = [r for r in rows if not r["truncated"]]
    wins = sum(r["score_a"] == 1.0 for r in played)
    losses = sum(r["score_a"] == 0.0 for r in played)
    ties = len(played) - wins - losses
    n = len(played)
    lo, hi = wilson(wins + 0.5 * ties, n)
    decisions = sum(r["a_decisions"] for r in rows)
    invalid = sum(r["a_invalid"] for r in rows)
    return {
        "games": n, "wins": wins, "losses": losses, "ties": ties,
        "win_rate": round((wins + 0.5 * ties) / n, 4) if n else None,
        "ci_low": round(lo, 4), "ci_high": round(hi, 4),
        "valid_action_rate": round(1 - invalid / (decisions + invalid), 6) if decisions else None,
        "mean_turns": round(sum(r["turns"] for r in played) / n, 2) if n else None,
        "truncated": len(rows) - n,
    }
