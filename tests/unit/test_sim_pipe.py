"""The simulator's pipes: commands never block poke-env's loop, and arrive whole and in order.

A stand-in simulator (a Python echo that reads nothing until the test releases it) plays the part
of a busy Node process: what the loop sends while it is busy must queue, not stall every other
battle."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from poke_env.concurrency import POKE_LOOP

from metamon_sp.showdown.direct import BattleSim

ECHO = ("import os, sys, time\n"
        "while not os.path.exists(sys.argv[1]): time.sleep(0.01)\n"
        "for line in sys.stdin.buffer:\n"
        "    sys.stdout.buffer.write(line); sys.stdout.buffer.flush()\n")


class SlowEcho(BattleSim):
    def command(self) -> tuple[list[str], Path]:
        return [sys.executable, "-c", ECHO, str(self.log_path.parent / "go")], self.log_path.parent


def test_commands_queue_while_the_simulator_is_busy_and_arrive_in_order(tmp_path):
    n, pad = 2000, "x" * 200  # ~450 KB: several times what a pipe holds
    got: list[dict] = []
    finished = threading.Event()

    def on_rows(rows):
        if rows:
            got.extend(rows)
            if len(got) >= n:
                finished.set()

    sim = SlowEcho(tmp_path / "sim.log")
    sim.start()
    sim.listen(on_rows)
    try:
        sent, queued = threading.Event(), []

        def send_all():
            for i in range(n):
                sim.send({"i": i, "pad": pad})
                sim._write()  # flush each command on its own: the worst case for a full pipe
            queued.append(len(sim._pending))
            sent.set()

        POKE_LOOP.call_soon_threadsafe(send_all)
        # the echo reads nothing until released: a blocking write would hold the loop until then
        assert sent.wait(20), "sending never finished while the simulator was busy: the loop blocked"
        assert queued[0] > 0, "the pipe took everything: the test did not fill it"
        (tmp_path / "go").touch()
        assert finished.wait(20), f"{len(got)} of {n} commands came back"
        assert [r["i"] for r in got] == list(range(n))
        assert sim._pending == b"" and not sim._writing
    finally:
        sim.listen(None)
        sim.stop()
