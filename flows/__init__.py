"""Prefect flows: the self-play pipeline as it runs in the Prefect UI. Importing this package sets Prefect defaults for a machine
that may be offline and new (only where the user has not set them):
- no telemetry: offline it fails loudly and its retries hit the SQLite database ("locked");
- a temporary server may take a while to start the first time (it migrates its database);
- library logs (metamon_sp.*) show in the Prefect UI next to the tasks' own.
These must be set before Prefect is imported, which reads its settings once.
"""

import logging
import os

for _key, _value in (("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
                     ("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180"),
                     ("PREFECT_LOGGING_EXTRA_LOGGERS", "metamon_sp")):
    os.environ.setdefault(_key, _value)
logging.getLogger("metamon_sp").setLevel(logging.INFO)  # Prefect adds handlers, not a level
