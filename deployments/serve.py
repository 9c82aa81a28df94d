"""Serve the `selfplay/gen1`, `study/damping` and `study/reward` deployments, optionally with a
local Prefect server first.

    python -m deployments.serve            # serve against $PREFECT_API_URL (or the active profile)
    python -m deployments.serve --local    # start a Prefect server on 127.0.0.1 too (make serve)

With --local, the Prefect profile `metamon-sp` (PREFECT_API_URL of this server) is written and
made active while it runs, so from any other shell:

    prefect deployment run selfplay/gen1 --param generations=5
    prefect deployment run selfplay/gen1 --param generations=1 --param scale=smoke --watch
    prefect deployment run study/damping --param seeds=3 --param generations=3

On exit the profile that was active before is active again. The UI is at the server's address
(http://127.0.0.1:4200 by default): flow runs, each generation's subflow, tasks with their
retries and logs, the per-generation artifacts, and a run form with the typed parameters. The
deployment runs at most `--max-runs` flow runs at once (default 1: a run needs the whole machine);
more wait in the queue.
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
STUDIES = {
    "damping": "Does dynamic damping beat the undamped control? Both arms x seeds from one "
               "generation 0, rated on one scale, a verdict over seeds.",
    "reward": "default_shaped vs binary vs aggressive_shaped: strength and behaviour probes, "
              "arms x seeds from one generation 0, a verdict over seeds.",
}
PROFILE = "metamon-sp"


def start_local_server(port: int, home: Path) -> subprocess.Popen:
    """A Prefect server bound to 127.0.0.1, in its own process group."""
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "server.log", "a")
    # The UI finds the API from these settings, not from --port: without them a server on
    # another port serves a UI that calls 127.0.0.1:4200 and shows nothing.
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
           "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api"}
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


def activate_profile(url: str) -> str | None:
    """Write the `metamon-sp` profile (PREFECT_API_URL=url) and make it active, so `prefect`
    in any other shell talks to this server; return the profile that was active before."""
    from prefect.settings import PREFECT_API_URL
    from prefect.settings.profiles import load_profiles, save_profiles

    profiles = load_profiles()
    previous = profiles.active_name
    profiles.update_profile(PROFILE, {PREFECT_API_URL: url})
    profiles.set_active(PROFILE)
    save_profiles(profiles)
    return previous


def restore_profile(previous: str | None) -> None:
    """Make `previous` active again, unless the user has switched profiles meanwhile."""
    from prefect.settings.profiles import load_profiles, save_profiles

    profiles = load_profiles()
    if profiles.active_name == PROFILE and previous and previous != PROFILE \
            and previous in profiles.names:
        profiles.set_active(previous)
        save_profiles(profiles)


def serve(runs_dir: Path, max_runs: int) -> None:
    from prefect import serve as serve_all
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    from flows.selfplay import selfplay
    from flows.study import study

    limit = ConcurrencyLimitConfig(limit=max_runs,
                                   collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    runs = str(runs_dir.resolve())
    deployments = [selfplay.to_deployment(
        name=DEPLOYMENT,
        description="Iterative self-play for Gen 1 OU: generation 0, then collect → filter → "
                    "train → evaluate → elo per generation.",
        tags=["gen1ou", "selfplay"], parameters={"generations": 5, "runs_dir": runs},
        concurrency_limit=limit)]
    for name, question in STUDIES.items():
        deployments.append(study.to_deployment(
            name=name, description=question, tags=["gen1ou", "study"],
            parameters={"study": name, "seeds": 3, "generations": 3, "runs_dir": runs},
            concurrency_limit=limit))
    serve_all(*deployments)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--local", action="store_true", help="start a local Prefect server first")
    ap.add_argument("--port", type=int, default=4200)
    ap.add_argument("--home", type=Path, default=Path("runs/.prefect"),
                    help="PREFECT_HOME of the local server (its database and logs)")
    ap.add_argument("--runs-dir", type=Path, default=Path("runs"),
                    help="where the deployment's runs write their folders (the runs_dir default)")
    ap.add_argument("--max-runs", type=int, default=1, help="flow runs at once; more wait")
    args = ap.parse_args()
    # Ctrl-C stops us (and restores the profile) even where a shell started us ignoring SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "1")  # pick up runs within a second
    server, previous = None, None
    if args.local:
        server = start_local_server(args.port, args.home.resolve())
        url = f"http://127.0.0.1:{args.port}/api"
        os.environ["PREFECT_API_URL"] = url
        previous = activate_profile(url)
        print(f"Prefect UI: http://127.0.0.1:{args.port}\n"
              f"Prefect profile '{PROFILE}' is active (PREFECT_API_URL={url}): `prefect` commands "
              f"in any shell use this server until this process stops.", flush=True)
    try:
        serve(args.runs_dir, args.max_runs)
    finally:
        if args.local:
            restore_profile(previous)
        if server is not None:
            stop(server)


if __name__ == "__main__":
    main()
