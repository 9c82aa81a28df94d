"""The gate's choice, its candidates' steps and places, and where a run finds generation k."""

from __future__ import annotations

import contextlib

import pytest
import torch

from metamon_sp import gate as gate_mod
from metamon_sp import pipeline
from metamon_sp.checkpoint import CheckpointMeta, load_checkpoint
from metamon_sp.config import ConfigError, load_config
from metamon_sp.gate import PARENT, choose, run_gate
from metamon_sp.pipeline import Run, stage_done
from metamon_sp.players import CHECKPOINT_PREFIX
from metamon_sp.results import label
from metamon_sp.train import candidate_path, candidate_steps, train
from tests.factories import structured_dataset


def _rec(rate):
    return {"win_rate": rate, "games": 0 if rate is None else 10}


def test_the_best_candidate_wins_the_gate_and_the_parent_stays_below_the_bar():
    assert choose({"step-000750": _rec(0.55), "end": _rec(0.61)}, 0.5) == "end"
    assert choose({"step-000750": _rec(0.58), "end": _rec(0.52)}, 0.5) == "step-000750"
    assert choose({"step-000750": _rec(0.45), "end": _rec(0.48)}, 0.5) == PARENT
    # a tie goes to the candidate trained longest (records run in training order)
    assert choose({"step-000750": _rec(0.5), "end": _rec(0.5)}, 0.5) == "end"
    assert choose({"end": _rec(None)}, 0.0) == PARENT  # no games: nothing to go on
    assert choose({"end": _rec(0.3)}, 0.0) == "end"    # min_win_rate 0: always the best


def test_candidate_steps_and_places():
    assert candidate_steps([0.5, 1.0], 1500) == [750, 1500]
    assert candidate_steps([1.0, 0.5, 0.5], 7) == [4, 7]
    assert candidate_steps([0.001], 100) == [1]
    assert candidate_path("t", 1500, 1500).as_posix() == "t/checkpoint"
    assert candidate_path("t", 750, 1500).as_posix() == "t/candidates/step-000750"


def test_a_gated_generation_keeps_its_name_and_the_run_finds_it(tmp_path):
    run = Run(tmp_path / "run-abc")
    trained = run.gen(2) / "train" / "checkpoint"
    (trained).mkdir(parents=True)
    (trained / "checkpoint.json").write_text("{}")
    assert run.checkpoint(2) == trained
    gated = run.gen(2) / "gate" / "checkpoint"
    gated.mkdir(parents=True)
    assert run.checkpoint(2) == trained  # a gate that has not written its choice yet
    (gated / "checkpoint.json").write_text("{}")
    assert run.checkpoint(2) == gated and run.spec(2) == f"{CHECKPOINT_PREFIX}{gated}"
    assert label(run.spec(2)) == label(f"{CHECKPOINT_PREFIX}{trained}") == "run-abc/gen-002"
    assert not stage_done(run, "gate", 2)
    (run.gen(2) / "gate" / "gate.json").write_text("{}")
    assert stage_done(run, "gate", 2)


def test_gate_config_checks_and_hash():
    base = load_config([])
    assert base.gate.battles == 0 and base.hash() == load_config(["gate.min_win_rate=0.5"]).hash()
    assert load_config(["gate.battles=200"]).hash() != base.hash()
    assert load_config(["gate.battles=200", "gate.candidates=[0.5,1.0]"]).hash() != \
        load_config(["gate.battles=200"]).hash()
    # the selection split is the default: at it, the hash of a run made before the knob stays
    assert base.gate.team_set == "gen1ou_select"
    assert load_config(["gate.team_set=gen1ou_select"]).hash() == base.hash()
    assert load_config(["gate.battles=200", "gate.team_set=gen1ou"]).hash() != \
        load_config(["gate.battles=200"]).hash()
    for bad, key in (("gate.battles=-1", "gate.battles"),
                     ("gate.candidates=[0.0]", "gate.candidates"),
                     ("gate.candidates=[]", "gate.candidates"),
                     ("gate.min_win_rate=1.5", "gate.min_win_rate")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config([bad])
    # a gate on the evaluation split would choose by the games the run is judged on
    with pytest.raises(ConfigError, match=r"gate\.team_set='gen1ou_eval' is also eval\.team_set"):
        load_config(["gate.battles=200", "gate.team_set=gen1ou_eval"])
    assert load_config(["gate.team_set=gen1ou_eval"]).gate.battles == 0  # no gate: no harm


def test_the_gate_plays_on_its_own_team_set(monkeypatch, tmp_path):
    played = []

    def fake_pairing(gcfg, spec, parent_spec, battles, out_dir, names, **kw):
        played.append((gcfg.eval.team_set, gcfg.team_set, kw["pair_key"]))
        return []

    monkeypatch.setattr(gate_mod, "open_backend", lambda *a, **kw: contextlib.nullcontext())
    monkeypatch.setattr(gate_mod, "play_pairing", fake_pairing)
    monkeypatch.setattr(gate_mod, "load_checkpoint",
                        lambda path: ("weights", CheckpointMeta(model={})))
    monkeypatch.setattr(gate_mod, "save_checkpoint", lambda *a, **kw: None)
    cfg = load_config(["gate.battles=10"])
    record = run_gate(cfg, {"end": tmp_path / "end"}, tmp_path / "parent", tmp_path / "gate", 3)
    assert played == [("gen1ou_select", "gen1ou", "gate")]  # collection's teams stay the training
    assert record["team_set"] == "gen1ou_select" and record["choice"] == PARENT  # no games won


def test_training_keeps_its_candidates_along_the_way(tmp_path):
    data = structured_dataset(tmp_path / "d")
    cfg = load_config(["model.context=8", "train.batch_size=16", "train.warmup_steps=5",
                       "train.progress=false", "train.steps=20", "train.checkpoint_every=10"])
    end = train(cfg, [data], tmp_path / "t", keep=[0.25, 1.0])
    half = candidate_path(tmp_path / "t", 5, 20)
    assert sorted(p.name for p in (tmp_path / "t" / "candidates").iterdir()) == ["step-000005"]
    (a, ma), (b, mb) = load_checkpoint(half), load_checkpoint(end)
    assert (ma.step, mb.step) == (5, 20)
    assert not (half / "train_state.json").exists()  # weights to play, not a place to resume
    assert any(not torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    # the same run without candidates ends on the same weights: keeping them changes nothing
    plain = train(cfg, [data], tmp_path / "p")
    for k, v in load_checkpoint(plain)[0].state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def _gated_run(tmp_path) -> Run:
    """Generations 0–2 trained, and gates at 1 and 2 that kept the parent's weights."""
    run = Run(tmp_path / "run-abc")
    for k in range(3):
        for place in ("train", "gate") if k else ("train",):
            (run.gen(k) / place / "checkpoint").mkdir(parents=True)
            (run.gen(k) / place / "checkpoint" / "checkpoint.json").write_text("{}")
    return run


@pytest.mark.parametrize("lineage", ["chosen", "learner"])
def test_the_lineage_decides_what_the_next_generation_grows_from(monkeypatch, tmp_path, lineage):
    run = _gated_run(tmp_path)
    cfg = load_config(["gate.battles=10", f"gate.lineage={lineage}", "pool.previous=0.5",
                       "pool.previous_k=2"])
    place = "train" if lineage == "learner" else "gate"
    grows = {k: run.gen(k) / place / "checkpoint" for k in (1, 2)}
    assert pipeline.grows_from(cfg, run, 0) == run.checkpoint(0)
    assert pipeline.grows_from(cfg, run, 2) == grows[2]
    # collection: generation 3 is played by generation 2's lineage, against it and generation 1's
    assert pipeline.selfplay_config(cfg, run, 3).collect.p1 == f"{CHECKPOINT_PREFIX}{grows[2]}"
    specs = {m.name: m.spec for m in pipeline.opponent_pool(cfg, run, 3)}
    assert specs["gen_001"] == f"{CHECKPOINT_PREFIX}{grows[1]}"
    assert specs["gen_000"] == run.spec(0)
    # training starts from the lineage; what is released, rated and gated against stays the gate's
    seen = {}
    monkeypatch.setattr(pipeline, "train", lambda *a, **kw: seen.update(kw))
    monkeypatch.setattr(pipeline, "training_data", lambda *a: ([], []))
    pipeline.train_generation(cfg, run, 3)
    assert seen["init"] == grows[2]
    assert run.checkpoint(2) == run.gen(2) / "gate" / "checkpoint"


def test_without_a_gate_the_lineage_is_the_training(tmp_path):
    run = _gated_run(tmp_path)
    for lineage in ("chosen", "learner"):
        cfg = load_config([f"gate.lineage={lineage}"])  # gate.battles=0
        assert pipeline.grows_from(cfg, run, 2) == run.checkpoint(2)


def test_lineage_config_checks_and_hash():
    base = load_config(["gate.battles=200"])
    assert base.gate.lineage == "chosen"
    assert load_config(["gate.battles=200", "gate.lineage=chosen"]).hash() == base.hash()
    assert load_config(["gate.battles=200", "gate.lineage=learner"]).hash() != base.hash()
    with pytest.raises(ConfigError, match=r"gate\.lineage='best'.*one of \('chosen', 'learner'\)"):
        load_config(["gate.lineage=best"])


def test_the_report_says_what_the_gate_chose_and_what_the_learner_trains_on():
    from metamon_sp.report import gate_table

    rec = {"team_set": "gen1ou_select", "min_win_rate": 0.5, "choice": PARENT,
           "candidates": {"end": {"win_rate": 0.49, "ci_low": 0.44, "ci_high": 0.54, "games": 400}}}
    d = {"gens": [0, 1], "names": {0: "gen-000", 1: "gen-001"}, "gates": {1: rec}}
    chosen = "\n".join(gate_table(d))
    assert "| gen-001 | end 49.0% [44.0%, 54.0%] / 400 | parent |" in chosen
    assert "lineage=learner" not in chosen
    d["gates"][1] = {**rec, "lineage": "learner"}
    assert "own end: `gate.lineage=learner`" in "\n".join(gate_table(d))
    assert gate_table({"gens": [0], "names": {}, "gates": {}}) == []


def test_learners_config_checks_and_hash():
    base = load_config(["gate.battles=200"])
    assert base.gate.learners == 1
    assert load_config(["gate.battles=200", "gate.learners=1"]).hash() == base.hash()
    assert load_config(["gate.battles=200", "gate.learners=2"]).hash() != base.hash()
    with pytest.raises(ConfigError, match=r"gate\.learners=0"):
        load_config(["gate.learners=0"])
    # several learners need a gate to choose among them, and one lineage to grow from
    with pytest.raises(ConfigError, match=r"gate\.learners=2 .*gate\.battles=0"):
        load_config(["gate.learners=2"])
    with pytest.raises(ConfigError, match=r"gate\.lineage='learner'.*gate\.lineage=chosen"):
        load_config(["gate.battles=200", "gate.learners=2", "gate.lineage=learner"])


def test_several_learners_train_on_seeds_of_their_own_and_all_play_the_gate(monkeypatch,
                                                                            tmp_path):
    data = structured_dataset(tmp_path / "d")
    small = ["model.context=8", "train.batch_size=16", "train.warmup_steps=5",
             "train.progress=false", "train.steps=10", "train.checkpoint_every=10"]
    gen0 = train(load_config(small), [data], tmp_path / "gen0")
    monkeypatch.setattr(pipeline, "training_data", lambda *a: ([data], [1.0]))

    def run_with(learners: int) -> Run:
        run = Run(tmp_path / f"run-{learners}")
        (run.gen(0) / "train").mkdir(parents=True)
        (run.gen(0) / "train" / "checkpoint").symlink_to(gen0)
        cfg = load_config([*small, "gate.battles=10", f"gate.learners={learners}",
                           "gate.candidates=[0.5,1.0]"])
        assert pipeline.train_generation(cfg, run, 1) == run.trained(1)
        seen = {}
        monkeypatch.setattr(pipeline, "run_gate", lambda cfg, cands, *a, **kw: seen.update(cands))
        pipeline.gate_generation(cfg, run, 1)
        assert seen == {name: run.gen(1) / place for name, place in (
            ("step-000005", "train/candidates/step-000005"), ("end", "train/checkpoint"),
            ("learner2-step-000005", "train-2/candidates/step-000005"),
            ("learner2-end", "train-2/checkpoint"))[:2 * learners]}
        return run

    one, two = run_with(1), run_with(2)
    weights = {name: load_checkpoint(path)[0].state_dict() for name, path in (
        ("one", one.trained(1)), ("first", two.trained(1)),
        ("second", two.learner(1, 2) / "checkpoint"))}
    # the first learner trains as a single one would, the second on its own seed
    assert all(torch.equal(v, weights["first"][k]) for k, v in weights["one"].items())
    assert any(not torch.equal(v, weights["second"][k]) for k, v in weights["one"].items())
    assert pipeline.learner_seed(7, 1) == 7 and pipeline.learner_seed(7, 2) != 7
