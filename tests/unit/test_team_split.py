"""The shipped Gen 1 OU teams: a training split (`gen1ou`), a held-out evaluation split
(`gen1ou_eval`) and a selection split for the gate (`gen1ou_select`), disjoint, each covering the
archetypes; evaluation plays the held-out one."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from poke_env.data import to_id_str
from poke_env.teambuilder import Teambuilder

from metamon_sp import evaluate as evaluate_mod
from metamon_sp.config import load_config
from metamon_sp.evaluate import evaluate, play_pairing, team_pairs
from metamon_sp.teams import (TEAMS_DIR, TeamError, load_team_set, remix_teams, shared_teams,
                              team_set_info, training_teams)

TRAIN, HELD_OUT, SELECT = "gen1ou", "gen1ou_eval", "gen1ou_select"


@pytest.fixture(scope="module")
def splits():
    return load_team_set(TRAIN), load_team_set(HELD_OUT)


@pytest.fixture(scope="module")
def three_splits(splits):
    return (*splits, load_team_set(SELECT))


def test_at_least_60_distinct_six_pokemon_teams_in_all(three_splits):
    train, held_out, select = three_splits
    everything = train + held_out + select
    assert len(everything) >= 60 and 16 <= len(held_out) <= 24 and 12 <= len(select) <= 24
    assert len({t.fingerprint for t in everything}) == len(everything)
    assert len({t.name for t in everything}) == len(everything)  # a team's name says which it is
    assert all(t.packed.count("]") == 5 for t in everything)


def test_splits_share_no_team(three_splits):
    for a in three_splits:
        for b in three_splits:
            if a is not b:
                assert shared_teams(a, b) == []


def test_shared_teams_finds_a_team_in_both(splits, tmp_path):
    train, _ = splits
    (tmp_path / "copy.txt").write_text(train[3].text)
    assert shared_teams(load_team_set(str(tmp_path)), train) == [("copy", train[3].name)]


def _uses(teams) -> set[str]:
    """Every species and move (Showdown ids) the teams use."""
    out: set[str] = set()
    for t in teams:
        for mon in Teambuilder.parse_showdown_team(t.text):
            out.add(to_id_str(mon.species or mon.nickname))  # a bare name parses as a nickname
            out.update(to_id_str(m) for m in mon.moves)
    return out


# What marks each archetype (species or move, Showdown ids): both splits must use all of it.
ARCHETYPES = {
    "big four": ["tauros", "snorlax", "chansey", "exeggutor", "starmie", "alakazam"],
    "freeze": ["lapras", "jynx", "cloyster", "blizzard"],
    "sleep leads": ["gengar", "hypnosis", "lovelykiss", "sleeppowder"],
    "paralysis": ["zapdos", "thunderwave"],
    "ground": ["rhydon", "golem", "dugtrio", "earthquake", "rockslide"],
    "amnesia": ["slowbro", "amnesia"],
    "trappers": ["wrap", "clamp", "firespin"],
    "explosion": ["explosion", "selfdestruct"],
    "hyper beam": ["hyperbeam"],
    "stall": ["reflect", "rest", "softboiled"],
}
NICHE = {"persian", "dugtrio", "victreebel", "dragonite", "articuno", "moltres", "kangaskhan",
         "hypno", "raichu", "jolteon", "nidoking", "nidoqueen", "gyarados", "aerodactyl"}


@pytest.mark.parametrize("archetype", sorted(ARCHETYPES))
def test_the_training_and_held_out_splits_cover_each_archetype(splits, archetype):
    for teams in splits:
        assert set(ARCHETYPES[archetype]) - _uses(teams) == set()


# The selection split is smaller: each archetype's mark, not every one of its species.
SELECT_ARCHETYPES = {"big four": ARCHETYPES["big four"], "freeze": ["cloyster", "blizzard"],
                     "sleep leads": ["gengar", "lovelykiss", "sleeppowder"],
                     "paralysis": ["zapdos", "thunderwave"],
                     "ground": ["rhydon", "golem", "earthquake", "rockslide"],
                     "amnesia": ["slowbro", "amnesia"], "trappers": ["wrap", "clamp", "firespin"],
                     "explosion": ["explosion", "selfdestruct"], "hyper beam": ["hyperbeam"],
                     "stall": ["reflect", "rest", "softboiled"]}


def test_the_selection_split_covers_each_archetype(three_splits):
    assert set(SELECT_ARCHETYPES) == set(ARCHETYPES)
    uses = _uses(three_splits[2])
    assert {k: set(v) - uses for k, v in SELECT_ARCHETYPES.items() if set(v) - uses} == {}


def test_every_split_has_several_niche_picks(three_splits):
    assert all(len(NICHE & _uses(teams)) >= 5 for teams in three_splits)


def test_team_set_info_names_the_split():
    info = team_set_info(HELD_OUT)
    assert info == {"name": HELD_OUT, "teams": len(load_team_set(HELD_OUT)),
                    "path": str(TEAMS_DIR / HELD_OUT)}


def test_eval_team_set_defaults_to_the_held_out_split_and_can_be_set():
    cfg = load_config()
    assert cfg.team_set == TRAIN and cfg.eval.team_set == HELD_OUT
    other = load_config(["eval.team_set=gen1ou"])
    assert other.eval.team_set == TRAIN
    assert other.hash() == cfg.hash() and other.eval_hash() != cfg.eval_hash()


@pytest.mark.parametrize("eval_set, not_from", [(HELD_OUT, TRAIN), (TRAIN, HELD_OUT)])
def test_team_pairs_draw_from_the_eval_team_set(eval_set, not_from):
    cfg = load_config([f"eval.team_set={eval_set}"])
    firsts, seconds = team_pairs(cfg, "random", "max_base_power", 30)
    drawn = set(firsts + seconds)
    assert drawn <= {t.packed for t in load_team_set(eval_set)}
    assert not drawn & {t.packed for t in load_team_set(not_from)}


def test_pairing_games_are_collected_with_the_eval_team_set(monkeypatch, tmp_path):
    seen = []

    def fake_collect(hcfg, out_dir, teams_for=None, **kw):
        seen.append((hcfg.team_set, teams_for[0].packed, teams_for[1].packed))
        assert hcfg.team_remix == 0  # remixes are training teams only

    monkeypatch.setattr(evaluate_mod, "collect", fake_collect)
    monkeypatch.setattr(evaluate_mod, "games_from_dataset", lambda *a, **kw: [])
    cfg = load_config(["team_remix=100"])
    play_pairing(cfg, "random", "max_base_power", 6, tmp_path)
    held_out = {t.packed for t in load_team_set(HELD_OUT)}
    assert [s[0] for s in seen] == [HELD_OUT, HELD_OUT]  # collect validates and names these
    assert all(set(a) | set(b) <= held_out for _, a, b in seen)


def test_evaluation_summary_records_the_team_set(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(evaluate_mod, "play_pairing", lambda *a, **kw: [])
    monkeypatch.setattr(evaluate_mod, "pairing_summary", lambda rows: {"games": len(rows)})
    with caplog.at_level(logging.WARNING, logger="metamon_sp.evaluate"):
        evaluate(load_config(), "random", ["max_base_power"], 2, tmp_path, show_progress=False)
    assert json.loads(Path(tmp_path / "summary.json").read_text())["team_set"] == HELD_OUT
    assert "training" not in caplog.text  # the held-out split shares no team with training
    with caplog.at_level(logging.WARNING, logger="metamon_sp.evaluate"):
        evaluate(load_config(["eval.team_set=gen1ou"]), "random", ["max_base_power"], 2,
                 tmp_path / "seen", show_progress=False)
    assert "evaluation plays the training teams" in caplog.text


def test_remixed_teams_recombine_the_training_sets_and_hold_out_the_held_out(three_splits,
                                                                             tmp_path):
    train, held_out, select = three_splits
    remix = remix_teams(train, 500)  # TX's remixes (docs/strength.md)
    assert remix == remix_teams(train, 500)  # fixed: every run and machine trains on the same
    assert len({t.fingerprint for t in remix}) == 500 and not shared_teams(remix, train)
    assert not shared_teams(remix, held_out) and not shared_teams(remix, select)
    def sets(team):
        return [(to_id_str(m.species or m.nickname), tuple(sorted(map(to_id_str, m.moves))))
                for m in Teambuilder.parse_showdown_team(team.text)]

    known = {s for t in train for s in sets(t)}
    for team in remix:
        mons = sets(team)
        assert len(mons) == 6 and len({species for species, _ in mons}) == 6  # species clause
        assert set(mons) <= known
    assert training_teams(TRAIN, 500)[:len(train)] == train
    assert training_teams(TRAIN, 500)[len(train):] == remix and training_teams(TRAIN) == train
    (tmp_path / "pair.txt").write_text("\n\n".join(train[0].text.strip().split("\n\n")[:2]))
    with pytest.raises(TeamError, match="at least 6 species"):
        remix_teams(load_team_set(str(tmp_path)), 3)
    with pytest.raises(TeamError, match="fewer"):  # one team: no new combination at all
        remix_teams(train[:1], 3)
