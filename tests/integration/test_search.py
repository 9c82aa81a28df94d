"""One-step search in the simulator (search.js, metamon_sp/search.py): it values every legal
choice, never changes or peeks into the real battle, beats random play, and labels a learner's
decisions in collection (`collect.search_rate`)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from metamon_sp.checkpoint import CheckpointMeta, save_checkpoint
from metamon_sp.collect import collect
from metamon_sp.config import ConfigError, load_config
from metamon_sp.model import PolicyModel
from metamon_sp.players import PlayerSpecError
from metamon_sp.search import (SearchOptions, confident_best, parse_search_spec,
                               request_choices)
from metamon_sp.showdown import ensure_installed
from metamon_sp.teams import load_team_set
from metamon_sp.trajectories import Dataset

pytestmark = pytest.mark.timeout(300)

SEARCH_JS = Path(__file__).parents[2] / "metamon_sp" / "showdown" / "search.js"

# Plays a seeded battle 4 turns with fixed choices, then: the search's answer, whether the
# battle's serialized state is the same before and after it, and the answer again with the
# opponent's move already committed in the real battle (it must not change the answer).
PROBE = r"""
const [pkg, searchJs, teamA, teamB, poolJson] = process.argv.slice(1);
const path = require('path');
const {Battle} = require(path.join(pkg, 'dist', 'sim', 'battle'));
const {Teams, TeamValidator} = require(pkg);
const team = (packed) => { const t = Teams.unpack(packed);
  TeamValidator.get('gen1ou').validateTeam(t); return t; };
const search = require(searchJs).makeSearch(pkg);
const b = new Battle({formatid: 'gen1ou', seed: 'sodium,' + '1'.repeat(32)});
b.setPlayer('p1', {name: 'a', team: team(teamA)});
b.setPlayer('p2', {name: 'b', team: team(teamB)});
for (let i = 0; i < 4 && !b.ended; i++) {
  for (const s of b.sides) if (s.activeRequest && !s.activeRequest.wait) b.choose(s.id, 'default');
}
const opts = {forks: 3, depth: 2, seed: 'sodium,' + '2'.repeat(32)};
const before = JSON.stringify(b.toJSON());
const answer = search(b, 'p1', opts);
const request = b.sides[0].activeRequest;
const restricted = search(b, 'p1', {...opts, choices: answer.choices.slice(-2)});
const untouched = JSON.stringify(b.toJSON()) === before;
const moves = b.sides[1].activeRequest.active[0].moves;
const committed = [];
for (let i = 0; i < moves.length; i++) {
  if (moves[i].disabled) continue;
  b.sides[1].choose(`move ${i + 1}`);
  committed.push(search(b, 'p1', opts));
}
const legal = answer.choices.every((c) => {
  const fork = Battle.fromJSON(before);
  return fork.choose('p1', c);
});
// the information-set search: a fork's unseen foes redrawn from the pool, the seen ones kept
const S = require(searchJs);
const sim = S.load(pkg);
const pool = JSON.parse(poolJson);
const species = (side) => side.pokemon.map((p) => p.species.id);
const truth = species(b.sides[1]);
const seenIds = b.sides[1].pokemon.filter((p) => p.isActive || p.hp < p.maxhp)
  .map((p) => p.species.id);
const fork = Battle.fromJSON(before);
S.determinize(sim, fork.sides[1], new Set(seenIds), S.poolSets(sim, fork, 'p', pool),
  new sim.PRNG('sodium,' + '3'.repeat(32)));
const drawn = species(fork.sides[1]);
const pooled = {...opts, pool_id: 'p', pool};
const beforeHidden = JSON.stringify(b.toJSON());
const hidden = search(b, 'p1', {...pooled, seen: seenIds});
const allSeen = search(b, 'p1', {...pooled, seen: truth});
const hiddenUntouched = JSON.stringify(b.toJSON()) === beforeHidden;
console.log(JSON.stringify({answer, untouched, committed, legal, request, restricted, truth,
  seenIds, drawn, hidden, allSeen, hiddenUntouched}));
"""


def _probe() -> dict:
    teams = load_team_set("gen1ou")
    pool = json.dumps([t.packed for t in teams[2:]])
    out = subprocess.run(["node", "-e", PROBE, str(ensure_installed()), str(SEARCH_JS),
                          teams[0].packed, teams[1].packed, pool],
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def test_search_values_each_legal_choice_and_leaves_the_battle_alone():
    r = _probe()
    answer = r["answer"]
    assert answer["forks"] == 3 and len(answer["choices"]) == len(answer["values"]) >= 2
    assert len(set(answer["choices"])) == len(answer["choices"]) and r["legal"]
    assert all(0.0 <= v <= 1.0 for v in answer["values"])
    assert len(answer["stderrs"]) == len(answer["values"]) and all(
        0.0 <= e <= 1.0 for e in answer["stderrs"])
    assert any(c.startswith("switch") for c in answer["choices"])
    samples = answer["samples"]  # per choice, the value of each fork
    assert [len(v) for v in samples] == [3] * len(answer["choices"])
    assert answer["values"] == pytest.approx([sum(v) / 3 for v in samples])
    # our side of the protocol names the same legal choices as the simulator
    assert request_choices(SimpleNamespace(last_request=r["request"])) == answer["choices"]
    # a search of some choices plays the same forks for them (their dice are drawn first)
    assert r["restricted"]["choices"] == answer["choices"][-2:]
    assert r["restricted"]["samples"] == samples[-2:]
    assert r["untouched"]  # the real battle's state, PRNG included, is as it was
    # whatever move the opponent already committed, the same seed gives the same answer
    assert len(r["committed"]) >= 2 and all(c == answer for c in r["committed"])


def test_an_information_set_search_redraws_only_what_its_side_has_not_seen():
    r = _probe()
    truth, seen, drawn = r["truth"], set(r["seenIds"]), r["drawn"]
    assert 1 <= len(seen) < len(truth) == len(drawn)
    assert all(d == t for d, t in zip(drawn, truth) if t in seen)  # what was seen stays
    assert any(d != t for d, t in zip(drawn, truth) if t not in seen)  # the rest is redrawn
    assert len(set(drawn)) == len(drawn)  # species clause
    hidden = r["hidden"]
    assert hidden["choices"] == r["answer"]["choices"] and r["hiddenUntouched"]
    assert hidden["samples"] != r["answer"]["samples"]  # it plays against other Pokémon
    # with every Pokémon seen there is nothing to redraw: the full-information answer
    assert r["allSeen"] == r["answer"]


def test_search_specs():
    assert parse_search_spec("search") == SearchOptions()
    assert parse_search_spec("search:2:1") == SearchOptions(forks=2, depth=1)
    assert parse_search_spec("search:2:1:0") == SearchOptions(forks=2, depth=1, epsilon=0.0)
    assert parse_search_spec("search:2:1:0.1:gen1ou").pool == "gen1ou"
    for bad in ("search:0:3", "search:2", "search:two:3", "search:2:3:2", "searches",
                "search:2:1:0.1:no_such_set"):
        with pytest.raises(ValueError, match="search"):
            parse_search_spec(bad)


def test_the_search_player_beats_random_on_the_direct_backend_only(tmp_path):
    cfg = load_config(["collect.p1=search:4:2", "collect.p2=random",
                       "collect.battles=6", "collect.concurrency=6", "seed=1"])
    summary = collect(cfg, tmp_path / "data", show_progress=False)
    assert summary["battles"] == 6 and summary["invalid_actions"] == 0
    trajs = list(Dataset(tmp_path / "data"))
    assert sum(t.outcome > 0 for t in trajs if t.side == "p1") >= 5  # seeded battles
    assert all(t.masks[i, a] for t in trajs for i, a in enumerate(t.actions))
    server = replace(cfg, collect=replace(cfg.collect, backend="showdown"))
    with pytest.raises(PlayerSpecError, match="collect.backend=direct"):
        collect(server, tmp_path / "server", show_progress=False)


def test_a_learner_plays_the_searchs_choice_where_it_is_better(tmp_path):
    torch.manual_seed(0)
    mc = load_config().model
    ckpt = save_checkpoint(tmp_path / "ckpt", PolicyModel(mc), CheckpointMeta(model=asdict(mc)))
    base = [f"collect.p1=checkpoint:{ckpt}", "collect.battles=4", "collect.concurrency=4",
            "policy.search_forks=4", "policy.search_depth=2"]
    summary = collect(load_config([*base, "collect.p2=self", "policy.search_rate=0.5"]),
                      tmp_path / "self", show_progress=False)
    assert summary["battles"] == 4 and summary["invalid_actions"] == 0
    trajs = list(Dataset(tmp_path / "self"))
    # an untrained policy's choice is often beaten: the search plays on some of its half
    share = sum(int(t.searched.sum()) for t in trajs) / sum(t.steps for t in trajs)
    assert 0.05 < share < 0.5 and all(t.searched.shape == t.actions.shape for t in trajs)
    assert not any((t.searched & t.explored).any() for t in trajs)
    # every searched decision keeps the search's values (flagged or not), legal actions only,
    # and where the search played its own choice that choice is the best valued
    valued = [(~np.isnan(t.search_values)).any(1) for t in trajs]
    assert sum(v.sum() for v in valued) > sum(t.searched.sum() for t in trajs)
    for t, v in zip(trajs, valued):
        known = ~np.isnan(t.search_values)
        assert not (known & ~t.masks).any() and (known[v] == t.masks[v]).all()
        assert not (t.searched & ~v).any()
        # with the policy's probabilities before the search, over the legal actions
        assert (~np.isnan(t.search_prior) == (t.masks & v[:, None])).all()
        np.testing.assert_allclose(np.nansum(t.search_prior[v], axis=1), 1.0, rtol=1e-4)
        for i in np.flatnonzero(t.searched):
            assert t.search_values[i, t.actions[i]] == np.nanmax(t.search_values[i])
    # searching only the policy's likeliest choice and its own still finds better ones
    collect(load_config([*base, "collect.p2=self", "policy.search_rate=0.5",
                         "policy.search_top_k=1"]), tmp_path / "top", show_progress=False)
    top = list(Dataset(tmp_path / "top"))
    assert any(t.searched.any() for t in top)
    assert max((~np.isnan(t.search_values)).sum(1).max() for t in top) <= 2
    # a search that must be sure beyond any noise never overrides the policy
    collect(load_config([*base, "collect.p2=self", "policy.search_rate=0.5",
                         "policy.search_z=1000"]), tmp_path / "sure", show_progress=False)
    assert not any(t.searched.any() for t in Dataset(tmp_path / "sure"))
    # an information-set search (unseen foes drawn from the training teams) labels too
    collect(load_config([*base, "collect.p2=self", "policy.search_rate=0.5",
                         "policy.search_pool=gen1ou"]), tmp_path / "hidden", show_progress=False)
    assert any(t.searched.any() for t in Dataset(tmp_path / "hidden"))
    # against another player (the pool's earlier generations) only the learner searches
    collect(load_config([*base, f"collect.p2=checkpoint:{ckpt}", "policy.search_rate=0.5"]),
            tmp_path / "pool", show_progress=False)
    pool = list(Dataset(tmp_path / "pool"))
    assert all(t.searched.any() == (t.side == "p1") for t in pool)
    # without a rate nobody does
    collect(load_config([*base, "collect.p2=self"]), tmp_path / "none", show_progress=False)
    none = list(Dataset(tmp_path / "none"))
    assert not any(t.searched.any() or not np.isnan(t.search_values).all() for t in none)
    with pytest.raises(ConfigError, match="collect.search_rate.*collect.backend=direct"):
        load_config(["collect.search_rate=0.1", "collect.backend=showdown"])


def test_the_search_overrides_only_a_choice_it_can_tell_apart():
    own, better, tied = 0, 1, 2
    samples = {own: np.array([0.5, 0.4, 0.6, 0.5]), better: np.array([0.6, 0.5, 0.7, 0.6]),
               tied: np.array([0.5, 0.4, 0.6, 0.5])}
    assert confident_best(samples, own, z=0) == better
    assert confident_best(samples, own, z=100) == better  # the same +0.1 on every fork
    noisy = {own: np.array([0.5, 0.5, 0.5, 0.5]), better: np.array([0.9, 0.2, 0.9, 0.2])}
    assert confident_best(noisy, own, z=0) == better
    assert confident_best(noisy, own, z=1) is None  # +0.05 ± 0.2: a coin toss
    assert confident_best({own: samples[own], tied: samples[tied]}, own, z=0) is None
    assert confident_best({better: samples[better]}, own, z=0) is None  # own not valued
