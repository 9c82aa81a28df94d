"""The decision path's modules compiled by Cython: the same source, 14% fewer instructions a
decision (the interpreter's dispatch and its frames are what a compiled module drops): 0.92x
Python's CPU a decision on replayed battles, ~1.03x the decisions/s in real battles, where
Python is about half of the CPU (README, issue 10).

    python -m metamon_sp.compile           # build what is not built yet (`make install` runs it)
    METAMON_SP_COMPILED=0 python ...       # run every module from its source (profilers see it)

A build is kept under `metamon_sp/_compiled/` by the hash of the source it came from, so an
edited module never runs stale code: until it is built again it runs from its source, with a
warning that says how to build it. Annotations are not read as C types (`annotation_typing`
off): compiled code computes exactly what its source does, bit for bit
(tests/unit/test_compiled.py compares the observations of both).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

# the modules every decision runs through (none may read `__file__`: a build lives elsewhere)
MODULES = ("metamon_sp.damage", "metamon_sp.dex", "metamon_sp.features",
           "metamon_sp.gen1_battle", "metamon_sp.players")
ROOT = Path(__file__).resolve().parent.parent   # the folder that holds metamon_sp/
BUILD_DIR = Path(__file__).resolve().parent / "_compiled"
DIRECTIVES = {"language_level": 3, "annotation_typing": False, "binding": True}
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]  # this interpreter's ABI: .cpython-311-…so


def enabled() -> bool:
    return os.environ.get("METAMON_SP_COMPILED", "1") != "0"


def source_of(module: str) -> Path:
    return ROOT / (module.replace(".", "/") + ".py")


def build_of(module: str) -> Path:
    """Where the build of `module`'s current source is (or would be)."""
    digest = hashlib.sha256(source_of(module).read_bytes()).hexdigest()[:16]
    return BUILD_DIR / f"{module.rsplit('.', 1)[1]}-{digest}{SUFFIX}"


def status() -> dict[str, bool]:
    """Module -> whether it runs compiled in this process (imported or not yet)."""
    out = {}
    for name in MODULES:
        mod = sys.modules.get(name)
        out[name] = (isinstance(getattr(mod, "__loader__", None),
                                importlib.machinery.ExtensionFileLoader) if mod is not None
                     else enabled() and build_of(name).exists())
    return out


class BuildError(RuntimeError):
    """A module could not be compiled (nothing was kept of its build)."""


class _Finder(importlib.abc.MetaPathFinder):
    """Finds a listed module's build for its current source; else leaves it to the source."""

    warned: set[str] = set()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MODULES or not enabled():
            return None
        built = build_of(fullname)
        if not built.exists():
            if fullname not in self.warned:
                self.warned.add(fullname)
                log.warning("%s runs from its source, uncompiled (its source has no build: "
                            "`make install` or `python -m metamon_sp.compile` builds it): "
                            "~14%% more instructions a decision", fullname)
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(built))
        return importlib.util.spec_from_file_location(fullname, built, loader=loader)


def install_finder() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def build(modules: tuple[str, ...] = MODULES, jobs: int = 2) -> list[Path]:
    """Compile the modules whose current source has no build; returns the new builds. Older
    builds of those modules are removed; a failed build leaves nothing behind."""
    todo = [m for m in modules if not build_of(m).exists()]
    if not todo:
        return []
    for m in todo:
        if "__file__" in source_of(m).read_text():
            raise ValueError(f"{m} reads __file__, which a build would not have: leave it out "
                             "of metamon_sp.compiled.MODULES")
    try:
        from Cython.Build import cythonize
        from setuptools import Distribution, Extension
    except ImportError as e:
        raise BuildError(f"cannot compile {', '.join(todo)}: {e} (`make install` installs "
                         "Cython; METAMON_SP_COMPILED=0 runs every module from its source)") from e

    BUILD_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_DIR, prefix=".build-") as tmp:
        cwd = os.getcwd()
        os.chdir(ROOT)  # sources named relative to the root: tracebacks show metamon_sp/…
        try:
            exts = cythonize([Extension(m, [str(source_of(m).relative_to(ROOT))]) for m in todo],
                             build_dir=tmp, compiler_directives=DIRECTIVES, nthreads=jobs,
                             quiet=True)
            dist = Distribution({"ext_modules": exts, "script_name": "metamon_sp.compiled"})
            cmd = dist.get_command_obj("build_ext")
            cmd.build_lib, cmd.build_temp, cmd.parallel = f"{tmp}/lib", f"{tmp}/tmp", jobs
            dist.run_command("build_ext")
        except Exception as e:  # Cython's or the C compiler's own message is above it
            raise BuildError(f"compiling {', '.join(todo)} failed: {e} (it needs a C compiler "
                             "and Python's headers: gcc and python3-dev; "
                             "METAMON_SP_COMPILED=0 runs every module from its source)") from e
        finally:
            os.chdir(cwd)
        done = []
        for m in todo:
            target = build_of(m)
            stem = m.rsplit(".", 1)[1]
            for old in BUILD_DIR.glob(f"{stem}-*{SUFFIX}"):
                old.unlink()
            os.replace(Path(tmp, "lib", *m.split(".")[:-1], stem + SUFFIX), target)
            done.append(target)
    return done
