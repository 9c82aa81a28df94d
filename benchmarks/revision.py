"""An older revision of this repository as committed (`git archive`, nothing of the working
tree), for the benchmarks that measure today's code against it."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def export_revision(rev: str, dest: Path, option: str) -> Path:
    """The files of `rev` under `dest` (created); exits naming `option` and `rev` if git cannot
    archive it."""
    proc = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev],
                          capture_output=True)
    if proc.returncode != 0:
        sys.exit(f"{option} {rev}: git cannot archive that revision of {ROOT} "
                 f"({proc.stderr.decode().strip()}); give a commit of this repository")
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest
