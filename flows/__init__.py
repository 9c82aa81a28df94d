"""Prefect flows: the self-play pipeline as it runs in the Prefect UI."""

import logging
import os

os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "metamon_sp")
logging.getLogger("metamon_sp").setLevel(logging.INFO)  # Prefect adds handlers, not a level
