"""Pokémon Showdown: pinned install, the local server's lifecycle, team validation, and the
direct battle backend (`metamon_sp.showdown.direct`: the simulator without a server).

Importing this package needs only the standard library: `python -m metamon_sp.showdown`
installs Showdown with the system Python, beside the venv's own install (see the Makefile)."""

from metamon_sp.showdown.install import ensure_installed
from metamon_sp.showdown.server import OnDemandServer, ShowdownServer, ShowdownServerError

__all__ = ["OnDemandServer", "ShowdownServer", "ShowdownServerError", "ensure_installed"]
