"""Learner diagnostics on trajectories it never trained on: does the critic know who is winning,
does the actor filter keep anything, how far did the policy move from the data?

    diagnose(model, trajectories) → {
        value_auc:        AUC of V(s_t) = Σ_a π Q(s_t, a) for "this battle is won", all turns
        value_auc_by_turn: the same per decision bucket (0-4, 5-9, 10-19, 20-39, 40+)
        adv_positive_frac: share of decisions with A(s_t, a_t) > 0 (what the binary filter keeps)
        agreement:         share of decisions where argmax π equals the action played
        entropy:           mean policy entropy (nats) over legal actions
    }

In a run, generation k is diagnosed on its own evaluation games (held-out teams, never trained
on) and, under `parent_games`, on its parent's evaluation games: there `agreement` is how often
it would now choose what its parent chose.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch

from metamon_sp.model import PolicyModel
from metamon_sp.train import policy_log_probs
from metamon_sp.trajectories import Trajectory

TURN_BUCKETS = ((0, 5), (5, 10), (10, 20), (20, 40), (40, 10**9))


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann–Whitney, ties counted half); None without both classes."""
    labels = labels.astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@torch.no_grad()
def _per_decision(model: PolicyModel, t: Trajectory) -> dict[str, np.ndarray]:
    """V, A(a_t), entropy and argmax π for each decision, in blocks of `context` turns (each
    block's history starts at its first turn: close to live play's sliding window)."""
    L = model.cfg.context
    out: dict[str, list[np.ndarray]] = {"v": [], "adv": [], "ent": [], "greedy": []}
    for s in range(0, t.steps, L):
        num = torch.tensor(t.obs_num[s:s + L], dtype=torch.float32)[None]
        cat = torch.tensor(t.obs_cat[s:s + L], dtype=torch.int64)[None]
        mask = torch.tensor(t.masks[s:s + L])[None]
        h = model.trunk(num, cat)
        logp, logp0 = policy_log_probs(model.actor(h), mask)  # as the learner computes them
        p = logp0.exp() * mask
        q = model.critics(h)[:, :, :, 0, :].min(dim=2).values.masked_fill(~mask, 0.0)
        v = (p * q).sum(-1)
        a = torch.from_numpy(t.actions[s:s + L].astype(np.int64))[None]
        out["v"].append(v[0].numpy())
        out["adv"].append((q.gather(-1, a[..., None]).squeeze(-1) - v)[0].numpy())
        out["ent"].append(-(p * logp0).sum(-1)[0].numpy())
        out["greedy"].append(logp.argmax(-1)[0].numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def diagnose(model: PolicyModel, trajectories: Iterable[Trajectory]) -> dict[str, Any]:
    model = model.eval()
    vs, wins, turns, adv, ent, agree = [], [], [], [], [], []
    n_traj = 0
    for t in trajectories:
        if t.steps == 0 or t.truncated:
            continue
        n_traj += 1
        d = _per_decision(model, t)
        vs.append(d["v"])
        wins.append(np.full(t.steps, t.outcome > 0))
        turns.append(np.arange(t.steps))
        adv.append(d["adv"])
        ent.append(d["ent"])
        agree.append(d["greedy"] == t.actions)
    if not n_traj:
        return {"trajectories": 0, "decisions": 0}
    v, w, k = np.concatenate(vs), np.concatenate(wins), np.concatenate(turns)
    by_turn = {}
    for lo, hi in TURN_BUCKETS:
        sel = (k >= lo) & (k < hi)
        name = f"{lo}-{hi - 1}" if hi < 10**9 else f"{lo}+"
        by_turn[name] = {"auc": _round(auc(v[sel], w[sel])), "decisions": int(sel.sum())}
    return {"trajectories": n_traj, "decisions": int(len(v)), "value_auc": _round(auc(v, w)),
            "value_auc_by_turn": by_turn,
            "adv_positive_frac": round(float(np.concatenate(adv).__gt__(0).mean()), 4),
            "agreement": round(float(np.concatenate(agree).mean()), 4),
            "entropy": round(float(np.concatenate(ent).mean()), 4)}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
