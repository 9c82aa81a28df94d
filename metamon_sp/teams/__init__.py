"""Team sets: Showdown-export teams shipped as data (or a user's folder), validated, sampled.

A team set is a folder of `.txt` files, one team per file (a file may also hold several teams
under Showdown backup headers `=== [gen1ou] Name ===`). A name of a folder here names a shipped
set; any other value is a folder path.

Shipped Gen 1 OU teams come in three disjoint splits (by `fingerprint`, checked by the unit
tests): `gen1ou` (44 teams) is what collection samples, so the agent trains on it; `gen1ou_eval`
(20 teams) is held out for evaluation and ratings (`eval.team_set`); `gen1ou_select` (16 teams) is
held out from both for the gate's games (`gate.team_set`). The split is the folders themselves,
fixed by hand so each archetype (big-four cores, freeze, sleep leads, paralysis, ground, Amnesia,
Wrap/Clamp trappers, Explosion, Hyper Beam offense, Reflect/Rest stall, niche picks) has teams in
each; see `teams/README.md`.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from poke_env.data import to_id_str
from poke_env.teambuilder import Teambuilder

TEAMS_DIR = Path(__file__).resolve().parent
_HEADER = re.compile(r"^===\s*(?:\[[^\]]*\]\s*)?(.*?)\s*===\s*$", re.MULTILINE)


class TeamError(ValueError):
    """A team set that cannot be used; the message names the team/folder and the fix."""


@dataclass(frozen=True)
class Team:
    name: str
    text: str
    packed: str
    fingerprint: str  # species + moves, order-free: identifies the team inside a battle


def fingerprint(mons: Iterable[tuple[str, Iterable[str]]]) -> str:
    """Order-free id of a team from (species, moves) pairs, in Showdown id form."""
    entries = sorted(f"{to_id_str(s)}:{','.join(sorted(to_id_str(m) for m in moves))}"
                     for s, moves in mons)
    return hashlib.sha1("|".join(entries).encode()).hexdigest()[:12]


def _parse(name: str, text: str) -> Team:
    try:
        mons = Teambuilder.parse_showdown_team(text)
    except Exception as e:  # poke-env raises bare errors on malformed exports
        raise TeamError(f"team {name!r} is not a Showdown export ({e}).") from e
    if not mons:
        raise TeamError(f"team {name!r} is empty.")
    fp = fingerprint((m.species or m.nickname or "", m.moves) for m in mons)
    return Team(name=name, text=text.strip() + "\n", packed=Teambuilder.join_team(mons), fingerprint=fp)


def _split_file(path: Path) -> list[tuple[str, str]]:
    text = path.read_text()
    headers = list(_HEADER.finditer(text))
    if not headers:
        return [(path.stem, text)]
    out = []
    for i, h in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        out.append((f"{path.stem}/{h.group(1) or i}", text[h.end():end]))
    return out


def team_set_dir(team_set: str) -> Path:
    shipped = TEAMS_DIR / team_set
    if re.fullmatch(r"[a-z0-9][a-z0-9_]*", team_set) and shipped.is_dir():
        return shipped
    folder = Path(team_set).expanduser()
    if folder.is_dir():
        return folder
    shipped_sets = sorted(p.name for p in TEAMS_DIR.iterdir() if p.is_dir() and not p.name.startswith("_"))
    raise TeamError(f"team_set={team_set!r} is neither a shipped team set ({', '.join(shipped_sets)}) "
                    f"nor an existing folder of Showdown-export .txt teams.")


def load_team_set(team_set: str) -> list[Team]:
    folder = team_set_dir(team_set)
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise TeamError(f"team set folder {folder} holds no .txt teams.")
    teams = [_parse(name, text) for f in files for name, text in _split_file(f) if text.strip()]
    return teams


@lru_cache(maxsize=8)
def _remixed(team_set: str, n: int) -> tuple[Team, ...]:
    return tuple(remix_teams(load_team_set(team_set), n))


def training_teams(team_set: str, remix: int = 0) -> list[Team]:
    """The teams collection samples: `team_set`, plus `remix` teams recombined from its own
    Pokémon sets (`remix_teams`)."""
    teams = load_team_set(team_set)
    return teams + list(_remixed(team_set, remix)) if remix else teams


def remix_teams(teams: list[Team], n: int, seed: int = 0) -> list[Team]:
    """`n` new teams, each six distinct species drawn by how many of `teams` use them (so the
    tier's staples stay common), each with one of the sets `teams` give that species. Every set
    and so every team is as legal as the teams it comes from; no new move or species enters,
    only new combinations: more teams to learn from (a remix equal to one of `teams` is drawn
    again; that none equals a held-out team is checked by tests/unit/test_team_split.py)."""
    sets: dict[str, dict[tuple[str, ...], str]] = {}
    usage: dict[str, int] = {}
    for team in teams:
        for block in re.split(r"\n\s*\n", team.text.strip()):
            [mon] = Teambuilder.parse_showdown_team(block)
            species = to_id_str(mon.species or mon.nickname or "")
            sets.setdefault(species, {}).setdefault(tuple(sorted(map(to_id_str, mon.moves))),
                                                    block.strip())
            usage[species] = usage.get(species, 0) + 1
    if len(sets) < 6:
        raise TeamError(f"remixing needs at least 6 species among the teams; they have "
                        f"{len(sets)}.")
    rng = random.Random(f"remix:{seed}")
    seen = {t.fingerprint for t in teams}
    out: list[Team] = []
    for _ in range(100 * n):
        if len(out) == n:
            break
        pool, picked = dict(usage), []
        for _ in range(6):
            species = rng.choices(list(pool), weights=list(pool.values()))[0]
            del pool[species]
            picked.append(rng.choice(list(sets[species].values())))
        team = _parse(f"remix-{len(out):04d}", "\n\n".join(picked))
        if team.fingerprint not in seen:
            seen.add(team.fingerprint)
            out.append(team)
    if len(out) < n:
        raise TeamError(f"only {len(out)} distinct new teams could be recombined from these "
                        f"{len(teams)} teams, not {n}: ask for fewer (team_remix).")
    return out


def team_set_info(team_set: str) -> dict[str, str | int]:
    """What a figure was played with: the set's name, its number of teams and its folder."""
    return {"name": team_set, "teams": len(load_team_set(team_set)),
            "path": str(team_set_dir(team_set))}


def shared_teams(a: list[Team], b: list[Team]) -> list[tuple[str, str]]:
    """(name in a, name in b) for every team of `a` also in `b` by fingerprint: a held-out split
    must share none with the training split."""
    in_b = team_index(b)
    return [(t.name, in_b[t.fingerprint]) for t in a if t.fingerprint in in_b]


@lru_cache(maxsize=16)
def _validated(packed: tuple[str, ...], names: tuple[str, ...], battle_format: str) -> None:
    from metamon_sp.showdown.validate import validate_teams

    problems = validate_teams(list(packed), battle_format)
    bad = [(n, p) for n, p in zip(names, problems) if p]
    if bad:
        lines = "\n".join(f"  - {n}: {'; '.join(p)}" for n, p in bad)
        raise TeamError(f"{len(bad)} team(s) are illegal in {battle_format} according to Showdown's "
                        f"validator; fix or remove them:\n{lines}")


def validate_team_set(teams: list[Team], battle_format: str) -> None:
    """Raise TeamError listing every illegal team with the validator's message."""
    _validated(tuple(t.packed for t in teams), tuple(t.name for t in teams), battle_format)


class TeamSampler(Teambuilder):
    """Gives each battle a team drawn with a seeded RNG (poke-env asks once per battle)."""

    def __init__(self, teams: list[Team], seed: int):
        if not teams:
            raise TeamError("cannot sample from an empty team set.")
        self.teams = teams
        self.rng = random.Random(seed)

    def yield_team(self) -> str:
        return self.rng.choice(self.teams).packed


class TeamSequence(Teambuilder):
    """Gives battles the given teams in order (evaluation's mirrored team pairs)."""

    def __init__(self, packed_teams: list[str]):
        if not packed_teams:
            raise TeamError("an empty team sequence.")
        self.packed = list(packed_teams)
        self.i = 0

    def yield_team(self) -> str:
        team = self.packed[self.i % len(self.packed)]
        self.i += 1
        return team

    def skip(self, n: int) -> None:
        """Start `n` teams later (a resumed collection whose first `n` battles are written)."""
        self.i += n


def team_index(teams: list[Team]) -> dict[str, str]:
    """fingerprint → team name, to name the team a battle was played with."""
    return {t.fingerprint: t.name for t in teams}
