"""The Prefect flow on the smoke scale, with a real Showdown server and real training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(900)
ROOT = Path(__file__).resolve().parents[2]


def test_python_m_flow_leaves_the_run_folder(tmp_path):
    """`python -m flows.selfplay generations=2 scale=smoke run_name=bar runs_dir=DIR`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    proc = subprocess.run([sys.executable, "-m", "flows.selfplay", "generations=2", "scale=smoke",
                           "run_name=bar", f"runs_dir={tmp_path}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=850)
    assert proc.returncode == 0, proc.stderr[-4000:]
    [run_dir] = [p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert run_dir.name.startswith("bar-")
    for k in range(3):
        assert (run_dir / f"gen-{k:03d}" / "train" / "checkpoint" / "model.safetensors").exists()
        assert (run_dir / f"gen-{k:03d}" / "ratings.md").exists()
    assert (run_dir / "config.json").exists() and "| player | Elo |" in proc.stdout
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


def test_dask_local_cluster_runs_collection_shards(prefect_api, tmp_path):
    from flows.selfplay import selfplay

    result = selfplay(generations=1, run_name="dask",
                      overrides=["scale=smoke", f"runs_dir={tmp_path}", "runner=dask",
                                 "collect.parallel_instances=2", "collect.battles=8",
                                 "eval.opponents=[random]"])
    run_dir = Path(result["run_dir"])
    collect = run_dir / "gen-001" / "collect"
    assert {p.name.split("-")[0] for p in collect.glob("*.parquet")} == {"i00", "i01"}
    assert json.loads((collect / "manifest.json").read_text())["battles"] == 8
    summary = json.loads((collect / "collect_summary.json").read_text())
    assert summary["invalid_actions"] == 0 and len(summary["instances"]) == 2
