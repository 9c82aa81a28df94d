"""The user's contract: a local Prefect server, the served `selfplay/gen1` deployment, and
`prefect deployment run selfplay/gen1 --param generations=2 --param 'overrides=["scale=smoke"]'`
completing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deployments.serve import start_local_server, stop
from metamon_sp.showdown.server import free_port

pytestmark = pytest.mark.timeout(1200)
ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def test_served_deployment_runs_to_completion(tmp_path):
    port = free_port()
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
               PREFECT_RUNNER_POLL_FREQUENCY="1", PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    server = start_local_server(port, home)
    log = open(tmp_path / "serve.log", "w")
    served = subprocess.Popen([sys.executable, "-m", "deployments.serve"], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while subprocess.run([PREFECT, "deployment", "inspect", "selfplay/gen1"], env=env,
                             capture_output=True).returncode != 0:
            assert served.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the deployment was not served in time"
            time.sleep(1)
        runs_dir = tmp_path / "runs"
        proc = subprocess.run(
            [PREFECT, "deployment", "run", "selfplay/gen1", "--param", "generations=2",
             "--param", json.dumps(["scale=smoke", f"runs_dir={runs_dir}"]).join(
                 ["overrides=", ""]), "--watch", "--watch-timeout", "1000"],
            env=env, capture_output=True, text=True, timeout=1100)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + \
            (tmp_path / "serve.log").read_text()[-3000:]
        assert "Completed" in proc.stdout
        [run_dir] = [p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
        assert (run_dir / "gen-002" / "train" / "checkpoint" / "checkpoint.json").exists()
    finally:
        stop(served)
        stop(server)
