"""The featurizer's time per decision on the recorded battles, and against an older revision.

    python benchmarks/featurizer.py [--against REV] [--repeats 20]

Replays the recorded Gen 1 OU battles (tests/fixtures, every decision of both sides, tracked as
players track them) and times `featurize` on each decision. With `--against REV`, the featurizer
and damage estimates of git revision REV run on the same decisions, interleaved with today's
(the order alternates by round, as this machine's speed drifts over minutes), and every array
both return is compared: a speed-up counts only if they are identical.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIELDS = ("num", "cat", "mask", "facts")


def module_at(rev: str, folder: Path) -> ModuleType:
    """`metamon_sp.features` as of `rev`, importing `damage` as of `rev` too."""
    def show(path: str) -> str:
        try:
            return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True,
                                  capture_output=True, text=True).stdout
        except subprocess.CalledProcessError as e:
            raise SystemExit(f"--against {rev}: git cannot show {path} ({e.stderr.strip()})")
    features = show("metamon_sp/features.py")
    line = "from metamon_sp import damage, dex"
    if line not in features:
        raise SystemExit(f"--against {rev}: its features.py does not import damage as "
                         f"`{line}`; compare with a newer revision")
    (folder / "damage_at_rev.py").write_text(show("metamon_sp/damage.py"))
    (folder / "features_at_rev.py").write_text(
        features.replace(line, "from metamon_sp import dex\nimport damage_at_rev as damage"))
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location("features_at_rev", folder / "features_at_rev.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["features_at_rev"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--against", help="a git revision to compare with (e.g. HEAD~1)")
    ap.add_argument("--repeats", type=int, default=20, help="rounds over every decision")
    args = ap.parse_args()

    import logging

    logging.getLogger("replay").setLevel(logging.ERROR)  # poke-env's notes on odd messages
    from metamon_sp import features
    from tests.replay import battle_logs, decisions

    with tempfile.TemporaryDirectory() as tmp:
        mods = {"today": features}
        if args.against:
            mods[args.against] = module_at(args.against, Path(tmp))
        logs = battle_logs()
        seconds = {name: 0.0 for name in mods}
        n = differing = 0
        for rnd in range(args.repeats):
            order = list(mods.items()) if rnd % 2 == 0 else list(mods.items())[::-1]
            for log in logs:
                for battle in decisions(log, lean=True):
                    outs = {}
                    for name, mod in order:
                        t0 = time.perf_counter()
                        outs[name] = mod.featurize(battle)
                        seconds[name] += time.perf_counter() - t0
                    if rnd == 0:
                        n += 1
                        if len(outs) == 2:
                            a, b = outs.values()
                            differing += not all(np.array_equal(getattr(a, f), getattr(b, f))
                                                 for f in FIELDS)
    print(f"{n} decisions of {len(logs)} recorded battle sides, {args.repeats} rounds")
    for name, s in seconds.items():
        print(f"  {name:>10}: {s / (n * args.repeats) * 1e6:7.1f} µs per decision")
    if args.against:
        print(f"  today / {args.against}: {seconds['today'] / seconds[args.against]:.2f}× the time; "
              f"decisions with any array different: {differing}")
        if differing:
            sys.exit(1)


if __name__ == "__main__":
    main()
