"""`python -m metamon_sp.showdown`: install the pinned server into the cache. Standard library only,
so `make` runs it with the system Python beside the venv's pip install."""

import logging

from metamon_sp.showdown.install import ensure_installed

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
print(ensure_installed())
