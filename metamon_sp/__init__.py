"""metamon-sp: iterative self-play for Pokémon Showdown Gen 1 OU agents."""

from metamon_sp import compiled as _compiled

# before any module of the decision path is imported: their builds, where built (compiled.py)
_compiled.install_finder()
