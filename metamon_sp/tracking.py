"""Metrics: always a JSONL file in the run folder; wandb as an optional mirror.

Keys are namespaced (`train/critic_loss`, `damping/kl_coef`, `eval/win_rate/random`) and every
record carries its step. wandb runs offline unless told otherwise and never needs a login.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOGGERS = ("jsonl", "wandb")


def _clean(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class MetricsLogger:
    def __init__(self, path: Path | str, logger: str = "jsonl", run_name: str | None = None,
                 config: dict[str, Any] | None = None, wandb_project: str = "metamon-sp",
                 wandb_mode: str = "offline", truncate_after_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_after_step is not None and self.path.exists():
            self._truncate(truncate_after_step)  # a resumed run replaces what followed its checkpoint
        self._f = open(self.path, "a")
        self._wandb = None
        if logger == "wandb":
            self._wandb = self._start_wandb(run_name, config, wandb_project, wandb_mode)
        elif logger != "jsonl":
            raise ValueError(f"logger={logger!r} is not one of {', '.join(LOGGERS)}")

    def _truncate(self, step: int) -> None:
        from metamon_sp.atomic import write_text

        keep = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        write_text(self.path, "".join(line + "\n" for line in keep))

    def _start_wandb(self, run_name, config, project, mode):
        try:
            import wandb
        except ImportError as e:
            raise RuntimeError("logger=wandb needs the wandb package: pip install 'metamon-sp[wandb]'"
                               ) from e
        os.environ.setdefault("WANDB_SILENT", "true")
        return wandb.init(project=project, name=run_name, config=config, mode=mode,
                          dir=str(self.path.parent))

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
