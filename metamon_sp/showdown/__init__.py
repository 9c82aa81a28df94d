"""The local Pokémon Showdown server: pinned install, process lifecycle, team validation."""

from metamon_sp.showdown.install import ensure_installed
from metamon_sp.showdown.server import OnDemandServer, ShowdownServer, ShowdownServerError

__all__ = ["OnDemandServer", "ShowdownServer", "ShowdownServerError", "ensure_installed"]
