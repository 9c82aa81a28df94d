"""The decision path's compiled modules (metamon_sp/compiled.py): built from the current source,
loaded only for it, and computing exactly what their source computes."""

from __future__ import annotations

import importlib.machinery
import logging
import os
import subprocess
import sys

import pytest

from metamon_sp import compiled

# every recorded battle's decisions, tracked by poke-env (as players once did) and by Gen1Battle
_OBSERVATIONS = """
import hashlib
from tests.replay import battle_logs, decisions
from metamon_sp import compiled, features
h, n = hashlib.sha256(), 0
for log in battle_logs():
    for gen1 in (False, True):
        for battle in decisions(log, lean=not gen1, gen1=gen1):
            obs = features.featurize(battle)
            for a in (obs.num, obs.cat, obs.mask, obs.facts):
                h.update(a.tobytes())
            n += 1
print(sorted(compiled.status().items()), n, h.hexdigest())
"""


def _observations(on: bool) -> tuple[list, int, str]:
    env = dict(os.environ, METAMON_SP_COMPILED="1" if on else "0")
    out = subprocess.run([sys.executable, "-c", _OBSERVATIONS], env=env, cwd=compiled.ROOT,
                         capture_output=True, text=True, check=True).stdout.strip()
    modules, n, digest = out.rsplit(" ", 2)
    return eval(modules), int(n), digest  # noqa: S307  (our own script's repr of a list)


def test_the_compiled_modules_featurize_exactly_as_their_source():
    if not compiled.enabled():
        pytest.skip("METAMON_SP_COMPILED=0: nothing runs compiled")
    on, off = _observations(True), _observations(False)
    assert all(built for _, built in on[0]), \
        f"not every module of the decision path is built ({on[0]}): `make install` builds them"
    assert not any(built for _, built in off[0])
    assert on[1] == off[1] > 100
    assert on[2] == off[2]


def test_a_module_runs_its_build_only_for_its_current_source(monkeypatch, tmp_path, caplog):
    finder = compiled._Finder()
    assert finder.find_spec("metamon_sp.elo") is None  # not a listed module: left alone
    if compiled.enabled() and compiled.build_of("metamon_sp.damage").exists():
        spec = finder.find_spec("metamon_sp.damage")
        assert isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)
    # an edited source: its build (hashed from the old source) is not found, the source runs
    monkeypatch.setattr(compiled, "BUILD_DIR", tmp_path)
    monkeypatch.setattr(finder, "warned", set())
    with caplog.at_level(logging.WARNING, logger="metamon_sp.compiled"):
        assert finder.find_spec("metamon_sp.damage") is None
        assert finder.find_spec("metamon_sp.damage") is None
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "python -m metamon_sp.compile" in warnings[0]
    monkeypatch.setenv("METAMON_SP_COMPILED", "0")  # asked for: the source, no warning
    assert finder.find_spec("metamon_sp.features") is None and len(caplog.records) == 1


def test_a_module_that_reads_its_file_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(compiled, "BUILD_DIR", tmp_path)
    with pytest.raises(ValueError, match="reads __file__"):
        compiled.build(("metamon_sp.showdown.direct",))
    assert not list(tmp_path.iterdir())  # nothing half-built left behind


def test_a_build_is_kept_until_its_source_changes():
    if not all(compiled.build_of(m).exists() for m in compiled.MODULES):
        pytest.skip("not built here (`make install` builds them)")
    assert compiled.build() == []  # up to date: nothing compiled again
