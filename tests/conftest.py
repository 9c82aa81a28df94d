from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    # The folder is the speed class: tests/integration and tests/e2e need the Showdown server.
    for item in items:
        parts = Path(str(item.fspath)).relative_to(HERE).parts
        if parts[0] in ("integration", "e2e"):
            item.add_marker(getattr(pytest.mark, parts[0]))
