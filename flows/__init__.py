"""Prefect flows: the self-play pipeline as it runs in the Prefect UI."""

import os

os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "metamon_sp")
