"""The direct battle backend: the simulator in a Node process, no server, no websockets.

`BattleSim` runs `battle_pool.js`, which plays many battles at once over stdin/stdout.
`SimPool` spreads battles over several such processes behind the same interface.
`DirectMatch` plays two poke-env players against each other through either: the protocol text each
player would receive from a server's battle room is fed to its own message handler, and what a
player sends (`/choose …`, `/leave …`, `/forfeit`) is routed back to the simulator. Battle-state
tracking, featurizer and recording are therefore the very code of live play on a server.

Every battle is seeded (`battle_seed`): with the players' own choices seeded per decision (see
`Policy` and `RecordingMixin`), the same run seed replays the same battles.

    with BattleSim(log_path) as sim:
        match = DirectMatch(sim, p1, p2, n_battles=100, battle_format="gen1ou", session="i0s0",
                            seed=0, concurrency=10)
        match.run()          # blocks; battles finish through the players' callbacks
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import subprocess
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Coroutine

import orjson
from poke_env.concurrency import POKE_LOOP

from metamon_sp.atomic import write_text
from metamon_sp.showdown.install import ensure_installed
from metamon_sp.showdown.server import peak_rss_bytes

log = logging.getLogger(__name__)

POOL_SCRIPT = Path(__file__).with_name("battle_pool.js")


class SimDied(RuntimeError):
    """The simulator process is gone: its battles in flight are lost; restart and go on."""


class BattleError(RuntimeError):
    """The simulator refused or crashed on one battle."""


def battle_seed(*parts: Any) -> str:
    """A Showdown PRNG seed (`sodium,<32 hex>`) derived from `parts` (run seed, stream, index)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()
    return f"sodium,{digest[:32]}"


def _drive(coro: Coroutine[Any, Any, Any], tag: str,
           on_done: Callable[[], None] | None = None) -> bool:
    """Run a message handler now, as far as it goes without waiting, rather than as a task;
    whether it is done. One that is not goes on when what it waits for is done, as a task
    would, and calls `on_done` when it is.

    A task per message costs more than most messages' handling (a random player decides
    without ever waiting), and a decision made now joins the policy's batch of this turn of the
    loop."""
    try:
        fut = coro.send(None)
    except (StopIteration, asyncio.CancelledError):  # done, or its battle was given up
        return True
    except Exception:  # what a task would have kept: the battle stalls, its timeout ends it
        log.exception("Handling a message of %s failed", tag)
        return True

    def resume(_: Any = None) -> None:
        if _drive(coro, tag, on_done) and on_done is not None:
            on_done()

    if fut is None:  # a bare `yield` (asyncio.sleep(0)): go on in the next turn of the loop
        POKE_LOOP.call_soon(resume)
    else:
        fut._asyncio_future_blocking = False  # the protocol Task follows for an awaited future
        fut.add_done_callback(resume)
    return False


def split_message(tag: str, text: str) -> list[list[str]]:
    """Battle `tag`'s message `text` as poke-env's client splits a room's message for its player
    (`PSClient._handle_message`, whose lock and tests the direct backend does without)."""
    return [[">" + tag], *[m.split("|") for m in text.split("\n")]]


class _Started:
    """`with` starts it and stops it."""

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class BattleSim(_Started):
    """One `battle_pool.js` process; its stderr is appended to `log_path`.

    Its stdin is a pipe only we hold: when this process dies, however it dies, the simulator
    reads EOF and exits, so no orphan outlives us."""

    def __init__(self, log_path: Path | str, formats: tuple[str, ...] = ()):
        self.log_path = Path(log_path)
        self.formats = tuple(formats)  # whose data the process loads as it starts
        self.restarts = 0
        self._proc: subprocess.Popen | None = None
        self._rest = b""
        self._on_rows: Callable[[list[list[str]] | None], None] | None = None
        self._out: list[bytes] = []
        self._pending = b""     # written to the simulator's stdin as the pipe takes it
        self._writing = False   # a writer callback waits for the pipe to drain

    # ----------------------------------------------------------------------- lifecycle
    def command(self) -> tuple[list[str], Path]:
        """The simulator's command line and working folder."""
        pkg = ensure_installed()
        return ["node", str(POOL_SCRIPT), str(pkg), *self.formats], pkg

    def start(self) -> None:
        argv, cwd = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as logf:
            logf.write("\n=== metamon-sp: starting the battle simulator ===\n")
            logf.flush()
            self._proc = subprocess.Popen(
                argv, cwd=cwd, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=logf, start_new_session=True, bufsize=0)
        write_text(self.pid_path, f"{self._proc.pid}\n")
        os.set_blocking(self._proc.stdout.fileno(), False)
        os.set_blocking(self._proc.stdin.fileno(), False)
        self._rest, self._pending, self._writing = b"", b"", False
        # read on POKE_LOOP itself: a reader thread would fight the loop for the GIL
        POKE_LOOP.call_soon_threadsafe(POKE_LOOP.add_reader, self._proc.stdout.fileno(),
                                       self._read, self._proc)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def ensure_started(self) -> None:
        if self._proc is None:
            self.start()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def pid_path(self) -> Path:
        """`<log>.pid` holds the running simulator's pid."""
        return self.log_path.with_suffix(".pid")

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        self.pid_path.unlink(missing_ok=True)
        if proc is None:
            return
        try:
            self._close_stdin(proc)  # the simulator exits on EOF
        except OSError:
            pass
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        self._unwatch(proc)

    @staticmethod
    def _on_loop(fn: Callable[[], Any]) -> None:
        """Run `fn` on POKE_LOOP and wait for it (the loop's selector is not thread-safe)."""
        if getattr(POKE_LOOP, "_thread_id", None) == threading.get_ident():
            fn()
        else:
            done = threading.Event()
            POKE_LOOP.call_soon_threadsafe(lambda: (fn(), done.set()))
            done.wait(5)

    def _close_stdin(self, proc: subprocess.Popen) -> None:
        """Stop writing to `proc` (unsent commands are dropped), then close its stdin: EOF."""
        wfd = proc.stdin.fileno()
        self._on_loop(lambda: POKE_LOOP.remove_writer(wfd))
        self._pending, self._writing = b"", False
        proc.stdin.close()

    def _unwatch(self, proc: subprocess.Popen) -> None:
        """Stop reading `proc`'s stdout before its descriptor is closed (and reused)."""
        fd = proc.stdout.fileno()
        self._on_loop(lambda: POKE_LOOP.remove_reader(fd))
        proc.stdout.close()

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        log.warning("Restarting the battle simulator (restart #%d)", self.restarts)
        self.start()

    def peak_rss_bytes(self) -> int | None:
        return peak_rss_bytes(self._proc.pid) if self.alive() else None

    # ------------------------------------------------------------------------- traffic
    def listen(self, on_rows: Callable[[list[list[str]] | None], None] | None) -> None:
        """Deliver the simulator's output rows to `on_rows` on POKE_LOOP (None: it exited)."""
        self._on_rows = on_rows

    def send(self, command: dict[str, Any]) -> None:
        """Queue a command; commands queued in one turn of the loop go out in one write."""
        self._out.append(orjson.dumps(command))
        if len(self._out) == 1:
            POKE_LOOP.call_soon(self._write)

    def _write(self) -> None:
        if not self._out:
            return
        data, self._out = b"\n".join(self._out) + b"\n", []
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return  # the reader reports the death
        self._pending += data
        if not self._writing:
            self._flush(proc)

    def _flush(self, proc: subprocess.Popen) -> None:
        """Write what the pipe takes now; the rest when it drains. (A blocking write would
        stall every battle's decisions while the simulator is busy.)"""
        fd = proc.stdin.fileno()
        try:
            n = os.write(fd, self._pending)
        except BlockingIOError:
            n = 0
        except OSError:  # the simulator is gone: the reader reports it
            n = len(self._pending)
        self._pending = self._pending[n:]
        if self._pending and not self._writing:
            POKE_LOOP.add_writer(fd, self._flush, proc)
        elif not self._pending and self._writing:
            POKE_LOOP.remove_writer(fd)
        self._writing = bool(self._pending)

    def _read(self, proc: subprocess.Popen) -> None:
        """On POKE_LOOP, whenever the simulator's stdout has data."""
        fd = proc.stdout.fileno()
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:  # EOF: the simulator exited
            POKE_LOOP.remove_reader(fd)
            if self._on_rows is not None and self._proc is proc:
                self._on_rows(None)
            return
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        rows = [orjson.loads(line) for line in lines if line]
        if rows and self._on_rows is not None:
            self._on_rows(rows)

class OnDemandSim(BattleSim):
    """A simulator that starts when first used, not on entering the block (a stage whose
    battles were all played already does not pay for a start)."""

    def __enter__(self) -> "OnDemandSim":
        return self


class SimPool(_Started):
    """Several simulator processes behind one `BattleSim`'s interface: each battle is placed on
    the process with the fewest battles in flight, and every command about it goes there.

    One Python process feeding one simulator waits on it whenever the simulator plays the turns
    just sent (a batched policy answers many battles at once, then has nothing to do until they
    come back); with two, one plays while the other's choices are computed. Battles are seeded
    on their own, so which process plays one does not change it. A death of any process loses
    the battles in flight on all of them (`restart` restarts all), like a single simulator's."""

    def __init__(self, log_path: Path | str, n: int, sim_type: type[BattleSim] = BattleSim,
                 formats: tuple[str, ...] = ()):
        if n < 1:
            raise ValueError(f"a simulator pool needs at least one process, not {n}")
        self.log_path = Path(log_path)
        stem, suffix = self.log_path.stem, self.log_path.suffix
        self.sims = [sim_type(self.log_path.with_name(f"{stem}-s{j}{suffix}") if n > 1
                              else self.log_path, formats=formats) for j in range(n)]
        self.restarts = 0
        self._where: dict[str, BattleSim] = {}    # battle tag -> the process playing it
        self._load = {id(sim): 0 for sim in self.sims}

    # ----------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        for sim in self.sims:
            sim.start()
        self._reset()

    def ensure_started(self) -> None:
        if any(sim.pid is None for sim in self.sims):
            self.start()

    def alive(self) -> bool:
        return all(sim.alive() for sim in self.sims)

    def stop(self, timeout_s: float = 5.0) -> None:
        for sim in self.sims:
            sim.stop(timeout_s)
        self._reset()

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        log.warning("Restarting the battle simulators (restart #%d)", self.restarts)
        self.start()

    def _reset(self) -> None:
        self._where.clear()
        self._load = {id(sim): 0 for sim in self.sims}

    @property
    def pid(self) -> int | None:
        return self.sims[0].pid

    def peak_rss_bytes(self) -> int | None:
        """The largest process's peak (each process holds its own battles)."""
        peaks = [p for sim in self.sims if (p := sim.peak_rss_bytes()) is not None]
        return max(peaks) if peaks else None

    # ------------------------------------------------------------------------- traffic
    def listen(self, on_rows: Callable[[list[list[str]] | None], None] | None) -> None:
        for sim in self.sims:
            sim.listen(on_rows)

    def send(self, command: dict[str, Any]) -> None:
        tag = command.get("id")
        if command.get("t") == "start":
            sim = min(self.sims, key=lambda s: self._load[id(s)])
            self._where[tag] = sim
            self._load[id(sim)] += 1
        else:
            sim = self._where.get(tag, self.sims[0])
            if command.get("t") == "close" and self._where.pop(tag, None) is not None:
                self._load[id(sim)] -= 1
        sim.send(command)


class OnDemandSimPool(SimPool):
    """A pool that starts when first used (see `OnDemandSim`)."""

    def __enter__(self) -> "OnDemandSimPool":
        return self


class DirectMatch:
    """`n_battles` battles between two poke-env players (built with `start_listening=False`)
    on a `BattleSim`, at most `concurrency` at a time. Battle k is seeded with
    `battle_seed(seed, session, k)` and its tag is `battle-<format>-<session>n<k>`."""

    def __init__(self, sim: BattleSim | SimPool, p1: Any, p2: Any, n_battles: int, battle_format: str,
                 session: str, seed: int, concurrency: int, first_index: int = 0):
        if not session.isalnum():
            raise ValueError(f"session {session!r} must be alphanumeric (it is part of tags)")
        self.sim, self.players = sim, {"p1": p1, "p2": p2}
        self.n_battles, self.format, self.session = n_battles, battle_format, session
        self.seed, self.concurrency, self.next_index = seed, concurrency, first_index
        self.started = self.lost = 0
        self._left: dict[str, set[str]] = {}   # tag -> sides that left (saw the end)
        self._done: asyncio.Future | None = None
        self._error: BaseException | None = None
        self._searches: dict[tuple[str, str], asyncio.Future] = {}  # (tag, side) -> answer
        # (tag, side) -> messages that came while one of theirs is still handled (a decision
        # waits): they follow it in order, as poke-env's client's battle lock would have it
        self._waiting: dict[tuple[str, str], list[list[list[str]]]] = {}
        for side, player in self.players.items():
            player.ps_client.send_message = self._router(side)
            attach = getattr(player, "attach_match", None)
            if attach is not None:  # a player that searches in the simulator (search.py)
                attach(self)

    # ---------------------------------------------------------------------- the caller
    def run(self) -> None:
        """Play until `n_battles` battles are finished; raise SimDied if the simulator dies
        (the battles it had in flight are forgotten, finished ones are kept)."""
        self.future().result()

    def future(self) -> Future:
        """Start playing; the returned future completes when every battle has finished."""
        return asyncio.run_coroutine_threadsafe(self._run(), POKE_LOOP)

    def forfeit(self, battle_tag: str, side: str = "p1") -> None:
        """End a battle now (a timeout): `side` loses."""
        POKE_LOOP.call_soon_threadsafe(self.sim.send, {"t": "forfeit", "id": battle_tag,
                                                       "side": side})

    # -------------------------------------------------------------------- on POKE_LOOP
    def search(self, tag: str, side: str, **options: Any) -> asyncio.Future:
        """Ask the simulator to value `side`'s legal choices in battle `tag` now (see
        search.js); the future holds {"choices": [...], "values": [...], "stderrs": [...],
        "samples": [...], "forks": K}."""
        fut = asyncio.get_running_loop().create_future()
        self._searches[(tag, side)] = fut
        self.sim.send({"t": "search", "id": tag, "side": side, **options})
        return fut

    async def _run(self) -> None:
        self._done = asyncio.get_running_loop().create_future()
        self.sim.listen(self._on_rows)
        try:
            self._fill()
            self._check_done()
            await self._done
        finally:
            self.sim.listen(None)
        if self._error is not None:
            raise self._error

    def _fill(self) -> None:
        while len(self._left) < self.concurrency and self.started < self.n_battles:
            k = self.next_index
            self.next_index += 1
            self.started += 1
            tag = f"battle-{self.format}-{self.session}n{k}"
            self._left[tag] = set()
            p1, p2 = self.players["p1"], self.players["p2"]
            self.sim.send({"t": "start", "id": tag, "format": self.format,
                           "seed": battle_seed(self.seed, self.session, k),
                           "p1": [p1.username, p1.next_team], "p2": [p2.username, p2.next_team]})

    def _on_rows(self, rows: list[list[str]] | None) -> None:
        if rows is None:
            self._lose_all(SimDied(f"the battle simulator exited (see {self.sim.log_path})"))
            return
        for tag, kind, text in rows:
            if kind in ("p1", "p2"):
                self._deliver((tag, kind), split_message(tag, text))
            elif kind.startswith("search:"):
                fut = self._searches.pop((tag, kind[7:]), None)
                if fut is not None and not fut.done():
                    fut.set_result(text)
            elif kind == "error":
                if not tag or tag not in self._left:
                    self._lose_all(BattleError(f"the battle simulator failed: {text}"))
                    return
                log.warning("Battle %s failed in the simulator and is dropped: %s", tag, text)
                self._forget(tag)
                if self.lost > max(3, self.n_battles // 10):
                    self._lose_all(BattleError(
                        f"{self.lost} battles failed in the simulator (see {self.sim.log_path}); "
                        f"the last one: {text}"))
                    return
                self._fill()
                self._check_done()

    def _deliver(self, key: tuple[str, str], message: list[list[str]]) -> None:
        waiting = self._waiting.get(key)
        if waiting is not None:
            waiting.append(message)
        elif not _drive(self.players[key[1]]._handle_battle_message(message), key[0],
                        lambda: self._handled(key)):
            self._waiting[key] = []

    def _handled(self, key: tuple[str, str]) -> None:
        # in order: once one of them waits in turn, `_deliver` queues the rest behind it
        for message in self._waiting.pop(key, None) or ():
            self._deliver(key, message)

    def _router(self, side: str) -> Callable[..., Any]:
        async def send_message(message: str, room: str = "", message_2: str | None = None) -> None:
            if message.startswith("/choose "):
                self.sim.send({"t": "choose", "id": room, "side": side, "choice": message[8:]})
            elif message.startswith("/leave "):
                self._leave(message[7:].strip(), side)
            elif message == "/forfeit":
                self.sim.send({"t": "forfeit", "id": room, "side": side})
            # anything else (`/timer on`, …) means nothing without a server
        return send_message

    def _leave(self, tag: str, side: str) -> None:
        left = self._left.get(tag)
        if left is None:
            return
        left.add(side)
        if len(left) == 2:  # both players saw the end and ran their finished callbacks
            del self._left[tag]
            self.sim.send({"t": "close", "id": tag})
            for player in self.players.values():
                # its trajectory is recorded: kept, a battle's log and state would add up over
                # a collection (memory, and each full garbage collection walking them all)
                player._battles.pop(tag, None)
            self._fill()
            self._check_done()

    def _forget(self, tag: str) -> None:
        """A battle that will never finish: release what the players hold for it."""
        if self._left.pop(tag, None) is None:
            return
        self.lost += 1
        self.sim.send({"t": "close", "id": tag})  # harmless if the simulator dropped it already
        for side in ("p1", "p2"):
            fut = self._searches.pop((tag, side), None)
            if fut is not None and not fut.done():
                fut.cancel()
        for player in self.players.values():
            battle = player._battles.pop(tag, None)
            if battle is not None and not battle.finished:
                try:  # the slot poke-env took when the battle started
                    player._battle_count_queue.get_nowait()
                    player._battle_count_queue.task_done()
                except (asyncio.QueueEmpty, ValueError):
                    pass
            forget = getattr(player, "forget_battle", None)
            if forget is not None:
                forget(tag)
        for side in ("p1", "p2"):
            self._waiting.pop((tag, side), None)

    def _lose_all(self, error: BaseException) -> None:
        for tag in list(self._left):
            self._forget(tag)
        self._error = error
        self._check_done(force=True)

    def _check_done(self, force: bool = False) -> None:
        if self._done is None or self._done.done():
            return
        if force or (self.started >= self.n_battles and not self._left):
            self._done.set_result(None)
