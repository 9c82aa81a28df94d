"""Generation 0: heuristic battles (mirror and cross matches), filtered, then the learner from
scratch. Its checkpoint seeds the first self-play generation.

    DIR/data/<p1>-vs-<p2>/   one dataset per matchup
    DIR/filtered/            what the learner trains on
    DIR/train/checkpoint/    the generation-0 checkpoint
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from metamon_sp import atomic
from metamon_sp.collect import collect, open_backend, split_battles
from metamon_sp.config import Config, DampingConfig
from metamon_sp.filter import filter_datasets
from metamon_sp.tracking import RunInfo
from metamon_sp.train import train

log = logging.getLogger(__name__)


def matchups(cfg: Config, out_dir: Path | str) -> list[tuple[Config, Path]]:
    """Each heuristic matchup's collection config and dataset folder."""
    bc = cfg.bootstrap
    out = []
    for (p1, p2), n in zip((m.split(":") for m in bc.matchups),
                           split_battles(bc.battles, len(bc.matchups))):
        mcfg = replace(cfg, collect=replace(cfg.collect, p1=p1, p2=p2, battles=n))
        out.append((mcfg, Path(out_dir) / "data" / f"{p1}-vs-{p2}"))
    return out


def bootstrap(cfg: Config, out_dir: Path | str, show_progress: bool = True,
              on_battles: Callable[[int, int], None] | None = None,
              on_steps: Callable[[int, int], None] | None = None,
              run: RunInfo | None = None) -> Path:
    """Collect heuristic battles, filter them, train generation 0; returns its checkpoint.
    `on_battles(done, total)` and `on_steps(step, steps)` report progress."""
    out_dir = Path(out_dir)
    bc = cfg.bootstrap
    datasets, summaries = [], {}
    done_before = 0
    # One server for every matchup, unless collection fans out over instances of its own; it
    # starts only if a matchup has battles left (an orchestrator may have played them all).
    shared = open_backend(cfg, out_dir / "logs") if cfg.collect.parallel_instances == 1 else None
    with shared or nullcontext() as server:
        for mcfg, data in matchups(cfg, out_dir):
            p1, p2, n = mcfg.collect.p1, mcfg.collect.p2, mcfg.collect.battles
            log.info("bootstrap: %d battles of %s vs %s", n, p1, p2)
            base = done_before
            summaries[f"{p1}-vs-{p2}"] = collect(
                mcfg, data, generation=0, server=server, show_progress=show_progress,
                on_progress=(lambda done, _n, base=base: on_battles(base + done, bc.battles))
                if on_battles else None)
            done_before += n
            datasets.append(data)
    filtered = out_dir / "filtered"
    if not (filtered / "manifest.json").exists():
        filter_datasets(cfg, datasets, filtered)
    # Damping holds a policy near where its training started: from scratch there is nothing to
    # hold on to, and both arms of a damping study must share the same generation 0.
    tc = replace(cfg.train, steps=bc.train_steps or cfg.train.steps)
    ckpt = train(replace(cfg, damping=DampingConfig(), train=tc), [filtered], out_dir / "train",
                 init=None, generation=0, on_progress=on_steps, run=run)
    summary: dict[str, Any] = {"checkpoint": str(ckpt), "collect": summaries}
    atomic.write_json(out_dir / "bootstrap_summary.json", summary)
    return ckpt
