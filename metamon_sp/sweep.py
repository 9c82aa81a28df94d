"""The record of a Hydra multirun: one row per run in `<sweep folder>/sweep.{parquet,csv}`.

Each job writes `<sweep folder>/<job>/result.json` (its overrides, run folder, config hash,
status, wall time, final Elo with its interval, win rates) and then rebuilds the table from every
job's file, under a lock, so the table is whole after the last job whichever launcher ran them,
and a failed job still has its row.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from metamon_sp import atomic
from metamon_sp.pipeline import Run, final_result

RESULT, TABLE = "result.json", "sweep"


def record_job(sweep_dir: Path | str, job: int | str, overrides: Sequence[str],
               run_dir: Path | str | None, seconds: float, status: str) -> pd.DataFrame:
    """Write this job's result and rebuild the sweep's table; return the table."""
    sweep_dir = Path(sweep_dir)
    row: dict[str, Any] = {"job": int(job), "status": status, "wall_s": round(seconds, 1),
                           "overrides": " ".join(overrides)}
    row.update({f"param/{k}": v for k, _, v in (o.partition("=") for o in overrides)})
    if run_dir is not None:
        run = Run(Path(run_dir))
        row.update(run_dir=str(run.dir), config_hash=run.config.get("config_hash"))
        if (run.dir / "ratings.json").exists():
            row.update(final_result(run))
    atomic.write_json(sweep_dir / str(job) / RESULT, row)
    return rebuild_table(sweep_dir)


def rebuild_table(sweep_dir: Path | str) -> pd.DataFrame:
    sweep_dir = Path(sweep_dir)
    with open(sweep_dir / ".table.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel jobs finish at the same time
        rows = [json.loads(p.read_text()) for p in sweep_dir.glob(f"*/{RESULT}")]
        table = pd.DataFrame(rows)
        if not table.empty:
            table = table.sort_values("job").reset_index(drop=True)
        with atomic.atomic_path(sweep_dir / f"{TABLE}.parquet") as tmp:
            table.to_parquet(tmp, index=False)
        with atomic.atomic_path(sweep_dir / f"{TABLE}.csv") as tmp:
            table.to_csv(tmp, index=False)
    return table
