"""Python's cost per decision, without the simulator: a recorded simulator answers the players.

    python benchmarks/decision_cost.py [--workload random|policy] [--battles 200]
        [--checkpoint PATH] [--against REV] [--rounds 3] [--record FILE]

One collection on the direct backend (concurrency 32, both sides recorded) first writes down
what the simulator answered to each command of each battle. The same collection is then played
again against a recorded simulator, which answers every command with the rows the Node process
sent after it, in the next turn of the loop and at no cost: the time is Python's alone (message
handling, battle tracking, featurizing, inference, recording, shards), measured without the
machine's other core or the simulator's timing in it. Every replayed command must be the
recorded one (the same decisions), or the record does not fit the code and the run says so.

With `--against REV`, REV's code (exported with `git archive`) replays the same record in rounds
alternating with today's, each in a fresh process: the ratio of their times is a speed-up
measured on identical decisions. (A simulator that answers at once batches a policy's decisions
differently from the real one; compare policy figures between revisions, not with battles.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # its sibling modules, also when loaded by path (tests)
from revision import export_revision  # noqa: E402

ROOT = HERE.parent


def _overrides(p1: str, p2: str, battles: int) -> list[str]:
    return [f"collect.p1={p1}", f"collect.p2={p2}", f"collect.battles={battles}",
            "collect.backend=direct", "collect.parallel_instances=1", "collect.concurrency=32",
            "policy.batched=true"]


def _command_key(command: dict[str, Any]) -> str:
    return f"{command.get('t')} {command.get('side', '')} {command.get('choice', '')}".strip()


@contextmanager
def _backend(sim_class: type) -> Iterator[None]:
    """`collect` plays on a `sim_class` (a `BattleSim`) while in the block."""
    import metamon_sp.collect as collect_mod

    before = collect_mod.open_backend
    collect_mod.open_backend = lambda cfg, log_dir, suffix="": sim_class(
        Path(log_dir) / f"sim{suffix}.log")
    try:
        yield
    finally:
        collect_mod.open_backend = before


def record(p1: str, p2: str, battles: int, path: Path) -> dict[str, Any]:
    """Play one collection on the real simulator; write, per battle, each command and the rows
    that followed it (until that battle's next command)."""
    import metamon_sp.collect as collect_mod
    from metamon_sp.config import load_config
    from metamon_sp.showdown.direct import BattleSim

    answers: dict[str, list[list[Any]]] = defaultdict(list)  # tag -> [[command, rows], ...]

    class RecordingSim(BattleSim):
        def send(self, command: dict[str, Any]) -> None:
            answers[command["id"]].append([_command_key(command), []])
            super().send(command)

        def listen(self, on_rows: Any) -> None:
            def rows_seen(rows: list[list[str]] | None) -> None:
                for row in rows or ():
                    if answers.get(row[0]):
                        answers[row[0]][-1][1].append(row)
                on_rows(rows)
            super().listen(rows_seen if on_rows is not None else None)

    cfg = load_config(_overrides(p1, p2, battles))
    with tempfile.TemporaryDirectory() as out, _backend(RecordingSim):
        s = collect_mod.collect(cfg, Path(out), show_progress=False)
    rec = {"p1": p1, "p2": p2, "battles": s["battles"], "decisions": s["decisions"],
           "answers": answers}
    path.write_text(json.dumps(rec))
    return rec


def replay(path: Path) -> dict[str, Any]:
    """Play the recorded collection again against the recorded simulator; Python's time."""
    import metamon_sp.collect as collect_mod
    from metamon_sp.config import load_config
    from metamon_sp.showdown.direct import BattleSim
    from poke_env.concurrency import POKE_LOOP

    rec = json.loads(path.read_text())
    answers = rec["answers"]
    sent: dict[str, int] = defaultdict(int)
    misfits: list[str] = []

    class RecordedSim(BattleSim):
        """Answers each command with the rows the real simulator sent after it."""

        def __init__(self, log_path: Path):
            super().__init__(log_path)
            self._due: list[list[str]] = []

        def start(self) -> None:
            pass

        def ensure_started(self) -> None:
            pass

        def stop(self, timeout_s: float = 5.0) -> None:
            pass

        def alive(self) -> bool:
            return True

        def peak_rss_bytes(self) -> int | None:
            return None

        def send(self, command: dict[str, Any]) -> None:
            tag = command["id"]
            k = sent[tag]
            sent[tag] += 1
            recorded = answers.get(tag, [])
            if k >= len(recorded) or recorded[k][0] != _command_key(command):
                misfits.append(f"{tag} #{k}: {_command_key(command)!r}, recorded "
                               f"{recorded[k][0] if k < len(recorded) else 'nothing'!r}")
                if k >= len(recorded):
                    return  # (what was recorded goes on regardless: no battle waits forever)
            if not self._due:
                POKE_LOOP.call_soon(self._deliver)
            self._due += recorded[k][1]

        def _deliver(self) -> None:
            rows, self._due = self._due, []
            if rows and self._on_rows is not None:
                self._on_rows(rows)

    cfg = load_config(_overrides(rec["p1"], rec["p2"], rec["battles"]))
    if rec["p1"].startswith("checkpoint:"):
        # torch, imported outside the timing: revisions before `PlayClock` counted importing it
        # (~2 s) in the play time, later ones do not
        import metamon_sp.policy  # noqa: F401
    cpu = threading.Event()
    loop_cpu: list[float] = []
    POKE_LOOP.call_soon_threadsafe(lambda: (loop_cpu.append(time.thread_time()), cpu.set()))
    cpu.wait(5)
    cpu0 = time.process_time()
    with tempfile.TemporaryDirectory() as out, _backend(RecordedSim):
        s = collect_mod.collect(cfg, Path(out), show_progress=False)
    cpu1 = time.process_time()
    cpu.clear()
    POKE_LOOP.call_soon_threadsafe(lambda: (loop_cpu.append(time.thread_time()), cpu.set()))
    cpu.wait(5)
    fits = not misfits and s["decisions"] == rec["decisions"] and s["battles"] == rec["battles"]
    return {"fits": fits, "misfits": misfits[:3], "decisions": s["decisions"],
            "battles": s["battles"], "us_per_decision": 1e6 * s["play_seconds"] / s["decisions"],
            "python_cpu_us_per_decision": 1e6 * (cpu1 - cpu0) / s["decisions"],
            "loop_cpu_us_per_decision": 1e6 * (loop_cpu[1] - loop_cpu[0]) / s["decisions"]}


def _replay_in(tree: Path, record_path: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = subprocess.run([sys.executable, __file__, "--replay-one", str(record_path)],
                          cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"replaying in {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", choices=("random", "policy"), default="random")
    ap.add_argument("--checkpoint", help="the policy (default: a freshly initialised tiny model)")
    ap.add_argument("--battles", type=int, default=200)
    ap.add_argument("--against", help="a git revision to compare with (e.g. HEAD~1)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--record", help="keep the record here (reused if it exists)")
    ap.add_argument("--replay-one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.replay_one:
        print(json.dumps(replay(Path(args.replay_one))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        record_path = Path(args.record) if args.record else Path(tmp) / "record.json"
        if not record_path.exists():
            if args.workload == "policy":
                from battle_backends import fresh_checkpoint

                ckpt = args.checkpoint or fresh_checkpoint(Path(tmp))
                p1, p2 = f"checkpoint:{Path(ckpt).resolve()}", "self"
            else:
                p1 = p2 = "random"
            rec = record(p1, p2, args.battles, record_path)
            print(f"recorded {rec['battles']} battles, {rec['decisions']} decisions",
                  file=sys.stderr)
        trees = {"today": ROOT}
        if args.against:
            trees[args.against] = export_revision(args.against, Path(tmp) / "rev", "--against")
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for r in range(args.rounds):
            for name in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
                res = _replay_in(trees[name], record_path)
                if not res["fits"]:
                    sys.exit(f"{name}'s code does not replay the record (other decisions): "
                             f"{res['misfits'] or res}")
                runs[name].append(res)
                print(json.dumps({"code": name, **res}), file=sys.stderr, flush=True)
    keys = ("us_per_decision", "python_cpu_us_per_decision", "loop_cpu_us_per_decision")
    print(f"{args.workload}: median of {args.rounds} replays, {runs['today'][0]['decisions']} "
          f"decisions in {runs['today'][0]['battles']} battles")
    print("| code | " + " | ".join(keys) + " | decisions/s (Python alone) |")
    print("|---|" + "---|" * (len(keys) + 1))
    med = {name: {k: statistics.median(r[k] for r in rs) for k in keys}
           for name, rs in runs.items()}
    for name, m in med.items():
        print(f"| {name} | " + " | ".join(f"{m[k]:.0f}" for k in keys)
              + f" | {1e6 / m['us_per_decision']:.0f} |")
    if args.against:
        ratio = med["today"]["us_per_decision"] / med[args.against]["us_per_decision"]
        print(f"today / {args.against}: {ratio:.3f}× the time per decision")


if __name__ == "__main__":
    main()
