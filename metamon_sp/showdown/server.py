"""A local Pokémon Showdown server: started on 127.0.0.1, ready on `|challstr|`, always stopped.

    with ShowdownServer(log_path=run_dir / "showdown.log") as server:
        server.websocket_url   # ws://127.0.0.1:PORT/showdown/websocket
        server.ensure_alive()  # restarts it (on a fresh port) if it died; True if it did
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from metamon_sp.atomic import write_text
from metamon_sp.showdown.install import ensure_installed

log = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("launch_server.js")


class ShowdownServerError(RuntimeError):
    pass


def free_port() -> int:
    """A port the OS says is free on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_challstr(url: str, deadline: float) -> None:
    # TCP accepting is not enough: the first websocket waits 2-3 s for |challstr|.
    from websockets.sync.client import connect

    with connect(url, open_timeout=max(0.1, deadline - time.monotonic())) as ws:
        while time.monotonic() < deadline:
            msg = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            if "|challstr|" in msg:
                return
    raise TimeoutError("no |challstr| before the deadline")


def peak_rss_bytes(pid: int) -> int | None:
    """A running process's peak resident memory so far (VmHWM)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class ShowdownServer:
    """One server process in its own process group, its output appended to `log_path`."""

    def __init__(self, log_path: Path | str, ready_timeout_s: float = 30.0):
        self.log_path = Path(log_path)
        self.ready_timeout_s = ready_timeout_s
        self.port: int | None = None
        self.restarts = 0
        self._proc: subprocess.Popen | None = None

    @property
    def websocket_url(self) -> str:
        if self.port is None:
            raise ShowdownServerError("the server is not started")
        return f"ws://127.0.0.1:{self.port}/showdown/websocket"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        pkg = ensure_installed()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        last_error: Exception | None = None
        for _ in range(3):  # a port taken between free_port() and listen() makes it exit: retry
            self.port = free_port()
            with open(self.log_path, "a") as logf:
                logf.write(f"\n=== metamon-sp: starting showdown on 127.0.0.1:{self.port} ===\n")
                logf.flush()
                # stdin is a pipe only we hold: when this process dies, however it dies, the
                # server reads EOF and exits (launch_server.js), so no orphan outlives us.
                self._proc = subprocess.Popen(
                    ["node", str(LAUNCHER), str(pkg), "start", "--no-security", "--skip-build",
                     str(self.port)],
                    cwd=pkg, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.PIPE,
                    start_new_session=True,  # its own process group, stopped as one
                )
            try:
                self._wait_ready()
                log.info("Showdown ready on port %d (pid %d)", self.port, self._proc.pid)
                write_text(self.pid_path, f"{self._proc.pid}\n")
                return
            except ShowdownServerError as e:
                last_error = e
                self.stop()
        raise ShowdownServerError(f"{last_error}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise ShowdownServerError(
                    f"Showdown exited during start (code {self._proc.returncode}); "
                    f"its log {self.log_path} ends with:\n{self.log_tail()}"
                )
            try:
                _wait_for_challstr(self.websocket_url, deadline)
                return
            except (OSError, TimeoutError):
                time.sleep(0.2)
            except Exception as e:  # websockets' handshake errors while the server boots
                log.debug("Showdown not ready yet: %s", e)
                time.sleep(0.2)
        raise ShowdownServerError(
            f"Showdown did not send |challstr| within {self.ready_timeout_s:.0f}s on port "
            f"{self.port}; see {self.log_path}:\n{self.log_tail()}"
        )

    @property
    def pid_path(self) -> Path:
        """`<log>.pid` holds the running server's pid (its process group id too)."""
        return self.log_path.with_suffix(".pid")

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        self.pid_path.unlink(missing_ok=True)
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                pass
        else:  # the leader died; make sure nothing of its group lingers
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        log.warning("Restarting Showdown (restart #%d)", self.restarts)
        self.start()

    def ensure_alive(self) -> bool:
        """Restart the server if it died; return whether it was restarted."""
        if self.alive():
            return False
        self.restart()
        return True

    def peak_rss_bytes(self) -> int | None:
        """The server's peak resident memory so far (VmHWM), while it runs."""
        return peak_rss_bytes(self._proc.pid) if self.alive() else None

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "ShowdownServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class OnDemandServer(ShowdownServer):
    """A server that starts when first asked for its address, not on entering the block: a
    stage whose games were all played already (by tasks fanned out beforehand, or by an
    interrupted earlier run) does not pay for a start."""

    def __enter__(self) -> "OnDemandServer":
        return self

    @property
    def websocket_url(self) -> str:
        if self._proc is None:
            self.start()
        return ShowdownServer.websocket_url.fget(self)
