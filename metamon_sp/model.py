"""The policy model: per-turn encoder → causal transformer over turns → masked actor + critics.

    B: batch, T: turns in the window, A: actions (10), C: critics, G: discount factors

Critics give Q for every action, as an ensemble (C members) per discount factor (G). TD targets
come from a target network: a Polyak-averaged copy of the whole trunk and critic heads, so a
target does not move with every step of the online trunk it is a target for.

Numeric features are normalised one by one with a fixed mean and scale (set from generation 0's
data, then carried by every checkpoint), not by a LayerNorm across a turn's mixed quantities.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from metamon_sp.config import ModelConfig
from metamon_sp.features import FEATURE_SPEC, N_ACTIONS, N_CAT, N_NUM

NUM_CLIP = 10.0  # normalised numbers beyond ±10 standard deviations are clipped


class TurnEncoder(nn.Module):
    """One turn's observation → a d_model vector: embeddings for ids + projected numbers."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        vocabs = sorted(set(FEATURE_SPEC.cat_vocab))
        # keys are prefixed: ModuleDict refuses names like `type` that shadow attributes
        self.tables = nn.ModuleDict({f"emb_{v}": nn.Embedding(FEATURE_SPEC.vocab_sizes[v], cfg.emb_dim)
                                     for v in vocabs})
        for v in vocabs:  # column indices that each table embeds
            cols = [i for i, name in enumerate(FEATURE_SPEC.cat_vocab) if name == v]
            self.register_buffer(f"cols_{v}", torch.tensor(cols, dtype=torch.long), persistent=False)
        self.vocabs = vocabs
        # Fixed per-feature normalisation (saved with the weights; see `set_num_stats`).
        self.register_buffer("num_mean", torch.zeros(N_NUM))
        self.register_buffer("num_std", torch.ones(N_NUM))
        self.proj = nn.Sequential(nn.Linear(N_CAT * cfg.emb_dim + N_NUM, cfg.d_model), nn.GELU(),
                                  nn.Linear(cfg.d_model, cfg.d_model))

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        # num (B, T, N_NUM) float, cat (B, T, N_CAT) long
        parts = [self.tables[f"emb_{v}"](cat.index_select(-1, getattr(self, f"cols_{v}"))).flatten(-2)
                 for v in self.vocabs]  # each (B, T, n_cols_v * emb)
        x = ((num - self.num_mean) / self.num_std).clamp(-NUM_CLIP, NUM_CLIP)
        return self.proj(torch.cat([*parts, x], dim=-1))  # (B, T, d)

    @torch.no_grad()
    def set_num_stats(self, mean: Any, std: Any) -> None:
        self.num_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.num_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp(min=1e-3))


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)
        q, k, v = (t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, T, D))  # (B, T, D)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.mlp_mult * cfg.d_model), nn.GELU(),
                                 nn.Linear(cfg.mlp_mult * cfg.d_model, cfg.d_model),
                                 nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CriticHeads(nn.Module):
    """C×G critics, each an MLP giving Q for every action: (B, T, d) → (B, T, C, G, A)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.shape = (cfg.n_critics, len(cfg.gammas), N_ACTIONS)
        hidden = cfg.d_model * 2
        self.net = nn.Sequential(nn.Linear(cfg.d_model, hidden * cfg.n_critics), nn.GELU())
        # one grouped layer per critic: a block-diagonal map, written as a batched matmul
        self.w = nn.Parameter(torch.randn(cfg.n_critics, hidden, len(cfg.gammas) * N_ACTIONS)
                              / math.sqrt(hidden))
        self.b = nn.Parameter(torch.zeros(cfg.n_critics, len(cfg.gammas) * N_ACTIONS))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        C, G, A = self.shape
        z = self.net(h).unflatten(-1, (C, -1))  # (B, T, C, hidden)
        q = torch.einsum("btch,chk->btck", z, self.w) + self.b  # (B, T, C, G*A)
        return q.unflatten(-1, (G, A))  # (B, T, C, G, A)


class Trunk(nn.Module):
    """Turns → per-turn encodings: encoder, learned positions, causal transformer."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.context = cfg.context
        self.encoder = TurnEncoder(cfg)
        self.pos = nn.Embedding(cfg.context, cfg.d_model)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(cfg.d_model)

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        T = num.shape[1]
        if T > self.context:
            raise ValueError(f"window of {T} turns exceeds model.context={self.context}")
        x = self.encoder(num, cat.long()) + self.pos.weight[:T]  # (B, T, d)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)  # (B, T, d)


class PolicyModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.body = Trunk(cfg)
        self.actor = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_model), nn.GELU(),
                                   nn.Linear(cfg.d_model, N_ACTIONS))
        self.critics = CriticHeads(cfg)
        self.target_body = copy.deepcopy(self.body).requires_grad_(False)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)

    def trunk(self, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        return self.body(num, cat)

    def target_q(self, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        """Q (B, T, C, G, A) from the target network (trunk and critics)."""
        return self.target_critics(self.target_body(num, cat))

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unmasked actor logits (B, T, A) and Q values (B, T, C, G, A)."""
        h = self.trunk(num, cat)
        return self.actor(h), self.critics(h)

    def set_num_stats(self, mean: Any, std: Any) -> None:
        """Fix the numeric input normalisation (online and target networks alike)."""
        self.body.encoder.set_num_stats(mean, std)
        self.target_body.encoder.set_num_stats(mean, std)

    @torch.no_grad()
    def update_targets(self, tau: float) -> None:
        for online, target in ((self.body, self.target_body), (self.critics, self.target_critics)):
            for p, tp in zip(online.parameters(), target.parameters()):
                tp.lerp_(p, tau)

    def n_params(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def masked_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Illegal actions get -inf: exactly zero probability, in training and in play.
    Rows with no legal action (padding) are left finite so nothing becomes NaN."""
    any_legal = mask.any(-1, keepdim=True)
    return logits.masked_fill(~mask & any_legal, float("-inf"))
