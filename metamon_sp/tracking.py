"""Metrics: always a JSONL file in the run folder; wandb as an optional mirror.

Keys are namespaced (`train/critic_loss`, `damping/kl_coef`, `eval/win_rate/random`) and every
record carries its step. wandb runs offline unless told otherwise and never needs a login. In a
self-play run, wandb sees one run per generation and job (`<run>/gen-NNN`, job_type `train` or
`evaluate`), grouped by the run folder, with its files in `<run folder>/wandb/`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOGGERS = ("jsonl", "wandb")


@dataclass(frozen=True)
class RunInfo:
    """Where a piece of work sits: its wandb name, group and folder."""

    name: str
    """e.g. `selfplay-1a2b3c/gen-003`."""
    group: str | None = None
    """The run folder's name: every generation and job of a run in one group."""
    dir: Path | None = None
    """wandb writes its (offline) files to `<dir>/wandb/`."""

    @property
    def id_prefix(self) -> str:
        return re.sub(r"[^A-Za-z0-9_-]+", "-", self.name).strip("-")


def _clean(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class MetricsLogger:
    def __init__(self, path: Path | str, logger: str = "jsonl", run: RunInfo | None = None,
                 job_type: str = "train", config: dict[str, Any] | None = None,
                 wandb_project: str = "metamon-sp", wandb_mode: str = "offline",
                 truncate_after_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_after_step is not None and self.path.exists():
            self._truncate(truncate_after_step)  # a resumed run replaces what followed its checkpoint
        self._f = open(self.path, "a")
        self._wandb = None
        if logger == "wandb":
            run = run or RunInfo(name=self.path.parent.name, dir=self.path.parent)
            self._wandb = self._start_wandb(run, job_type, config, wandb_project, wandb_mode)
        elif logger != "jsonl":
            raise ValueError(f"logger={logger!r} is not one of {', '.join(LOGGERS)}")

    def _truncate(self, step: int) -> None:
        from metamon_sp.atomic import write_text

        keep = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        write_text(self.path, "".join(line + "\n" for line in keep))

    def _start_wandb(self, run: RunInfo, job_type: str, config, project, mode):
        try:
            import wandb
        except ImportError as e:
            raise RuntimeError("logger=wandb needs the wandb package: pip install 'metamon-sp[wandb]'"
                               ) from e
        os.environ.setdefault("WANDB_SILENT", "true")
        folder = Path(run.dir or self.path.parent)
        folder.mkdir(parents=True, exist_ok=True)
        # One id per (generation, job): a resumed training continues its own wandb run.
        return wandb.init(project=project, name=run.name, group=run.group, job_type=job_type,
                          id=f"{run.id_prefix}-{job_type}", resume="allow", config=config,
                          mode=mode, dir=str(folder), reinit="create_new")

    def log_artifact(self, path: Path | str, name: str, type: str,
                     metadata: dict[str, Any] | None = None) -> None:
        """A folder (a checkpoint) as a wandb artifact; nothing without wandb."""
        if self._wandb is None:
            return
        import wandb

        artifact = wandb.Artifact(re.sub(r"[^A-Za-z0-9_.-]+", "-", name), type=type,
                                  metadata=metadata)
        artifact.add_dir(str(path))
        self._wandb.log_artifact(artifact)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        record = {"step": step, "time": round(time.time(), 3),
                  **{k: _clean(v) for k, v in metrics.items()}}
        self._f.write(json.dumps(record) + "\n")
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in record.items() if k not in ("step", "time")},
                            step=step)

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()
        if self._wandb is not None:
            self._wandb.finish()

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_metrics(path: Path | str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
