"""One writer per run folder: a run holds `<run folder>/.lock` while it writes there.

The lock is an `flock` on an open file, so the kernel drops it when its holder exits, however it
exits (a SIGKILL or an OOM leaves no stale lock behind). The file names the holder, so the error
a second writer gets says who to wait for.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK = ".lock"


class RunBusyError(RuntimeError):
    """Another process is writing this run folder."""


@contextmanager
def run_lock(run_dir: Path | str, owner: str = "", wait_s: float = 0.0) -> Iterator[None]:
    """Hold `run_dir`'s lock for the block; wait up to `wait_s` for another holder, then fail
    with a message that names the holder and what to do."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    f = open(run_dir / LOCK, "a+")
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    f.seek(0)
                    holder = f.read().strip() or "unknown"
                    raise RunBusyError(
                        f"the run folder {run_dir} is being written by another run ({holder}). "
                        f"Wait for it to finish or cancel it (`prefect flow-run cancel <id>`, or "
                        f"stop that process); two runs of one config would overwrite each other."
                    ) from None
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "owner": owner,
                            "since": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)
    finally:
        f.close()
