"""What every stage task shares: its cache, its config, its progress artifact."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from prefect import Task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import CachePolicy

from metamon_sp.pipeline import Run, stage_done

HOUR = 3600
RESULTS = ".prefect-results"
"""Each run's task results live in its own folder: delete the run, and its cache goes with it."""
EVAL_STAGES = ("evaluate", "elo")

T = TypeVar("T", bound=Task)


def run_slug(run_dir: str | Path) -> str:
    """An artifact key prefix: lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9]+", "-", Path(run_dir).name.lower()).strip("-")


def in_run(task: T, run_dir: str | Path) -> T:
    """`task`, persisting its result inside the run folder (see RESULTS)."""
    return task.with_options(result_storage=Path(run_dir).resolve() / RESULTS)


@dataclass
class StageCache(CachePolicy):
    """Cache a stage by (run folder, stage, generation[, shard]) and, for evaluation stages, the
    evaluation settings. The run folder's name holds the config hash, so two configs never share
    a result. A record whose stage outputs are gone from disk (a half-deleted run) is dropped
    before the lookup, so the stage runs again: the files are the one source of truth."""

    stage: str = ""

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        run = Run(Path(inputs["run_dir"]).resolve())
        k, instance = int(inputs.get("k", 0)), inputs.get("instance")
        parts = [str(run.dir), self.stage, str(k), "" if instance is None else str(instance)]
        if self.stage in EVAL_STAGES:
            parts.append(inputs["cfg"].eval_hash())
        key = hashlib.sha256("|".join(parts).encode()).hexdigest()
        if not stage_done(run, self.stage, k, instance):
            (run.dir / RESULTS / key).unlink(missing_ok=True)
        return key


class Progress:
    """A progress artifact in the UI, updated at most every `every` percent."""

    def __init__(self, key: str, description: str, every: float = 5.0):
        self.id = create_progress_artifact(0.0, key=key, description=description)
        self.every = every
        self.last = 0.0
        self.last_time = 0.0

    def __call__(self, done: float, total: float) -> None:
        pct = 100.0 * done / max(total, 1)
        if pct - self.last >= self.every or (pct >= 100 and self.last < 100):
            if pct < 100 and time.monotonic() - self.last_time < 1.0:
                return
            update_progress_artifact(self.id, pct)
            self.last, self.last_time = pct, time.monotonic()


def run_of(run_dir: str) -> Run:
    return Run(Path(run_dir))
