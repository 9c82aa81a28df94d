"""`metamon-sp COMMAND [key=value ...]`: every command takes Hydra overrides as trailing arguments.

A few keys are the command's inputs and outputs rather than config (`out=`, `data=`); everything
else is composed into the typed config, so a typo fails before anything runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from metamon_sp.config import Config, ConfigError, load_config

log = logging.getLogger("metamon_sp")

POSITIONAL = {"report": "RUN_DIR", "compare": "RUN_DIR"}  # commands taking run folders
COMMANDS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    # name: (help, required io keys, optional io keys)
    "collect": ("play and record battles into a dataset folder", ("out",), ()),
    "filter": ("filter recorded datasets into a new one", ("data", "out"), ()),
    "train": ("train the learner on datasets, from a checkpoint or from scratch",
              ("data", "out"), ("init",)),
    "bootstrap": ("generation 0: heuristic battles, then the learner from scratch", ("out",), ()),
    "evaluate": ("win rates of a player against opponents, with intervals",
                 ("player", "out"), ("opponents",)),
    "selfplay": ("the whole pipeline without Prefect: generation 0, then `generations` rounds of "
                 "collect, filter, train, evaluate, elo", (), ("init",)),
    "report": ("Markdown + plots of a run: Elo, win rates, reference, probes, curves", (), ()),
    "compare": ("rate several runs on one scale and say whether they differ", (), ("out",)),
    "study": ("arms x seeds from one generation 0, rated on one scale, with a verdict that "
              "accounts for seed variance (study=damping or study=reward)", (), ("seeds",)),
    "config": ("print the resolved config (and its hash)", (), ()),
    "validate-teams": ("check every team of `team_set`, `eval.team_set` and `gate.team_set` with "
                       "Showdown's validator", (), ()),
    "install-showdown": ("install the pinned Showdown server into the cache", (), ()),
}


class UsageError(ValueError):
    pass


def split_args(command: str, args: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Separate the command's io keys (`out=DIR`) and run folders from Hydra overrides."""
    _, required, optional = COMMANDS[command]
    io_keys = set(required) | set(optional)
    io: dict[str, str] = {}
    overrides: list[str] = []
    positional: list[str] = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep and command in POSITIONAL:
            positional.append(arg)
            continue
        if not sep:
            raise UsageError(f"argument {arg!r} is not of the form key=value.")
        if key in io_keys:
            io[key] = value
        else:
            overrides.append(arg)
    if command in POSITIONAL:
        if not positional:
            raise UsageError(f"`metamon-sp {command}` needs {POSITIONAL[command]} (one or more).")
        io["runs"] = ",".join(positional)
    missing = [k for k in required if not io.get(k)]
    if missing:
        raise UsageError(f"`metamon-sp {command}` needs " + " and ".join(f"{k}=DIR" for k in missing)
                         + ".")
    return io, overrides


def _print_collect(summary: dict) -> None:
    print(f"battles: {summary['battles']} ({summary['battles_played']} played now)")
    print(f"battles/s: {summary['battles_per_s']:.2f}")
    print(f"p1 win rate ({summary['p1']} vs {summary['p2']}): {summary['p1_win_rate']:.3f}")
    print(f"invalid-order rate: {summary['invalid_rate']:.4f} "
          f"({summary['invalid_actions']} of {summary['decisions']} decisions)")


def _print_filter(report: dict) -> None:
    out = report["output"]
    print(f"kept {report['kept_trajectories']} of {report['input_trajectories']} trajectories "
          f"(wins {out['wins']}, losses {out['losses']}); dropped: {report['dropped'] or 'none'}")


def cmd_collect(cfg: Config, io: dict[str, str]) -> None:
    from metamon_sp.collect import collect

    _print_collect(collect(cfg, Path(io["out"])))
    print(f"dataset: {io['out']}")


def _data_dirs(value: str) -> list[Path]:
    return [Path(p) for p in value.split(",") if p]


def cmd_filter(cfg: Config, io: dict[str, str]) -> None:
    from metamon_sp.filter import filter_datasets

    _print_filter(filter_datasets(cfg, _data_dirs(io["data"]), Path(io["out"])))
    print(f"dataset: {io['out']}")


def cmd_train(cfg: Config, io: dict[str, str]) -> None:
    from metamon_sp.train import SUMMARY, train

    init = io.get("init")
    ckpt = train(cfg, _data_dirs(io["data"]), Path(io["out"]),
                 init=None if init in (None, "", "none") else Path(init))
    summary = json.loads((Path(io["out"]) / SUMMARY).read_text())
    print(f"trained {summary['steps']} steps ({summary['timesteps_per_s']:.0f} timesteps/s on "
          f"{summary['device']}); critic loss {summary.get('train/critic_loss', float('nan')):.4f}, "
          f"entropy {summary.get('train/entropy', float('nan')):.3f}")
    print(f"checkpoint: {ckpt}")


def cmd_bootstrap(cfg: Config, io: dict[str, str]) -> None:
    from metamon_sp.bootstrap import bootstrap

    print(f"checkpoint: {bootstrap(cfg, Path(io['out']))}")


def _list_arg(value: str) -> list[str]:
    """`[a,b]`, `a,b` or `a` (Hydra-style list syntax on the command line)."""
    return [v.strip().strip("'\"") for v in value.strip().strip("[]").split(",") if v.strip()]


def cmd_evaluate(cfg: Config, io: dict[str, str]) -> None:
    from metamon_sp.evaluate import evaluate

    opponents = _list_arg(io["opponents"]) if io.get("opponents") else cfg.eval.opponents
    summary = evaluate(cfg, io["player"], opponents, cfg.eval.battles, Path(io["out"]))
    for name, s in summary["opponents"].items():
        print(f"{summary['player']} vs {name}: win rate {s['win_rate']:.3f} "
              f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}] ({s['wins']}-{s['losses']}-{s['ties']}), "
              f"valid actions {s['valid_action_rate']:.4f}, mean turns {s['mean_turns']}")
    print(f"summary: {Path(io['out']) / 'summary.json'}")


def cmd_selfplay(cfg: Config, io: dict[str, str]) -> None:
    from metamon_sp.pipeline import run_selfplay
    from metamon_sp.report import build_report

    run = run_selfplay(cfg, init_checkpoint=io.get("init") or None)
    print((run.dir / "ratings.md").read_text())
    print(f"run: {run.dir}\nreport: {build_report(run.dir)}")


def cmd_report(cfg: Config, io: dict[str, str]) -> None:
    from metamon_sp.report import build_report

    for run_dir in io["runs"].split(","):
        print(f"report: {build_report(run_dir)}")


def cmd_compare(cfg: Config, io: dict[str, str]) -> None:
    from metamon_sp.compare import compare

    runs = io["runs"].split(",")
    out = Path(io.get("out") or Path(runs[0]).parent / "compare")
    path = compare(cfg, runs, out)
    text = path.read_text()
    print(text[text.index("## Verdict"):text.index("## Ratings")].strip())
    print(f"comparison: {path}")


def cmd_study(overrides: list[str], io: dict[str, str]) -> None:
    from metamon_sp.report import build_report
    from metamon_sp.study import VERDICT, plan_study, run_study, study_runs

    plan = plan_study(overrides + ([f"study.seeds={io['seeds']}"] if "seeds" in io else []))
    print(f"study: {plan.dir} ({len(plan.arms)} arms x {len(plan.seeds)} seeds x "
          f"{plan.generations} generations)", flush=True)
    run_study(plan)
    for members in study_runs(plan).values():
        for _, run in members:
            build_report(run.dir)
    text = (plan.dir / f"{VERDICT}.md").read_text()
    print(text[text.index("## Verdict"):text.index("## Ratings on one scale")].strip())
    print(f"verdict: {plan.dir / VERDICT}.md")


def cmd_config(cfg: Config, io: dict[str, str]) -> None:
    print(json.dumps(cfg.to_dict(), indent=2))
    print(f"config hash: {cfg.hash()}")


def cmd_validate_teams(cfg: Config, io: dict[str, str]) -> None:
    from metamon_sp.teams import load_team_set, validate_team_set

    for key, name in (("team_set", cfg.team_set), ("eval.team_set", cfg.eval.team_set),
                      ("gate.team_set", cfg.gate.team_set)):
        teams = load_team_set(name)
        validate_team_set(teams, cfg.format)
        print(f"all {len(teams)} teams of {name} ({key}) are legal in {cfg.format}")


def cmd_install_showdown(cfg: Config, io: dict[str, str]) -> None:
    from metamon_sp.showdown import ensure_installed

    print(ensure_installed())


HANDLERS: dict[str, Callable[[Config, dict[str, str]], None]] = {
    "collect": cmd_collect, "filter": cmd_filter, "train": cmd_train, "bootstrap": cmd_bootstrap,
    "evaluate": cmd_evaluate, "selfplay": cmd_selfplay, "report": cmd_report,
    "compare": cmd_compare, "config": cmd_config,
    "validate-teams": cmd_validate_teams, "install-showdown": cmd_install_showdown,
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="metamon-sp", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_, required, _) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("args", nargs="*", metavar=f"{POSITIONAL[name]} key=value"
                        if name in POSITIONAL else "key=value",
                        help="Hydra overrides" + (f"; needs {', '.join(k + '=' for k in required)}"
                                                  if required else ""))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if ns.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.DEBUG if ns.verbose else logging.INFO)
    try:
        io, overrides = split_args(ns.command, ns.args)
        if ns.command == "study":  # composes one config per arm and seed itself
            cmd_study(overrides, io)
            return 0
        cfg = load_config(overrides)
        HANDLERS[ns.command](cfg, io)
    except (UsageError, ConfigError) as e:
        print(f"metamon-sp {ns.command}: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a library error with a clear message: no traceback for users
        from metamon_sp.errors import USER_ERRORS

        if isinstance(e, USER_ERRORS) and not ns.verbose:
            print(f"metamon-sp {ns.command}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
