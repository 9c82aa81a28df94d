"""Learner throughput: optimizer steps/s and timesteps/s (batch × context per step) of the full
training step (critics, actor, damping KL to π_ref, per-step KL measurement), for `tiny` and
`small` on CPU, and on a GPU when one is present (there also `medium` and `large`).

    python benchmarks/train_throughput.py [--steps 30] [--data DIR] [--compile] [--damping none]

With --compile, each CPU model is measured a second time with `train.compile=true` (the step
compiled by `torch.compile`, deterministic kernels, as training runs it); its warm-up includes the
compilation.

Without --data a synthetic dataset of random observations is used, battles of 10–40 decisions
(Gen 1 OU's are ~25): the step runs on the decisions alone, not on the windows' padding, so its
speed depends on how full the windows are (`decisions_frac`), not on what the data holds.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def synthetic_dataset(folder: Path, n_traj: int = 256) -> Path:
    from metamon_sp.features import N_ACTIONS, N_CAT, N_FACTS, N_NUM
    from metamon_sp.trajectories import ShardWriter, Trajectory, write_manifest

    rng = np.random.default_rng(0)
    trajs = []
    for i in range(n_traj):
        steps = int(rng.integers(10, 41))
        masks = rng.random((steps, N_ACTIONS)) < 0.6
        masks[:, 0] = True
        trajs.append(Trajectory(
            battle_id=f"battle-{i}", side="p1", player="x", opponent="y", team="t",
            opponent_team="u", outcome=1 if i % 2 else -1, turns=steps,
            obs_num=rng.standard_normal((steps, N_NUM)).astype(np.float32),
            obs_cat=rng.integers(0, 8, (steps, N_CAT)).astype(np.int16),
            actions=np.zeros(steps, np.int8), masks=masks,
            facts=rng.random((steps + 1, N_FACTS)).astype(np.float32)))
    ShardWriter(folder, "i00").write(trajs)
    write_manifest(folder)
    return folder


def measure(model_name: str, device: str, data: Path, steps: int, batch_size: int,
            compiled: bool = False, damping: str = "dynamic") -> dict:
    from metamon_sp.config import load_config
    from metamon_sp.damping import DampingController
    from metamon_sp.model import PolicyModel
    from metamon_sp.rewards import build_reward
    from metamon_sp.train import (compute_losses, deterministic_kernels, param_groups, step_kl,
                                  step_losses)
    from metamon_sp.train_data import OfflineData

    cfg = load_config([f"model={model_name}", f"damping={damping}",
                       f"train.batch_size={batch_size}", f"train.compile={compiled}"])
    torch.manual_seed(0)
    model = PolicyModel(cfg.model).to(device)
    ref = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(param_groups(model), lr=1e-4)
    ctrl = DampingController(cfg.damping)
    data = OfflineData([data], build_reward(cfg.reward), 0.01)
    rng = np.random.default_rng(0)
    gammas = torch.tensor(cfg.model.gammas, device=device)
    losses = torch.compile(step_losses) if compiled else step_losses

    decisions = []

    def one(step: int) -> None:
        batch = data.sample(batch_size, cfg.model.context, rng).to(device)
        decisions.append(batch.valid.float().mean().item())
        out = compute_losses(model, ref, batch, cfg.train, gammas, ctrl.kl_coef(step),
                             ctrl.ent_coef(step), losses)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        model.update_targets(0.005)
        ctrl.update(step_kl(model, batch, out.logp), step)

    with deterministic_kernels(compiled):  # as training runs the compiled step
        for s in range(6 if compiled else 3):  # warm-up (compiled: the compilations)
            one(s)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for s in range(steps):
            one(s)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    row = {"model": model_name, "params_m": round(model.n_params() / 1e6, 2), "device": device,
           "compiled": compiled,
           "threads": torch.get_num_threads(), "batch": batch_size, "context": cfg.model.context,
           "steps_per_s": round(steps / dt, 2),
           "timesteps_per_s": round(steps * batch_size * cfg.model.context / dt, 0),
           "decisions_frac": round(float(np.mean(decisions)), 2)}
    if device.startswith("cuda"):
        row["peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--gpu-models", default="tiny,small,medium,large")
    ap.add_argument("--compile", action="store_true", help="also the compiled step, on CPU")
    ap.add_argument("--damping", default="dynamic", help="the damping config group (none: the "
                    "laptop default's undamped losses; the KLs are still measured every step)")
    args = ap.parse_args()
    runs = [("tiny", "cpu", False), ("small", "cpu", False)]
    if args.compile:
        runs += [("tiny", "cpu", True), ("small", "cpu", True)]
    if torch.cuda.is_available():
        runs += [(m, "cuda", False) for m in args.gpu_models.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or synthetic_dataset(Path(tmp) / "data")
        rows = [measure(m, d, data, args.steps if d == "cpu" or m in ("tiny", "small")
                        else max(10, args.steps // 3), args.batch_size, c, args.damping)
                for m, d, c in runs]
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")


if __name__ == "__main__":
    main()
