"""Run reports: Markdown + PNG plots answering "does each generation get stronger?".

    metamon-sp report RUN_DIR   →   RUN_DIR/report/{report.md, elo.png, deltas.png, winrates.png,
                                                    reference.png, training.png}

Elo by generation with intervals, and each generation's paired Elo difference from the previous
one and from gen 0 (intervals from resampled mirrored team pairs: far narrower than those of the
absolute ratings, whose anchor's noise they share); win rate against each baseline by generation;
head-to-head against the reference checkpoint (beating heuristics is not enough: a fine-tune can
beat every heuristic and still lose to its own base model); entropy, KL and learning-rate curves;
and the behaviour probes by generation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from metamon_sp import atomic
from metamon_sp.config import DampingConfig
from metamon_sp.damping import controller_checks
from metamon_sp.elo import DELTAS_TITLE, deltas_markdown
from metamon_sp.gate import GATE_DIR, RECORD
from metamon_sp.pipeline import Run
from metamon_sp.results import label
from metamon_sp.tracking import read_metrics

REPORT_DIR = "report"
CURVES = (("train/entropy", "entropy"), ("damping/kl_ref", "KL(π‖π_ref)"),
          ("damping/kl_step", "KL per step"), ("train/lr", "learning rate"))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def gen_name(run: Run, k: int) -> str:
    return label(run.spec(k))


def collect_run(run_dir: Path | str) -> dict[str, Any]:
    """Everything a report needs, read from a run folder."""
    run = Run(Path(run_dir))
    gens = run.generations()
    if not gens:
        raise FileNotFoundError(f"{run.dir} has no generation with a checkpoint; is it a run folder "
                                f"(runs_dir/<run_name>-<hash>)?")
    ratings = _read(run.dir / "ratings.json") or {"ratings": []}
    return {
        "run": run, "gens": gens,
        "names": {k: gen_name(run, k) for k in gens},
        "ratings": {r["player"]: r for r in ratings["ratings"]},
        "ratings_doc": ratings,
        "evals": {k: _read(run.gen(k) / "eval" / "summary.json") for k in gens},
        "probes": {k: _read(run.gen(k) / "eval" / "probes.json") for k in gens},
        "diagnostics": {k: _read(run.gen(k) / "eval" / "diagnostics.json") for k in gens},
        "gates": {k: _read(run.gen(k) / GATE_DIR / RECORD) for k in gens},
        "metrics": {k: read_metrics(run.gen(k) / "train" / "metrics.jsonl")
                    if (run.gen(k) / "train" / "metrics.jsonl").exists() else [] for k in gens},
        "config": _read(run.dir / "config.json") or {},
    }


def plot_elo(d: dict[str, Any], path: Path, baselines: list[str]) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [k for k in d["gens"] if d["names"][k] in d["ratings"]]
    rs = [d["ratings"][d["names"][k]] for k in xs]
    ax.errorbar(xs, [r["elo"] for r in rs], yerr=[[r["elo"] - r["ci_low"] for r in rs],
                                                  [r["ci_high"] - r["elo"] for r in rs]],
                marker="o", capsize=4, label="generation")
    for b in baselines:
        if b in d["ratings"]:
            ax.axhline(d["ratings"][b]["elo"], ls="--", lw=1, color="grey")
            ax.text(xs[-1] if xs else 0, d["ratings"][b]["elo"], f" {b}", va="bottom", fontsize=8)
    ax.set_xlabel("generation")
    ax.set_ylabel("Elo (95% bootstrap interval)")
    ax.set_xticks(d["gens"])
    ax.set_title("Elo by generation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_deltas(d: dict[str, Any], path: Path) -> None:
    """Per generation k ≥ 1: Elo(k) − Elo(k−1) and Elo(k) − Elo(0), paired 95% intervals."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    gen_of = {name: k for k, name in d["names"].items()}
    rows = [(gen_of[r["player"]], r) for r in d["ratings_doc"].get("deltas", [])
            if r["player"] in gen_of]
    for key, shift, title in (("vs_previous", -0.08, "Δ vs previous generation"),
                              ("vs_gen0", 0.08, "Δ vs gen 0")):
        pts = [(k, r[key], r[f"{key}_ci"]) for k, r in rows if r[key] is not None]
        if pts:  # a percentile interval need not hold the point; matplotlib wants yerr ≥ 0
            ax.errorbar([k + shift for k, _, _ in pts], [y for _, y, _ in pts],
                        yerr=[[max(0.0, y - ci[0]) for _, y, ci in pts],
                              [max(0.0, ci[1] - y) for _, y, ci in pts]],
                        marker="o", ls="none", capsize=4, label=title)
    ax.axhline(0, color="grey", lw=1)
    ax.set_xticks(d["gens"])
    ax.set_xlabel("generation")
    ax.set_ylabel("Elo difference (paired 95% interval)")
    ax.set_title("Paired Elo differences by generation")
    _legend(ax, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_winrates(d: dict[str, Any], path: Path, opponents: list[str], title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for opp in opponents:
        pts = [(k, d["evals"][k]["opponents"][opp]) for k in d["gens"]
               if d["evals"][k] and opp in d["evals"][k]["opponents"]]
        if not pts:
            continue
        xs = [k for k, _ in pts]
        ys = [s["win_rate"] for _, s in pts]
        ax.errorbar(xs, ys, yerr=[[s["win_rate"] - s["ci_low"] for _, s in pts],
                                  [s["ci_high"] - s["win_rate"] for _, s in pts]],
                    marker="o", capsize=4, label=opp)
    ax.axhline(0.5, ls=":", color="grey", lw=1)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(d["gens"])
    ax.set_xlabel("generation")
    ax.set_ylabel("win rate (95% Wilson interval)")
    ax.set_title(title)
    _legend(ax, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training(d: dict[str, Any], path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True)
    offset = 0
    for k in d["gens"]:
        rows = d["metrics"][k]
        if not rows:
            continue
        steps = [offset + r["step"] for r in rows]
        for ax, (key, title) in zip(axes.flat, CURVES):
            pts = [(x, r[key]) for x, r in zip(steps, rows) if key in r]  # some are sparse
            ax.plot([x for x, _ in pts], [y for _, y in pts], lw=0.8, label=f"gen {k}")
            ax.set_title(title, fontsize=9)
        ema = [(x, r["damping/kl_ema"]) for x, r in zip(steps, rows) if "damping/kl_ema" in r]
        if ema:  # what the controller steers by, over the per-step KL it smooths
            axes.flat[2].plot([x for x, _ in ema], [y for _, y in ema], lw=1.2, color="black")
            actor = [(x, r["train/lr_actor"]) for x, r in zip(steps, rows) if "train/lr_actor" in r]
            axes.flat[3].plot([x for x, _ in actor], [y for _, y in actor], lw=0.8, ls="--",
                              color="black")
        fired = next((x for x, r in zip(steps, rows) if r.get("damping/entropy_collapse")), None)
        if fired is not None:
            axes.flat[0].axvline(fired, color="red", lw=1.0)
            axes.flat[0].annotate("entropy collapse", (fired, 0.95), color="red", fontsize=7,
                                  xycoords=("data", "axes fraction"), ha="left", va="top")
        offset = steps[-1]
        for ax in axes.flat:
            ax.axvline(offset, color="grey", lw=0.5, ls=":")
    axes.flat[-1].set_yscale("log")
    axes.flat[2].set_yscale("log")  # one step's KL spans decades; the band would be a line
    damping = d["config"].get("damping", {})
    if damping.get("adaptive"):
        target, tol = damping["target_kl_per_step"], damping["kl_tolerance"]
        axes.flat[2].axhspan(target / tol, target * tol, color="green", alpha=0.15, lw=0)
        axes.flat[2].set_title("KL per step (black: smoothed; green: the controller's band)",
                               fontsize=9)
        axes.flat[3].set_title("learning rate (dashed: the actor's, as the controller set it)",
                               fontsize=9)
    _legend(axes.flat[0], fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("optimizer step (all generations)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _legend(ax: Any, fontsize: int) -> None:
    """A legend where something is labelled (a one-generation run labels nothing, and
    matplotlib warns on an empty legend)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=fontsize)


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def build_report(run_dir: Path | str, baselines: list[str] | None = None) -> Path:
    d = collect_run(run_dir)
    run: Run = d["run"]
    out = run.dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    cfg = d["config"]
    baselines = baselines or list(cfg.get("eval", {}).get("opponents", ["random"]))
    reference = label(f"checkpoint:{cfg['eval']['reference']}") if cfg.get("eval", {}).get(
        "reference") else d["names"][d["gens"][0]]
    plot_elo(d, out / "elo.png", baselines)
    plot_deltas(d, out / "deltas.png")
    plot_winrates(d, out / "winrates.png", baselines, "win rate against the baselines")
    plot_winrates(d, out / "reference.png", [reference],
                  f"head-to-head against the reference ({reference})")
    plot_training(d, out / "training.png")

    lines = [f"# Run report: {run.dir.name}", ""]
    if cfg:
        lines += [f"reward `{cfg['reward']['name']}`, damping `{cfg['damping']['name']}`, model "
                  f"`{cfg['model']['name']}`, scale `{cfg.get('scale_name')}`, seed {cfg['seed']}, "
                  f"config hash `{cfg.get('config_hash')}`", ""]
        ev_cfg, elo_cfg = cfg.get("eval", {}), cfg.get("elo", {})
        lines += [f"Evaluation (not part of the config hash; eval hash `{cfg.get('eval_hash')}`): "
                  f"{ev_cfg.get('battles')} battles per opponent against "
                  f"{', '.join(ev_cfg.get('opponents', []))} and "
                  f"{ev_cfg.get('previous_generations')} earlier generations; "
                  f"{elo_cfg.get('games_per_pair')} games per pair in the round robin, "
                  f"{elo_cfg.get('bootstrap')} bootstrap resamples.", ""]
        stale = [k for k in d["gens"] if d["evals"][k]
                 and d["evals"][k].get("eval_hash") not in (None, cfg.get("eval_hash"))]
        if stale:
            lines += [f"Generations {', '.join(map(str, stale))} were evaluated with other "
                      f"settings (see their `eval/summary.json`).", ""]
    lines += ["## Generations", "",
              "| generation | Elo | 95% interval | " + " | ".join(f"vs {b}" for b in baselines)
              + f" | vs reference ({reference}) | valid actions |",
              "|---|---|---|" + "---|" * len(baselines) + "---|---|"]
    for k in d["gens"]:
        r = d["ratings"].get(d["names"][k], {})
        ev = (d["evals"][k] or {}).get("opponents", {})
        cells = [_pct(ev.get(b, {}).get("win_rate")) for b in baselines]
        ref = ev.get(reference, {}).get("win_rate") if d["names"][k] != reference else None
        valid = [s.get("valid_action_rate") for s in ev.values() if s.get("valid_action_rate")]
        lines.append(f"| {d['names'][k]} | {r.get('elo', float('nan')):.0f} | "
                     f"[{r.get('ci_low', float('nan')):.0f}, {r.get('ci_high', float('nan')):.0f}] | "
                     + " | ".join(cells) + f" | {_pct(ref)} | "
                     f"{_pct(min(valid) if valid else None)} |")
    lines += ["", "![Elo by generation](elo.png)", "", "![win rates](winrates.png)", "",
              "![head-to-head against the reference](reference.png)", "",
              f"## {DELTAS_TITLE}", "", deltas_markdown(d["ratings_doc"].get("deltas", [])),
              "![paired Elo differences](deltas.png)", "",
              "## Ratings (all players)", "",
              d["ratings_doc"].get("markdown") or _ratings_md(d["ratings_doc"]), "",
              "## Behaviour probes", "",
              "Recovery = Recover/Soft-Boiled/Rest; lost/won = trailing/leading by ≥ 2 Pokémon or "
              "≥ 2 team HP.", "",
              "| generation | recovery when lost | recovery when won | status when lost | "
              "status when won | switch rate | distinct moves | move entropy (bits) |",
              "|---|---|---|---|---|---|---|---|"]
    for k in d["gens"]:
        p = d["probes"][k]
        if not p:
            continue
        lines.append(f"| {d['names'][k]} | {_pct(p['lost']['recovery_rate'])} | "
                     f"{_pct(p['won']['recovery_rate'])} | {_pct(p['lost']['status_rate'])} | "
                     f"{_pct(p['won']['status_rate'])} | {_pct(p['all']['switch_rate'])} | "
                     f"{p['move_diversity']['distinct_moves']} | "
                     f"{p['move_diversity']['entropy_bits']} |")
    lines += gate_table(d)
    lines += diagnostics_table(d)
    lines += controller_table(d)
    lines += ["", "## Training curves", "", "![training curves](training.png)", ""]
    atomic.write_text(out / "report.md", "\n".join(lines))
    return out / "report.md"


def gate_table(d: dict[str, Any]) -> list[str]:
    """Which candidate became each generation (`gate.battles` > 0; metamon_sp/gate.py)."""
    rows = [(k, d["gates"][k]) for k in d["gens"] if d["gates"].get(k)]
    if not rows:
        return []
    lines = ["", "## Gate", "",
             "Each generation's candidates against its parent, on the teams of "
             f"`{rows[0][1]['team_set']}` (games not rated); the best becomes the generation if it "
             "wins at least "
             f"{_pct(rows[0][1]['min_win_rate'])}, else the parent carries on"
             + (" (released; the learner trains on from its own end: `gate.lineage=learner`)."
                if rows[0][1].get("lineage") == "learner" else "."), "",
             "| generation | candidates: win rate [95% interval] / games | chosen |",
             "|---|---|---|"]
    for k, g in rows:
        cells = "; ".join(f"{name} {_pct(c['win_rate'])} [{_pct(c['ci_low'])}, "
                          f"{_pct(c['ci_high'])}] / {c['games']}"
                          for name, c in g["candidates"].items())
        lines.append(f"| {d['names'][k]} | {cells} | {g['choice']} |")
    return lines


def diagnostics_table(d: dict[str, Any]) -> list[str]:
    """The learner diagnostics by generation (metamon_sp/diagnostics.py), on held-out games."""
    rows = [(k, d["diagnostics"].get(k)) for k in d["gens"] if d["diagnostics"].get(k)]
    if not rows:
        return []
    buckets = list(rows[0][1]["own_games"].get("value_auc_by_turn", {}))
    lines = ["", "## Learner diagnostics", "",
             "On each generation's own evaluation games (held-out teams, never trained on): AUC of "
             "the critic's V(s) for the battle's outcome, overall and by decision index; share of "
             "decisions with positive advantage; policy entropy; share of greedy choices equal to "
             "the action played; and, on the parent's evaluation games, how often it chooses what "
             "its parent chose.", "",
             "| generation | value AUC | " + " | ".join(f"AUC {b}" for b in buckets)
             + " | A > 0 | entropy | agreement (own) | agreement (parent) |",
             "|---|---|" + "---|" * len(buckets) + "---|---|---|---|"]
    for k, diag in rows:
        own = diag["own_games"]
        by_turn = own.get("value_auc_by_turn", {})
        parent = diag.get("parent_games", {}).get("agreement")
        lines.append(f"| {d['names'][k]} | {_num(own.get('value_auc'))} | "
                     + " | ".join(_num(by_turn.get(b, {}).get("auc")) for b in buckets)
                     + f" | {_pct(own.get('adv_positive_frac'))} | {_num(own.get('entropy'))} | "
                     f"{_pct(own.get('agreement'))} | {_pct(parent)} |")
    return lines


def controller_table(d: dict[str, Any]) -> list[str]:
    """The damping controller's success criteria, per generation (damping=dynamic only)."""
    damping = d["config"].get("damping", {})
    if not damping.get("adaptive"):
        return []
    known = DampingConfig.__dataclass_fields__  # a run folder of another version may differ
    cfg = DampingConfig(**{k: v for k, v in damping.items() if k in known})
    lines = ["", "## Damping controller", "",
             f"After warmup, the share of steps whose smoothed per-step KL lies in the band "
             f"[{cfg.target_kl_per_step / cfg.kl_tolerance:.2g}, "
             f"{cfg.target_kl_per_step * cfg.kl_tolerance:.2g}] (target "
             f"{cfg.target_kl_per_step:g}; asked: ≥ 80%), and with `lr_scale` or `kl_scale` at a "
             f"bound (asked: < 20%). Entropy collapse: the first step at which the smoothed "
             f"entropy fell faster than {cfg.max_entropy_drop_per_step} nats/step over "
             f"{cfg.collapse_window} steps.", "",
             "| generation | steps | in band | lr_scale at a bound | kl_scale at a bound | met | "
             "final lr_scale | final kl_scale | entropy collapse |",
             "|---|---|---|---|---|---|---|---|---|"]
    for k in d["gens"]:
        rows = d["metrics"][k]
        c = controller_checks(rows, cfg)
        if not c["steps"]:
            continue
        fired = next((r["step"] for r in rows if r.get("damping/entropy_collapse")), None)
        lines.append(f"| {d['names'][k]} | {c['steps']} | {_pct(c['in_band_frac'])} | "
                     f"{_pct(c['lr_scale_at_bound_frac'])} | {_pct(c['kl_scale_at_bound_frac'])} | "
                     f"{'yes' if c['ok'] else 'no'} | {rows[-1]['damping/lr_scale']:.3g} | "
                     f"{rows[-1]['damping/kl_scale']:.3g} | "
                     f"{'–' if fired is None else f'step {fired}'} |")
    return lines


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _ratings_md(doc: dict[str, Any]) -> str:
    rows = ["| player | Elo | 95% interval | games |", "|---|---|---|---|"]
    for r in doc.get("ratings", []):
        rows.append(f"| {r['player']} | {r['elo']:.0f} | [{r['ci_low']:.0f}, {r['ci_high']:.0f}] | "
                    f"{r['games']} |")
    return "\n".join(rows)
