"""The simulator's pipes: commands never block poke-env's loop, and arrive whole and in order.

A stand-in simulator (a Python echo that sleeps before reading) plays the part of a busy Node
process: what the loop sends while it is busy must queue, not stall every other battle."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from poke_env.concurrency import POKE_LOOP

from metamon_sp.showdown.direct import BattleSim

ECHO = ("import sys, time\n"
        "time.sleep(1.0)\n"
        "for line in sys.stdin.buffer:\n"
        "    sys.stdout.buffer.write(line); sys.stdout.buffer.flush()\n")


class SlowEcho(BattleSim):
    def command(self) -> tuple[list[str], Path]:
        return [sys.executable, "-c", ECHO], self.log_path.parent


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
        took: list[float] = []

        def send_all():
            t0 = time.monotonic()
            for i in range(n):
                sim.send({"i": i, "pad": pad})
                sim._write()  # flush each command on its own: the worst case for a full pipe
            took.append(time.monotonic() - t0)

        POKE_LOOP.call_soon_threadsafe(send_all)
        assert finished.wait(20), f"{len(got)} of {n} commands came back"
        # the echo read nothing for a second: a blocking write would have held the loop as long
        assert took and took[0] < 0.5, f"sending took {took} s: the loop blocked on the pipe"
        assert [r["i"] for r in got] == list(range(n))
        assert sim._pending == b"" and not sim._writing
    finally:
        sim.listen(None)
        sim.stop()
