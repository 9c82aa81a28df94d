"""What every stage task shares: its cache key, its config, its progress artifact."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any, Callable

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from metamon_sp.pipeline import Run

HOUR = 3600


def run_slug(run_dir: str | Path) -> str:
    """An artifact key prefix: lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9]+", "-", Path(run_dir).name.lower()).strip("-")


def stage_cache_key(stage: str) -> Callable[[Any, dict[str, Any]], str]:
    """Cache by (run folder, generation, stage[, shard]): the run folder's name holds the config
    hash, so two configs never share a cached result."""

    def key(_context: Any, params: dict[str, Any]) -> str:
        parts = [str(Path(params["run_dir"]).resolve()), stage, str(params.get("k", "")),
                 str(params.get("instance", ""))]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

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
