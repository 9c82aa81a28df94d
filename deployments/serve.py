"""Serve the `selfplay/gen1` deployment, optionally with a local Prefect server first.

    python -m deployments.serve            # serve against $PREFECT_API_URL
    python -m deployments.serve --local    # start a Prefect server on 127.0.0.1 too (make serve)

then, from another shell:

    prefect deployment run selfplay/gen1 --param generations=5
    prefect deployment run selfplay/gen1 --param generations=2 --param 'overrides=["scale=smoke"]'

The UI is at the server's address (http://127.0.0.1:4200 by default): flow runs, each
generation's subflow, tasks with their retries and logs, and the per-generation artifacts.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DEPLOYMENT = "gen1"


def start_local_server(port: int, home: Path) -> subprocess.Popen:
    """A Prefect server bound to 127.0.0.1, in its own process group."""
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "server.log", "a")
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    beside = Path(sys.executable).with_name("prefect")  # the venv's CLI, whatever PATH says
    prefect = str(beside) if beside.exists() else "prefect"
    proc = subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api/health"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the Prefect server exited; see {home / 'server.log'}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    stop(proc)
    sys.exit(f"the Prefect server did not answer on {url}; see {home / 'server.log'}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def serve() -> None:
    from flows.selfplay import selfplay

    selfplay.serve(
        name=DEPLOYMENT,
        description="Iterative self-play for Gen 1 OU: generation 0, then collect → filter → "
                    "train → evaluate → elo per generation.",
        tags=["gen1ou", "selfplay"],
        parameters={"generations": 5, "overrides": []},
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--local", action="store_true", help="start a local Prefect server first")
    ap.add_argument("--port", type=int, default=4200)
    ap.add_argument("--home", type=Path, default=Path("runs/.prefect"),
                    help="PREFECT_HOME of the local server (its database and logs)")
    args = ap.parse_args()
    os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "1")  # pick up runs within a second
    server = None
    if args.local:
        server = start_local_server(args.port, args.home.resolve())
        os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{args.port}/api"
        print(f"Prefect UI: http://127.0.0.1:{args.port}", flush=True)
    try:
        serve()
    finally:
        if server is not None:
            stop(server)


if __name__ == "__main__":
    main()
