"""The gate: generation k chosen by match play against generation k−1 (AlphaGo Zero's evaluator).

A fine-tune can overshoot: one generation in several came out weaker than its parent by more than
its interval (docs/strength.md). Each candidate, the end of generation k's training or a
checkpoint part-way through it (`gate.candidates`), of each of the `gate.learners` fine-tunes,
plays generation k−1 `gate.battles` times, every candidate on the same team pairs and battle
seeds. The best becomes generation k if it wins at least `gate.min_win_rate`; else generation
k−1's weights carry on as generation k (its data still joins the replay window). The games use
`gate.team_set`, by default the selection split (`gen1ou_select`): teams collection never
samples, so the gate sees how a candidate plays teams it has not trained on, and that
evaluation never plays, so the figures a run is judged by take no part in the choice (train /
select / evaluate). The games are kept apart from the rating games.

    gen-NNN/gate/games/<candidate>/   the gate's games (trajectories of both sides)
    gen-NNN/gate/gate.parquet         their results (not `games.parquet`: never rated)
    gen-NNN/gate/checkpoint/          generation N as chosen
    gen-NNN/gate/gate.json            each candidate's record and the choice
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from metamon_sp import atomic
from metamon_sp.checkpoint import load_checkpoint, save_checkpoint
from metamon_sp.collect import open_backend
from metamon_sp.config import Config, GateConfig
from metamon_sp.evaluate import play_pairing
from metamon_sp.players import CHECKPOINT_PREFIX
from metamon_sp.results import append_games, pairing_summary

log = logging.getLogger(__name__)

PARENT = "parent"
GATE_DIR, RECORD, RESULTS = "gate", "gate.json", "gate.parquet"


def choose(records: dict[str, dict[str, Any]], min_win_rate: float) -> str:
    """The candidate with the highest win rate against the parent (on a tie, the later in
    `records`, which runs in training order: the one trained longest, or the later learner), or
    PARENT if that one wins less than `min_win_rate`."""
    best, best_rate = PARENT, -1.0
    for name, rec in records.items():
        rate = rec["win_rate"] if rec["win_rate"] is not None else -1.0
        if rate >= best_rate:
            best, best_rate = name, rate
    return best if best_rate >= min_win_rate else PARENT


def run_gate(cfg: Config, candidates: dict[str, Path], parent: Path, out_dir: Path | str,
             generation: int, show_progress: bool = False) -> dict[str, Any]:
    """Play each of `candidates` (name → checkpoint, in training order) against `parent`, write
    the chosen weights to `out_dir/checkpoint` and the record to `out_dir/gate.json`; return it.
    Re-running resumes the games already played."""
    out_dir = Path(out_dir)
    gc = cfg.gate
    # Pairings on the selection split: the evaluation split stays for the figures the run is
    # judged by. (The pairings' config is not itself gated, so it may name that split in eval.)
    gcfg = replace(cfg, eval=replace(cfg.eval, team_set=gc.team_set), gate=GateConfig())
    parent_spec = f"{CHECKPOINT_PREFIX}{parent}"
    records: dict[str, dict[str, Any]] = {}
    with open_backend(gcfg, out_dir / "logs") as server:
        for name, path in candidates.items():
            spec = f"{CHECKPOINT_PREFIX}{path}"
            names = {spec: f"gen-{generation:03d}@{name}", parent_spec: f"gen-{generation - 1:03d}"}
            rows = play_pairing(gcfg, spec, parent_spec, gc.battles, out_dir / "games" / name,
                                names, show_progress=show_progress, server=server,
                                pair_key="gate")
            append_games(out_dir / RESULTS, rows)
            records[name] = {"checkpoint": str(path), **pairing_summary(rows)}
            log.info("gate: generation %d's %s won %s of %d games against generation %d",
                     generation, name, records[name]["win_rate"], records[name]["games"],
                     generation - 1)
    choice = choose(records, gc.min_win_rate)
    source = parent if choice == PARENT else candidates[choice]
    model, meta = load_checkpoint(source)
    rate = records[choice]["win_rate"] if choice != PARENT else None
    save_checkpoint(out_dir / "checkpoint", model, replace(
        meta, generation=generation, parent=str(Path(parent).resolve()), created_at="",
        metrics={**meta.metrics, "gate/choice": choice, "gate/win_rate": rate}))
    record = {"generation": generation, "parent": str(parent), "team_set": gc.team_set,
              "battles": gc.battles, "min_win_rate": gc.min_win_rate, "lineage": gc.lineage,
              "choice": choice, "source": str(source), "candidates": records}
    atomic.write_json(out_dir / RECORD, record)
    return record
