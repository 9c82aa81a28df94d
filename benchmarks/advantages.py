"""How a checkpoint's critic judges the decisions of a dataset: the advantage distribution of the
policy's own decisions (critic noise: the actor and the data agree there) and of the exploratory
ones (`collect.epsilon`), and how many of each the actor's filter would clone. It is what
`train.explored_margin` is set from (docs/strength.md, experiment R1).

    python benchmarks/advantages.py CHECKPOINT DATA [DATA ...] [--margin 0.01] [--batches 30]

Data written before trajectories recorded `explored` (schema version 1) has no exploratory
decisions; `--parent CHECKPOINT` then stands in for the flag: decisions whose action that
checkpoint gave less than 5% probability count as exploratory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from metamon_sp.checkpoint import load_checkpoint  # noqa: E402
from metamon_sp.config import load_config  # noqa: E402
from metamon_sp.rewards import build_reward  # noqa: E402
from metamon_sp.train import advantages, policy_log_probs  # noqa: E402
from metamon_sp.train_data import OfflineData  # noqa: E402

QUANTILES = (0.1, 0.5, 0.9, 0.97)


@torch.no_grad()
def judge(ckpt: Path, data_dirs: list[Path], parent: Path | None, batches: int,
               overrides: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(advantage, explored) of sampled decisions, A = Q(s, a) − Σ π(a'|s) Q(s, a')."""
    cfg = load_config(overrides)
    model, _ = load_checkpoint(ckpt)
    model.eval()
    ref = load_checkpoint(parent)[0].eval() if parent else None
    data = OfflineData(data_dirs, build_reward(cfg.reward), cfg.train.reward_scale)
    rng = np.random.default_rng(0)
    advs, flags = [], []
    for _ in range(batches):
        b = data.sample(64, model.cfg.context, rng)
        h = model.trunk(b.num, b.cat)
        _, logp = policy_log_probs(model.actor(h), b.mask)
        _, adv = advantages(model.critics(h), logp.exp() * b.mask, b.mask, b.actions)
        explored = b.explored
        if ref is not None:
            _, ref_logp = policy_log_probs(ref.actor(ref.trunk(b.num, b.cat)), b.mask)
            explored = ref_logp.exp().gather(-1, b.actions[..., None]).squeeze(-1) < 0.05
        advs.append(adv[b.valid].numpy())
        flags.append(explored[b.valid].numpy())
    return np.concatenate(advs), np.concatenate(flags)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("data", type=Path, nargs="+")
    ap.add_argument("--parent", type=Path, default=None)
    ap.add_argument("--margin", type=float, default=0.01)
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="a config override (reward, reward scale), e.g. --set reward=binary")
    args = ap.parse_args()
    adv, explored = judge(args.checkpoint, args.data, args.parent, args.batches,
                               args.overrides)
    print(f"{len(adv)} decisions, {explored.mean():.1%} exploratory")
    print("| decisions | n | A > 0 | A > margin | mean | " +
          " | ".join(f"q{int(100 * q)}" for q in QUANTILES) + " |")
    print("|---|---|---|---|---|" + "---|" * len(QUANTILES))
    for name, sel in (("policy's own", ~explored), ("exploratory", explored)):
        a = adv[sel]
        if not len(a):
            continue
        qs = " | ".join(f"{x:+.4f}" for x in np.quantile(a, QUANTILES))
        print(f"| {name} | {len(a)} | {(a > 0).mean():.1%} | {(a > args.margin).mean():.1%} | "
              f"{a.mean():+.4f} | {qs} |")


if __name__ == "__main__":
    main()
