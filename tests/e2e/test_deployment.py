"""The user's contract, run as the README writes it, in a clean environment (a new HOME, no
PREFECT_* variables): `make serve` in one shell, the README's `prefect deployment run ...` in
another, and the run completes."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from metamon_sp.showdown.install import cache_root
from metamon_sp.showdown.server import free_port

pytestmark = pytest.mark.timeout(900)
ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def readme_command(pattern: str) -> str:
    """The README's own command line (in a ```bash block) matching `pattern`."""
    lines = [ln.split("  #")[0].strip() for ln in README.read_text().splitlines()]
    found = [ln for ln in lines if re.search(pattern, ln)]
    assert found, f"the README has no command matching {pattern!r}"
    return found[0]


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HOME"))}
    env.update(HOME=str(home), METAMON_SP_CACHE=str(cache_root()))  # Showdown: installed once
    return env


def active_profile(home: Path) -> str | None:
    path = home / ".prefect" / "profiles.toml"
    if not path.exists():
        return None
    match = re.search(r'^active = "([^"]+)"', path.read_text(), re.M)
    return match.group(1) if match else None


def test_readme_two_shell_deployment_flow(tmp_path):
    home, runs = tmp_path / "home", tmp_path / "runs"
    home.mkdir()
    env = clean_env(home)
    port = free_port()
    serve_cmd = readme_command(r"^make serve")
    assert serve_cmd == "make serve"
    log = open(tmp_path / "serve.log", "w")
    # Shell 1, as written, on a free port and with the runs under tmp_path.
    served = subprocess.Popen(
        ["make", "serve", f"ARGS=--port {port} --runs-dir {runs} --home {tmp_path / 'server'}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    run_cmd = readme_command(r"prefect deployment run selfplay/gen1 .*scale=smoke")
    try:
        deadline = time.monotonic() + 180
        while subprocess.run([str(ROOT / ".venv/bin/prefect"), "deployment", "inspect",
                              "selfplay/gen1"], cwd=ROOT, env=env,
                             capture_output=True).returncode != 0:
            assert served.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the deployment was not served in time"
            time.sleep(1)
        assert active_profile(home) == "metamon-sp"
        # The UI calls the API of this server (not the default port 4200).
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui-settings", timeout=10) as r:
            assert json.loads(r.read())["api_url"] == f"http://127.0.0.1:{port}/api"
        # The UI's run form: typed parameters, the config groups as choices.
        inspect = subprocess.run(
            [str(ROOT / ".venv/bin/python"), "-c",
             "import asyncio, json\nfrom prefect.client.orchestration import get_client\n"
             "async def main():\n    async with get_client() as c:\n"
             "        d = await c.read_deployment_by_name('selfplay/gen1')\n"
             "        print(json.dumps({'schema': d.parameter_openapi_schema, "
             "'limit': d.global_concurrency_limit.limit if d.global_concurrency_limit else None,"
             " 'parameters': d.parameters}))\n"
             "asyncio.run(main())"], cwd=ROOT, env=env, capture_output=True, text=True)
        assert inspect.returncode == 0, inspect.stderr[-2000:]
        doc = json.loads(inspect.stdout.strip().splitlines()[-1])
        props = doc["schema"]["properties"]
        for name in ("generations", "scale", "experiment", "reward", "damping", "model", "seed",
                     "run_name", "overrides"):
            assert name in props, name
        assert json.dumps(props["scale"]).count("smoke") and json.dumps(props["reward"]).count(
            "binary") and "description" in json.dumps(props["scale"])
        assert doc["limit"] == 1 and doc["parameters"]["runs_dir"] == str(runs)
        for name in ("study/damping", "study/reward"):
            assert subprocess.run([str(ROOT / ".venv/bin/prefect"), "deployment", "inspect", name],
                                  cwd=ROOT, env=env, capture_output=True).returncode == 0, name

        # Shell 2: exactly the README's command.
        proc = subprocess.run(shlex.split(run_cmd), cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=700)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-3000:] + (tmp_path / "serve.log").read_text()[-3000:]
        assert "Completed" in out and "Traceback" not in out and "not found" not in out
        [run_dir] = [p for p in runs.iterdir() if p.is_dir() and p.name.startswith("selfplay-")]
        assert (run_dir / "gen-001" / "train" / "checkpoint" / "checkpoint.json").exists()
        assert "database is locked" not in (tmp_path / "serve.log").read_text()

        # The study deployments, served beside it: the README's study command, on the smoke
        # scale with the fewest games (the full-size study is docs/studies/damping.md).
        study_cmd = readme_command(r"prefect deployment run study/damping")
        assert "--param seeds=3" in study_cmd and "--param generations=3" in study_cmd
        proc = subprocess.run(
            [*shlex.split(study_cmd.replace("seeds=3", "seeds=2").replace("generations=3",
                                                                          "generations=1")),
             "--param", "scale=smoke", "--param",
             'overrides=["study.cross_games_per_pair=0", "elo.games_per_pair=0", "eval.battles=2"]',
             "--watch"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=700)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-3000:] + (tmp_path / "serve.log").read_text()[-3000:]
        assert "Completed" in out and "Traceback" not in out
        [study] = runs.glob("study-damping-*")
        verdict = json.loads((study / "verdict.json").read_text())
        assert [c["arms"] for c in verdict["comparisons"]] == [["control", "damped"]]
        assert {a: v["n"] for a, v in verdict["arms"].items()} == {"control": 2, "damped": 2}
    finally:
        os.killpg(served.pid, signal.SIGTERM)
        try:
            served.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(served.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while active_profile(home) == "metamon-sp" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert active_profile(home) != "metamon-sp"  # the user's previous profile is back
