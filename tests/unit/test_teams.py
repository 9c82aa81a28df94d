from __future__ import annotations

import pytest

from metamon_sp.teams import TeamError, TeamSampler, fingerprint, load_team_set

TEAM = """Tauros
- Body Slam
- Hyper Beam
- Blizzard
- Earthquake
EVs: 252 HP / 252 Atk / 252 Def / 252 SpA / 252 SpD / 252 Spe

Chansey
- Ice Beam
- Thunderbolt
- Thunder Wave
- Soft-Boiled
EVs: 252 HP / 252 Atk / 252 Def / 252 SpA / 252 SpD / 252 Spe
"""


def test_shipped_set_has_at_least_30_distinct_full_teams():
    teams = load_team_set("gen1ou")
    assert len(teams) >= 30
    assert len({t.fingerprint for t in teams}) == len(teams)
    assert all(t.packed.count("]") == 5 for t in teams)  # six Pokémon each


def test_fingerprint_ignores_order_and_spelling():
    a = fingerprint([("Tauros", ["Body Slam", "Blizzard"]), ("Chansey", ["Ice Beam"])])
    b = fingerprint([("chansey", ["icebeam"]), ("tauros", ["blizzard", "bodyslam"])])
    assert a == b != fingerprint([("tauros", ["bodyslam"])])


def test_user_folder_with_backup_headers(tmp_path):
    (tmp_path / "mine.txt").write_text(f"=== [gen1ou] First ===\n\n{TEAM}\n=== [gen1ou] Second ===\n\n"
                                       + TEAM.replace("Earthquake", "Fire Blast"))
    teams = load_team_set(str(tmp_path))
    assert [t.name for t in teams] == ["mine/First", "mine/Second"]


@pytest.mark.parametrize("value", ["not_a_set", "/no/such/folder"])
def test_unknown_team_set_is_explained(value):
    with pytest.raises(TeamError, match="neither a shipped team set"):
        load_team_set(value)


def test_sampler_is_seeded():
    teams = load_team_set("gen1ou")
    a, b = TeamSampler(teams, 3), TeamSampler(teams, 3)
    assert [a.yield_team() for _ in range(10)] == [b.yield_team() for _ in range(10)]
