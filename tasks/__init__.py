"""Thin Prefect tasks, one per pipeline stage; each calls the library and returns paths/figures.

Results are persisted and cached by a key made of the run folder (which carries the config hash),
the generation and the stage, so a re-run resumes at the first unfinished task and two configs
are never confused.
"""

import logging
import os

# Library logs (metamon_sp.*) show in the Prefect UI next to the task's own.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "metamon_sp")
logging.getLogger("metamon_sp").setLevel(logging.INFO)  # Prefect adds handlers, not a level
