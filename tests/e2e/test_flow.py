"""The Prefect flow on the smoke scale, with a real Showdown server and real training."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(900)
ROOT = Path(__file__).resolve().parents[2]


def test_python_m_flow_leaves_the_run_folder(tmp_path):
    """`python -m flows.selfplay generations=1 scale=smoke run_name=bar runs_dir=DIR`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    proc = subprocess.run([sys.executable, "-m", "flows.selfplay", "generations=1", "scale=smoke",
                           "run_name=bar", f"runs_dir={tmp_path}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=850)
    assert proc.returncode == 0, proc.stderr[-4000:]
    [run_dir] = [p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert run_dir.name.startswith("bar-")
    for k in range(2):
        assert (run_dir / f"gen-{k:03d}" / "train" / "checkpoint" / "model.safetensors").exists()
        assert (run_dir / f"gen-{k:03d}" / "ratings.md").exists()
    assert (run_dir / "config.json").exists() and "| player | Elo |" in proc.stdout
    assert "final: gen 1 Elo" in proc.stdout and "Traceback" not in proc.stderr
    assert f"report: {run_dir / 'report' / 'report.md'}" in proc.stdout


@pytest.fixture(scope="module")
def prefect_api():
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        # Dask workers are other processes: give them the harness's API by environment.
        old = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value()
        yield PREFECT_API_URL.value()
        if old is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = old


def _task_states(flow_run_id) -> dict[str, list[str]]:
    """Task name → state names, over a flow run and its subflows."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    async def fetch():
        async with get_client() as client:
            subflows = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])))
            ids = [flow_run_id] + [f.id for f in subflows]
            from prefect.client.schemas.filters import FlowRunFilterId
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
            out: dict[str, list[str]] = {}
            for t in runs:
                if t.state and t.state.state_details.child_flow_run_id:
                    continue  # the placeholder of a subflow, not a task
                out.setdefault(t.name.split("-", 1)[0] if t.name.startswith("collect-gen")
                               else t.name.rsplit("-", 1)[0], []).append(t.state_name)
            return out

    import asyncio

    return asyncio.run(fetch())


def test_interrupted_run_resumes_without_repeating_finished_tasks(prefect_api, tmp_path,
                                                                  monkeypatch):
    from flows.selfplay import selfplay
    from metamon_sp import pipeline

    overrides = ["scale=smoke", f"runs_dir={tmp_path}", "eval.opponents=[random]"]
    calls = {"collect": 0, "train": 0}
    real_collect, real_train = pipeline.collect_shard, pipeline.train_generation

    def counting_collect(*a, **kw):
        calls["collect"] += 1
        return real_collect(*a, **kw)

    def interrupted_train(*a, **kw):
        calls["train"] += 1
        if calls["train"] == 1:
            raise RuntimeError("simulated interruption in the middle of generation 1")
        return real_train(*a, **kw)

    monkeypatch.setattr(pipeline, "collect_shard", counting_collect)
    monkeypatch.setattr(pipeline, "train_generation", interrupted_train)

    first = selfplay(generations=1, overrides=overrides, run_name="resume", return_state=True)
    assert first.is_failed()
    assert calls == {"collect": 1, "train": 1}
    second = selfplay(generations=1, overrides=overrides, run_name="resume", return_state=True)
    assert second.is_completed(), second
    assert calls == {"collect": 1, "train": 2}  # collection was not repeated; training resumed
    states = _task_states(second.state_details.flow_run_id)
    for stage in ("gen0", "prepare", "collect", "finish", "filter"):
        seen = [s for name, ss in states.items() if name.startswith(stage) for s in ss]
        assert seen and set(seen) == {"Cached"}, (stage, states)
    assert set(states["train"]) == {"Completed"}
    run_dir = next(p for p in tmp_path.iterdir() if p.name.startswith("resume-"))
    assert (run_dir / "gen-001" / "train" / "checkpoint" / "checkpoint.json").exists()


def _task_names(state, prefix: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterId,
                                                FlowRunFilterParentFlowRunId)

    async def fetch():
        async with get_client() as client:
            root = state.state_details.flow_run_id
            subflows = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[root])))
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[root] + [f.id for f in subflows])))
            return [t.name for t in runs if t.name.startswith(prefix)]

    import asyncio

    return asyncio.run(fetch())


def _states_of(state) -> dict[str, set[str]]:
    return {name: set(ss) for name, ss in _task_states(state.state_details.flow_run_id).items()}


def test_the_run_folder_is_the_one_source_of_truth(prefect_api, tmp_path):
    """More evaluation games re-evaluate in place; a half-deleted run redoes what is gone; a
    deleted run runs afresh (Prefect's cache lives in the run folder and never outlives it)."""
    from flows.selfplay import selfplay

    base = dict(generations=1, scale="smoke", run_name="truth", runs_dir=str(tmp_path),
                overrides=["eval.opponents=[random]", "eval.battles=4", "elo.games_per_pair=0"],
                return_state=True)
    more_games = ["eval.opponents=[random]", "eval.battles=8", "elo.games_per_pair=0"]
    first = selfplay(**base)
    assert first.is_completed(), first
    run_dir = Path(first.result()["run_dir"])
    ckpt = run_dir / "gen-001" / "train" / "checkpoint" / "model.safetensors"
    trained_at = ckpt.stat().st_mtime_ns

    more = selfplay(**{**base, "overrides": more_games})
    assert more.is_completed() and Path(more.result()["run_dir"]) == run_dir
    states = _states_of(more)
    assert states["train"] == {"Cached"} and states["evaluate"] == {"Completed"}
    assert ckpt.stat().st_mtime_ns == trained_at  # not retrained
    summary = json.loads((run_dir / "gen-001" / "eval" / "summary.json").read_text())
    assert summary["opponents"]["random"]["games"] == 8 and summary["eval"]["battles"] == 8
    assert "8 battles per opponent" in (run_dir / "report" / "report.md").read_text()

    shutil.rmtree(run_dir / "gen-001" / "eval")  # half-deleted: evaluation of gen 1 is gone
    again = selfplay(**{**base, "overrides": more_games})
    assert again.is_completed(), again
    states = _states_of(again)
    assert states["train"] == {"Cached"} and "Completed" in states["evaluate"]
    assert (run_dir / "gen-001" / "eval" / "summary.json").exists()

    shutil.rmtree(run_dir)  # deleted: a clean run, nothing "Cached" pointing at missing files
    fresh = selfplay(**base)
    assert fresh.is_completed(), fresh
    states = _states_of(fresh)
    assert all(s == {"Completed"} for s in states.values()), states
    assert ckpt.exists()


def test_sigkill_of_a_flow_leaves_no_showdown_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    proc = subprocess.Popen([sys.executable, "-m", "flows.selfplay", "generations=1",
                             "scale=smoke", f"runs_dir={tmp_path}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (pids := list(tmp_path.glob("*/gen-000/**/*.pid"))):
            assert proc.poll() is None and time.monotonic() < deadline, "no server started"
            time.sleep(0.2)
        server = int(pids[0].read_text())
        assert _alive(server)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the flow's whole process group, no clean-up
        proc.wait()
    deadline = time.monotonic() + 15
    while _alive(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(server), f"Showdown (pid {server}) outlived the flow that started it"


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_dask_local_cluster_runs_collection_shards(prefect_api, tmp_path):
    from flows.selfplay import selfplay

    state = selfplay(generations=1, run_name="dask", return_state=True,
                     overrides=["scale=smoke", f"runs_dir={tmp_path}", "runner=dask",
                                "collect.parallel_instances=2", "collect.battles=8",
                                "eval.opponents=[random]"])
    assert state.is_completed(), state
    run_dir = Path(state.result()["run_dir"])
    # Generation 0's matchups, the evaluation pairings and the tournament went through the
    # runner as tasks; each stage after them found its games written.
    states = _states_of(state)
    assert states["gen0-checkpoint"] == {"Completed"} and len(_task_names(state, "gen0-")) >= 5
    pairings = _task_names(state, "pairing-")
    assert {name.split("/", 1)[1] for name in pairings} >= {
        "gen-000-vs-random", "gen-001-vs-random", f"gen-001-vs-{run_dir.name}/gen-000"}
    summary = json.loads((run_dir / "gen-001" / "eval" / "summary.json").read_text())
    assert summary["opponents"]["random"]["games"] == 6
    collect = run_dir / "gen-001" / "collect"
    assert {p.name.split("-")[0] for p in collect.glob("*.parquet")} == {"i00", "i01"}
    assert json.loads((collect / "manifest.json").read_text())["battles"] == 8
    summary = json.loads((collect / "collect_summary.json").read_text())
    assert summary["invalid_actions"] == 0 and len(summary["instances"]) == 2
