"""Team legality, decided by Showdown's own TeamValidator (one Node process for many teams)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from metamon_sp.showdown.install import ensure_installed

_SCRIPT = Path(__file__).resolve().parent / "validate_teams.js"


def validate_teams(teams: list[str], battle_format: str, timeout_s: float = 120.0
                   ) -> list[list[str]]:
    """For each team (packed or export text), the validator's problems; [] means legal."""
    if not teams:
        return []
    pkg = ensure_installed()
    proc = subprocess.run(
        ["node", str(_SCRIPT), str(pkg)], cwd=pkg, input=json.dumps(
            {"format": battle_format, "teams": teams}),
        capture_output=True, text=True, timeout=timeout_s,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"Showdown's team validator failed (exit {proc.returncode}) for format "
                           f"{battle_format!r}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)
