"""Install the pinned Pokémon Showdown server once per version into a cache outside the checkout.

The pin is `package.json` + `package-lock.json` beside this file. The install folder is named by
the lockfile's hash, built in a temporary folder and renamed into place, so a half-finished
install is never mistaken for a finished one, and concurrent callers wait on a file lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

PIN_DIR = Path(__file__).resolve().parent
SHOWDOWN_VERSION = "0.11.11"
_MARKER = ".metamon-sp-installed"

# Merged by Showdown over config-example.js. Loopback only: the server runs with --no-security.
SERVER_CONFIG_JS = """\
// Written by metamon-sp. A local, loopback-only battle server for bots.
exports.bindaddress = '127.0.0.1';
exports.subprocesses = 0;        // one process: less memory, faster start and battles
exports.crashguard = false;      // a taken port must make the server exit, not linger
exports.repl = false;
exports.backdoor = false;
exports.nobattlesearch = true;
exports.reportbattles = false;
exports.nothrottle = true;       // bots send many challenges and choices per second
exports.noipchecks = true;
exports.watchconfig = false;
exports.logchat = false;
exports.logchallenges = false;
exports.loguserstats = 0;
exports.ofemain = false;
exports.ofesockets = false;
"""


class ShowdownInstallError(RuntimeError):
    pass


def cache_root() -> Path:
    """Where installs are cached: `$METAMON_SP_CACHE`, else `~/.cache/metamon-sp`."""
    env = os.environ.get("METAMON_SP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "metamon-sp"


def _pin_hash() -> str:
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        h.update((PIN_DIR / name).read_bytes())
    h.update(SERVER_CONFIG_JS.encode())
    return h.hexdigest()[:12]


def install_dir() -> Path:
    return cache_root() / "showdown" / f"{SHOWDOWN_VERSION}-{_pin_hash()}"


def server_dir() -> Path:
    """The `pokemon-showdown` package folder (where `node pokemon-showdown start` runs)."""
    return install_dir() / "node_modules" / "pokemon-showdown"


def is_installed() -> bool:
    return (install_dir() / _MARKER).exists()


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ShowdownInstallError(
            f"`{tool}` was not found on PATH; install Node.js 20 (it ships `node` and `npm`)."
        )
    return path


def ensure_installed() -> Path:
    """Install the pinned server if it is not cached yet; return the package folder."""
    if is_installed():
        return server_dir()
    _require("node")
    npm = _require("npm")
    final = install_dir()
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be installing the same pin
        if is_installed():
            return server_dir()
        log.info("Installing pokemon-showdown %s into %s (once per version)", SHOWDOWN_VERSION, final)
        tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=final.parent))
        try:
            for name in ("package.json", "package-lock.json"):
                shutil.copy2(PIN_DIR / name, tmp / name)
            cmd = [npm, "ci", "--omit=optional", "--ignore-scripts", "--no-audit", "--no-fund",
                   "--loglevel=error"]
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
            if proc.returncode != 0:
                raise ShowdownInstallError(
                    f"`{' '.join(cmd)}` failed in {tmp} (exit {proc.returncode}):\n"
                    f"{proc.stderr[-3000:]}\nCheck that the npm registry is reachable."
                )
            pkg = tmp / "node_modules" / "pokemon-showdown"
            (pkg / "config" / "config.js").write_text(SERVER_CONFIG_JS)
            (pkg / "config" / "chat-plugins").mkdir(parents=True, exist_ok=True)
            (pkg / "logs" / "repl").mkdir(parents=True, exist_ok=True)
            (tmp / _MARKER).write_text(SHOWDOWN_VERSION + "\n")
            if final.exists():  # a stale, unmarked folder from an interrupted install
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return server_dir()

