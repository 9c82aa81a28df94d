"""The battle state the heuristic baselines track: poke-env's `Battle`, minus work a request
repeats. (Players whose choices read only the observation, the policy and `random`, track Gen 1
battles with `Gen1Battle` instead: metamon_sp/gen1_battle.py.)

Each request lists the player's whole team, and poke-env re-applies every entry to its Pokémon
(HP and status string parsed again, every move looked up through its move set's properties):
a sixth of the message handling time in a profile of policy self-play, for entries that mostly
did not change since the previous request (5 in 6 of them are skipped). `LeanBattle` re-applies
an entry only when it differs from the one last applied to that Pokémon, or when the Pokémon's
active flag disagrees with it.

Why skipping is safe: `update_from_request` sets only what the entry says (active flag, HP and
status, name, item, details, moves, stats). An entry equal to the last one applied describes
the same HP, status, moves and stats as then; the protocol messages since (damage, heals,
status, faints: exact figures for one's own side) have brought the tracked state to what the
server says now, which is that same state. Transform and Mimic change the entry's moves, so
they always go through. Every recorded battle gives the same observations with and without it
(tests/unit/test_battle_state.py), and so did 350 seeded battles (heuristics, self-play).
"""

from __future__ import annotations

from typing import Any

from poke_env.battle import Battle


class LeanBattle(Battle):
    """`Battle` whose request update skips team entries it has already applied."""

    def _update_team_from_request(self, side: dict[str, Any],
                                  strict_battle_tracking: bool = False) -> None:
        entries = side["pokemon"]
        team = self._team
        changed = []
        for entry in entries:
            mon = team.get(entry["ident"])
            if mon is None or mon._last_request != entry or mon.active != entry["active"]:
                changed.append(entry)
        if len(changed) < len(entries):
            side = {**side, "pokemon": changed}
        super()._update_team_from_request(side, strict_battle_tracking)


def make_lean(battle: Any) -> Any:
    """The same battle object, tracked by `LeanBattle` (a plain `Battle` only: it adds no state,
    so switching the class of a just-created battle changes nothing else)."""
    if type(battle) is Battle:
        battle.__class__ = LeanBattle
    return battle
