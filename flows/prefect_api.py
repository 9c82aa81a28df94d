"""Which Prefect API a command talks to, and one server for a whole sweep.

`python -m flows.selfplay` uses the API of the environment or the active profile (`make serve`
activates one), else Prefect's temporary server. A configured API that does not answer is an
error that says so, not a hang. A multirun starts one temporary server for all its jobs: jobs
starting their own would share one SQLite database and lock each other out.
"""

from __future__ import annotations

import os
import urllib.request
from contextlib import contextmanager
from typing import Iterator


class PrefectAPIError(RuntimeError):
    pass


def configured_api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def check_api(url: str, timeout_s: float = 10.0) -> None:
    """Fail with a clear message if the configured Prefect API does not answer."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout_s):
            return
    except OSError as e:
        from prefect.settings.profiles import load_current_profile

        raise PrefectAPIError(
            f"the Prefect API at {url} (PREFECT_API_URL, profile '{load_current_profile().name}') "
            f"does not answer ({e}). Start it (`make serve`), or run without a server: "
            f"`prefect profile use ephemeral` (or unset PREFECT_API_URL).") from e


@contextmanager
def sweep_api() -> Iterator[str]:
    """The configured API if there is one, else one temporary server for every job (in this
    process and in the processes a launcher spawns, which inherit the environment)."""
    url = configured_api_url()
    if url:
        check_api(url)
        yield url
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = SubprocessASGIServer()
    server.start(timeout=int(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"]))
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()
