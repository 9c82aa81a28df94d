"""Filter: keep the trajectories worth training on, optionally with wins and losses balanced.

Drops, in this order of reasons: battles with server errors, truncated (timed-out or unfinished)
battles, trajectories whose invalid orders per decision exceed `filter.max_invalid_rate`, and
battles shorter than `filter.min_turns`. Two passes over the shards keep memory to one shard.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from metamon_sp import atomic
from metamon_sp.config import Config, FilterConfig
from metamon_sp.trajectories import (Dataset, ShardWriter, Trajectory, read_shard,
                                     write_manifest)

log = logging.getLogger(__name__)

REPORT = "filter_report.json"
DROPPED = "filter_dropped.jsonl"


class FilterError(RuntimeError):
    pass


def drop_reason(t: Trajectory, cfg: FilterConfig) -> str | None:
    if cfg.drop_errors and t.errors:
        return "errors"
    if cfg.drop_truncated and t.truncated:
        return "truncated"
    if t.invalid_rate > cfg.max_invalid_rate:
        return "invalid_rate"
    if t.turns < cfg.min_turns:
        return "too_short"
    return None


def _key(t: Trajectory) -> tuple[str, str]:
    return (t.battle_id, t.side)


def filter_datasets(cfg: Config, data_dirs: Sequence[Path | str], out_dir: Path | str
                    ) -> dict[str, Any]:
    """Write the kept trajectories of `data_dirs` to `out_dir`; return the report."""
    out_dir = Path(out_dir)
    if not data_dirs:
        raise FilterError("no input dataset: pass data=DIR (or data=DIR1,DIR2).")
    if (out_dir / "manifest.json").exists():
        raise FilterError(f"out={out_dir} already holds a dataset; choose an empty folder.")
    datasets = [Dataset(d) for d in data_dirs]
    dropped: Counter[str] = Counter()
    dropped_rows: list[dict[str, Any]] = []
    kept: dict[int, list[tuple[str, str]]] = {}
    outcomes: dict[tuple[int, str, str], int] = {}
    n_in = 0
    for i, ds in enumerate(datasets):  # pass 1: decide, remembering only keys
        for t in ds:
            n_in += 1
            reason = drop_reason(t, cfg.filter)
            if reason:
                dropped[reason] += 1
                dropped_rows.append({"data": str(ds.path), "battle_id": t.battle_id,
                                     "side": t.side, "reason": reason})
            else:
                kept.setdefault(i, []).append(_key(t))
                outcomes[(i, *_key(t))] = t.outcome
    balance = _balance(outcomes, cfg.seed) if cfg.filter.balance_outcomes else {}
    for key, reason in balance.items():
        dropped[reason] += 1
        dropped_rows.append({"data": str(datasets[key[0]].path), "battle_id": key[1],
                             "side": key[2], "reason": reason})
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = ShardWriter(out_dir, prefix="f", extra_meta={"filtered_from": [str(d.path) for d in datasets]})
    for i, ds in enumerate(datasets):  # pass 2: copy what is kept, a shard at a time
        keep = {k for k in kept.get(i, []) if (i, *k) not in balance}
        for shard in ds.shards:
            rows = [t for t in read_shard(shard) if _key(t) in keep]
            if rows:
                writer.write(rows)
    manifest = write_manifest(out_dir, meta={
        "filtered_from": [str(d.path) for d in datasets], "filter": asdict(cfg.filter),
        "seed": cfg.seed})
    report = {
        "input_trajectories": n_in,
        "kept_trajectories": manifest["trajectories"],
        "dropped": dict(dropped),
        "output": {k: manifest[k] for k in ("battles", "trajectories", "steps", "wins", "losses",
                                            "ties", "invalid_actions")},
        "filter": asdict(cfg.filter),
        "sources": [str(d.path) for d in datasets],
    }
    atomic.write_json(out_dir / REPORT, report)
    atomic.write_text(out_dir / DROPPED, "".join(json.dumps(r) + "\n" for r in dropped_rows))
    return report


def _balance(outcomes: dict[tuple[int, str, str], int], seed: int) -> dict[tuple, str]:
    """Keys to drop so that wins and losses are equal (seeded, ties untouched)."""
    wins = sorted(k for k, o in outcomes.items() if o > 0)
    losses = sorted(k for k, o in outcomes.items() if o < 0)
    rng = random.Random(seed)
    if len(wins) > len(losses):
        return {k: "balance_wins" for k in rng.sample(wins, len(wins) - len(losses))}
    if len(losses) > len(wins):
        return {k: "balance_losses" for k in rng.sample(losses, len(losses) - len(wins))}
    return {}
