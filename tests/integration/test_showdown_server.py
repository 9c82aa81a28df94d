from __future__ import annotations

import os
import signal
import time

import pytest

from metamon_sp.showdown import ShowdownServer

pytestmark = pytest.mark.timeout(120)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on `port` (from /proc/net/tcp)."""
    addrs = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        ip_hex, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            addrs.add(".".join(str(int(ip_hex[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return addrs


def test_server_starts_on_loopback_restarts_and_stops(tmp_path):
    log = tmp_path / "showdown.log"
    with ShowdownServer(log) as server:
        assert server.alive() and server.websocket_url.startswith("ws://127.0.0.1:")
        assert _listening_addresses(server.port) == {"127.0.0.1"}
        assert int(server.pid_path.read_text()) == server.pid
        pid = server.pid
        os.killpg(pid, signal.SIGKILL)
        time.sleep(0.5)
        assert not server.alive()
        assert server.ensure_alive() is True and server.alive() and server.restarts == 1
        assert server.pid != pid
        last_pid = server.pid
    assert not server.alive() and not server.pid_path.exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(last_pid, 0)  # the whole process group is gone
    assert log.read_text().count("starting showdown") == 2
