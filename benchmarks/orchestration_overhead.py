"""Orchestration overhead of the Prefect flow: per generation, the subflow's wall time and the
share of it not spent inside the stage tasks (Prefect's own bookkeeping, task/flow start-up,
artifact and result writes).

    python benchmarks/orchestration_overhead.py [key=value ...]     (default: the laptop run)

Runs the flow under a temporary Prefect server, then reads every task run back from the API.
Collection shards run in parallel, so a generation's task time counts the longest shard.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time


async def _task_runs(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterId,
                                                FlowRunFilterParentFlowRunId)

    async with get_client() as client:
        subflows = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])))
        out = {}
        for sub in sorted(subflows, key=lambda f: f.name):
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[sub.id])))
            out[sub.name] = (sub, tasks)
        return out


def main() -> None:
    from prefect.testing.utilities import prefect_test_harness

    from flows.selfplay import selfplay

    overrides = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        t0 = time.monotonic()
        state = selfplay(generations=2, overrides=[f"runs_dir={tmp}", *overrides],
                         run_name="overhead", return_state=True)
        total = time.monotonic() - t0
        result = state.result()
        runs = asyncio.run(_task_runs(state.state_details.flow_run_id))
    print("| generation | wall s | in tasks s | orchestration s | orchestration share |")
    print("|---|---|---|---|---|")
    for name, (sub, tasks) in runs.items():
        wall = sub.total_run_time.total_seconds()
        tasks = [t for t in tasks if not (t.state and t.state.state_details.child_flow_run_id)]
        shards = [t.total_run_time.total_seconds() for t in tasks if t.name.startswith("collect-gen")]
        others = [t.total_run_time.total_seconds() for t in tasks
                  if not t.name.startswith("collect-gen")]
        inside = sum(others) + max(shards, default=0.0)
        print(f"| {name} | {wall:.1f} | {inside:.1f} | {wall - inside:.1f} | "
              f"{100 * (wall - inside) / wall:.2f}% |")
    print(f"\nwhole flow: {total:.1f}s wall (incl. the temporary server's start); "
          f"generation seconds as timed by the flow: "
          f"{ {k: round(v, 1) for k, v in result['generation_seconds'].items()} }")


if __name__ == "__main__":
    main()
