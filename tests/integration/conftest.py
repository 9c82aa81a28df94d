from __future__ import annotations

import pytest

from metamon_sp.showdown import ensure_installed


@pytest.fixture(scope="session", autouse=True)
def showdown_installed():
    """Install the pinned server once (cached across runs) before any integration test."""
    return ensure_installed()
