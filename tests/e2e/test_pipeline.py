"""The whole pipeline without Prefect on the smoke scale, then its report and an A/B comparison:
real battles, real training, real ratings."""

from __future__ import annotations

import json
import struct

import pytest

from tests.e2e.test_cli import run

pytestmark = pytest.mark.timeout(900)


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    # a shorter, slower first fine-tune whose critic first learns alone (train.first_*):
    # generation 1 alone
    run("selfplay", "scale=smoke", "generations=2", "run_name=base", f"runs_dir={root}",
        "train.first_steps=40", "train.first_lr=1e-4", "train.first_critic_warmup=10",
        timeout=600)
    run("selfplay", "scale=smoke", "generations=1", "run_name=damped", "damping=dynamic",
        "logger=wandb", "gate.battles=4", "gate.candidates=[0.5,1.0]", f"runs_dir={root}",
        timeout=600)  # wandb offline: needs no login
    return {p.name.split("-")[0]: p for p in root.iterdir() if p.is_dir()}


def test_run_layout_and_ratings(runs):
    base = runs["base"]
    for k in range(3):
        gen = base / f"gen-{k:03d}"
        assert (gen / "train" / "checkpoint" / "model.safetensors").exists()
        assert (gen / "ratings.json").exists() and (gen / "eval" / "summary.json").exists()
    meta = json.loads((base / "gen-002" / "train" / "checkpoint" / "checkpoint.json").read_text())
    assert meta["generation"] == 2 and meta["parent"].endswith("gen-001/train/checkpoint")
    for k, steps, lr, held in ((1, 50, 1e-4, 10), (2, 60, 3e-4, 0)):
        train_dir = base / f"gen-{k:03d}" / "train"
        assert json.loads((train_dir / "train_summary.json").read_text())["steps"] == steps
        rows = [json.loads(line) for line in (train_dir / "metrics.jsonl").read_text().splitlines()]
        assert rows[-1]["train/lr"] == pytest.approx(lr)
        assert sum(r.get("train/critic_warmup", 0) for r in rows) == held  # held steps first
        assert all(r["train/critic_warmup"] == 1 for r in rows[:held])
    ratings = json.loads((base / "ratings.json").read_text())
    names = {r["player"] for r in ratings["ratings"]}
    assert {"random", "max_base_power", f"{base.name}/gen-000", f"{base.name}/gen-002"} <= names
    assert ratings["anchor"] == "random"
    summary = json.loads((base / "gen-002" / "eval" / "summary.json").read_text())
    assert f"{base.name}/gen-000" in summary["opponents"]  # the reference, head to head
    for s in summary["opponents"].values():
        assert s["valid_action_rate"] == 1.0 and s["ci_low"] <= s["win_rate"] <= s["ci_high"]


def test_report_has_every_generation_and_real_plots(runs):
    base = runs["base"]
    out = run("report", str(base))
    report = base / "report" / "report.md"
    assert str(report) in out
    text = report.read_text()
    for k in range(3):
        assert f"{base.name}/gen-{k:03d}" in text
    for png in ("elo.png", "winrates.png", "reference.png", "training.png"):
        w, h = _png_size(base / "report" / png)
        assert w > 300 and h > 200 and (base / "report" / png).stat().st_size > 5000
        assert f"({png})" in text
    assert "Behaviour probes" in text and "recovery when lost" in text


def test_compare_rates_both_runs_on_one_scale(runs, tmp_path):
    out = run("compare", str(runs["base"]), str(runs["damped"]), f"out={tmp_path / 'cmp'}",
              "elo.games_per_pair=2")  # a few cross-run games: the point is one scale
    assert "## Verdict" in out and "damping.name=dynamic" in out
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    players = {r["player"] for r in doc["ratings"]["ratings"]}
    assert f"{runs['damped'].name}/gen-001" in players and f"{runs['base'].name}/gen-002" in players
    [diff] = doc["statement"]["differences"].values()
    assert diff["ci_low"] <= diff["diff"] <= diff["ci_high"]
    assert _png_size(tmp_path / "cmp" / "compare.png")[0] > 300


def test_wandb_runs_per_generation_and_job_in_the_run_folder(runs):
    """wandb 0.31 has no Python reader for its .wandb files; their records are uncompressed
    protobufs, so the values that must be there are found in the bytes."""
    damped = runs["damped"]
    folders = sorted((damped / "wandb").glob("offline-run-*"))
    names = {p.name.split("-", 3)[-1] for p in folders}
    assert names == {f"{damped.name}-gen-{k:03d}-{job}" for k in (0, 1)
                     for job in ("train", "evaluate")}
    for folder in folders:
        [record] = folder.glob("*.wandb")
        data = record.read_bytes()
        k = folder.name.split("-gen-")[1][:3]
        assert f"{damped.name}/gen-{k}".encode() in data  # run name
        assert damped.name.encode() in data and damped.name.split("-")[-1].encode() in data
        if folder.name.endswith("train"):  # group, config hash; metrics; checkpoint artifact
            assert b"train/critic_loss" in data and b"model.safetensors" in data
        else:
            assert b"evaluate" in data and b"eval/win_rate/random" in data
            assert f"elo/gen-{k}".encode() in data
    metrics = [json.loads(line) for line in (damped / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [0, 1] and "eval/win_rate/random" in metrics[1]


def test_the_gate_chooses_generation_1_by_match_play_on_the_selection_split(runs):
    from safetensors.torch import load_file

    from metamon_sp.results import read_games
    from metamon_sp.teams import load_team_set

    damped = runs["damped"]
    record = json.loads((damped / "gen-001" / "gate" / "gate.json").read_text())
    assert list(record["candidates"]) == ["step-000030", "end"]
    assert record["team_set"] == "gen1ou_select"
    assert all(c["games"] == 4 for c in record["candidates"].values())
    gate_games = read_games([damped / "gen-001" / "gate" / "gate.parquet"])
    select = {t.name for t in load_team_set("gen1ou_select")}
    teams = {g[k] for g in gate_games for k in ("a_team", "b_team")}
    assert len(gate_games) == 8 and teams <= select
    chosen = damped / "gen-001" / "gate" / "checkpoint"
    meta = json.loads((chosen / "checkpoint.json").read_text())
    assert meta["generation"] == 1 and meta["metrics"]["gate/choice"] == record["choice"]
    source = record["source"]
    assert source == (record["parent"] if record["choice"] == "parent"
                      else record["candidates"][record["choice"]]["checkpoint"])
    ours = load_file(str(chosen / "model.safetensors"))
    theirs = load_file(f"{source}/model.safetensors")
    assert ours.keys() == theirs.keys() and all((ours[k] == theirs[k]).all() for k in ours)
    # from here on generation 1 is the gate's choice, and the gate's games are never rated
    summary = json.loads((damped / "gen-001" / "eval" / "summary.json").read_text())
    assert summary["player_spec"].endswith("gen-001/gate/checkpoint")
    assert summary["player"] == f"{damped.name}/gen-001"
    rated = read_games([damped])
    assert rated and not [r for r in rated if "/gate/" in r["source"]]
    run("report", str(damped))
    report = (damped / "report" / "report.md").read_text()
    assert f"| {damped.name}/gen-001 | step-000030 " in report
