"""What decides that a stage is done: the run lock, the stage cache (which must never outlive
the stage's files), the sweep table, the bounded policy cache."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from metamon_sp.pipeline import Run, stage_done
from metamon_sp.runlock import RunBusyError, run_lock


def test_a_second_writer_of_a_run_folder_fails_naming_the_first(tmp_path):
    with run_lock(tmp_path, owner="flow run 123"):
        with pytest.raises(RunBusyError, match="flow run 123"):
            with run_lock(tmp_path, owner="another"):
                pass
    with run_lock(tmp_path, owner="after"):  # released at the end of the block
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    code = (f"from metamon_sp.runlock import run_lock\nimport time\n"
            f"with run_lock({str(tmp_path)!r}, owner='doomed'):\n    print('held', flush=True)\n"
            f"    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(RunBusyError, match="doomed"):
        with run_lock(tmp_path):
            pass
    proc.kill()
    proc.wait()
    with run_lock(tmp_path, wait_s=5):
        pass


def test_waiting_for_the_lock_gives_up_after_wait_s(tmp_path):
    with run_lock(tmp_path):
        t0 = time.monotonic()
        with pytest.raises(RunBusyError):
            with run_lock(tmp_path, wait_s=0.5):
                pass
        assert 0.4 < time.monotonic() - t0 < 3


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")


def test_stage_done_follows_the_files(tmp_path):
    run = Run(tmp_path)
    assert not stage_done(run, "train", 1)
    _touch(run.checkpoint(1) / "checkpoint.json")
    assert not stage_done(run, "train", 1)  # the summary is written last
    _touch(run.gen(1) / "train" / "train_summary.json")
    assert stage_done(run, "train", 1)
    assert not stage_done(run, "collect-shard", 1, 0)
    _touch(run.gen(1) / "collect" / "i00-000000.parquet")
    assert stage_done(run, "collect-shard", 1, 0) and not stage_done(run, "collect-shard", 1, 1)
    with pytest.raises(ValueError, match="unknown stage"):
        stage_done(run, "nonsense", 1)


def test_stage_cache_drops_a_record_whose_files_are_gone(tmp_path):
    from metamon_sp.config import load_config
    from tasks.common import RESULTS, StageCache

    run = Run(tmp_path / "run-abc")
    cfg = load_config(["scale=smoke"])
    inputs = {"cfg": cfg, "run_dir": str(run.dir), "k": 1}
    policy = StageCache(stage="train")
    key = policy.compute_key(None, inputs, {})
    assert key == policy.compute_key(None, dict(inputs), {})  # stable
    assert key != StageCache(stage="filter").compute_key(None, inputs, {})
    assert key != policy.compute_key(None, {**inputs, "k": 2}, {})
    record = run.dir / RESULTS / key
    _touch(record)
    _touch(run.checkpoint(1) / "checkpoint.json")
    _touch(run.gen(1) / "train" / "train_summary.json")
    policy.compute_key(None, inputs, {})
    assert record.exists()  # the files are there: the record stands
    (run.checkpoint(1) / "checkpoint.json").unlink()
    policy.compute_key(None, inputs, {})
    assert not record.exists()  # they are gone: so is the record, and the stage runs again


def test_evaluation_stages_are_keyed_by_the_evaluation_settings(tmp_path):
    from metamon_sp.config import load_config
    from tasks.common import StageCache

    inputs = {"run_dir": str(tmp_path), "k": 1}
    a, b = load_config(["eval.battles=4"]), load_config(["eval.battles=8"])
    for stage, differs in (("evaluate", True), ("elo", True), ("train", False)):
        ka = StageCache(stage=stage).compute_key(None, {**inputs, "cfg": a}, {})
        kb = StageCache(stage=stage).compute_key(None, {**inputs, "cfg": b}, {})
        assert (ka != kb) == differs, stage


def _fake_run(root, name, elo, win_rate):
    run = Run(root / name)
    _touch(run.dir / "config.json")
    (run.dir / "config.json").write_text(json.dumps({"config_hash": name[-4:]}))
    (run.dir / "ratings.json").write_text(json.dumps({"generation": 1, "ratings": [
        {"player": f"{name}/gen-001", "elo": elo, "ci_low": elo - 50, "ci_high": elo + 50},
        {"player": "random", "elo": 1000, "ci_low": 1000, "ci_high": 1000}]}))
    _touch(run.gen(1) / "eval" / "summary.json")
    (run.gen(1) / "eval" / "summary.json").write_text(json.dumps({"opponents": {
        "random": {"win_rate": win_rate}, f"{name}/gen-000": {"win_rate": 0.5}}}))
    return run


def test_sweep_table_has_one_row_per_job_even_a_failed_one(tmp_path):
    import pandas as pd

    from metamon_sp.sweep import record_job

    a = _fake_run(tmp_path / "runs", "s-aaaa", 1500.0, 0.9)
    b = _fake_run(tmp_path / "runs", "s-bbbb", 1600.0, 0.95)
    sweep = tmp_path / "sweep"
    record_job(sweep, 1, ["seed=1", "scale=smoke"], b.dir, 12.0, "completed")
    record_job(sweep, 0, ["seed=0", "scale=smoke"], a.dir, 10.0, "completed")
    table = record_job(sweep, 2, ["seed=2", "scale=smoke"], None, 1.0, "failed")
    assert list(table["job"]) == [0, 1, 2]
    assert list(table["param/seed"]) == ["0", "1", "2"]
    assert table.loc[1, "elo"] == 1600.0 and table.loc[1, "elo_ci_low"] == 1550.0
    assert table.loc[0, "win_rate/random"] == 0.9 and table.loc[0, "win_rate/gen-000"] == 0.5
    assert table.loc[0, "config_hash"] == "aaaa" and table.loc[2, "status"] == "failed"
    on_disk = pd.read_parquet(sweep / "sweep.parquet")
    assert len(on_disk) == 3 and len(pd.read_csv(sweep / "sweep.csv")) == 3


def test_policy_cache_is_bounded(tmp_path, monkeypatch):
    from metamon_sp import policy
    from metamon_sp.config import PolicyConfig

    monkeypatch.setattr(policy, "_POLICIES", type(policy._POLICIES)())
    monkeypatch.setattr(policy.Policy, "from_checkpoint",
                        classmethod(lambda cls, path, cfg, seed=0: object()))
    first = policy.shared_policy(tmp_path / "g0", PolicyConfig())
    for k in range(1, policy.MAX_CACHED_POLICIES + 3):
        policy.shared_policy(tmp_path / f"g{k}", PolicyConfig())
    assert len(policy._POLICIES) == policy.MAX_CACHED_POLICIES
    assert policy.shared_policy(tmp_path / "g0", PolicyConfig()) is not first  # evicted


def test_a_configured_prefect_api_that_does_not_answer_is_a_clear_error():
    from flows.prefect_api import PrefectAPIError, check_api
    from metamon_sp.showdown.server import free_port

    url = f"http://127.0.0.1:{free_port()}/api"
    with pytest.raises(PrefectAPIError, match="does not answer") as e:
        check_api(url, timeout_s=2)
    assert url in str(e.value) and "make serve" in str(e.value) and "prefect profile use" in str(e.value)


def test_typed_parameters_become_overrides_and_free_overrides_win():
    from flows.selfplay import compose_overrides

    assert compose_overrides(2, None, scale="smoke", reward=None, seed=0) == [
        "scale=smoke", "seed=0", "generations=2"]
    assert compose_overrides(1, ["scale=laptop", "train.steps=5"], scale="smoke", seed=3) == [
        "seed=3", "scale=laptop", "train.steps=5", "generations=1"]
