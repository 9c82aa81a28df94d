"""The local Pokémon Showdown server: pinned install, process lifecycle, team validation."""

from metamon_sp.showdown.install import ensure_installed
from metamon_sp.showdown.server import ShowdownServer, ShowdownServerError

__all__ = ["ShowdownServer", "ShowdownServerError", "ensure_installed"]
