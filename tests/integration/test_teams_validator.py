from __future__ import annotations

import pytest

from metamon_sp.collect import collect
from metamon_sp.config import load_config
from metamon_sp.showdown.validate import validate_teams
from metamon_sp.teams import TeamError, load_team_set, validate_team_set
from tests.unit.test_teams import TEAM

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("team_set", ["gen1ou", "gen1ou_eval", "gen1ou_select"])  # all three splits
def test_every_shipped_team_passes_showdowns_validator(team_set):
    teams = load_team_set(team_set)
    problems = validate_teams([t.packed for t in teams], "gen1ou")
    assert {t.name: p for t, p in zip(teams, problems) if p} == {}


def test_illegal_team_is_refused_before_any_battle(tmp_path):
    folder = tmp_path / "teams"
    folder.mkdir()
    (folder / "legal.txt").write_text(TEAM)
    (folder / "ohko.txt").write_text(TEAM.replace("Earthquake", "Fissure"))
    with pytest.raises(TeamError, match=r"ohko: .*Fissure is banned by OHKO Clause"):
        validate_team_set(load_team_set(str(folder)), "gen1ou")
    cfg = load_config([f"team_set={folder}", "collect.battles=2"])
    out = tmp_path / "data"
    with pytest.raises(TeamError, match="ohko"):
        collect(cfg, out, show_progress=False)
    assert not out.exists()  # refused before a server started or a file was written
