"""The policy model: per-turn encoder → causal transformer over turns → masked actor + critics.

    B: batch, T: turns in the window, A: actions (10), C: critics, G: discount factors

Actor and critics score each action from the turn's context *and that action's own features*
(a move slot's move, damage and type; a switch slot's Pokémon and its matchup), with one set of
weights for the four move slots and one for the six switch slots: a good move is recognised the
same way in any slot, for any species, on teams never seen in training.

Critics give Q for every action, as an ensemble (C members) per discount factor (G). TD targets
come from a target network: a Polyak-averaged copy of the whole trunk and critic heads, so a
target does not move with every step of the online trunk it is a target for.

Numeric features are normalised one by one with a fixed mean and scale (set from generation 0's
data, then carried by every checkpoint), not by a LayerNorm across a turn's mixed quantities.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from metamon_sp.config import ModelConfig
from metamon_sp.features import FEATURE_SPEC, N_CAT, N_MOVES, N_NUM, N_SLOTS

NUM_CLIP = 10.0  # normalised numbers beyond ±10 standard deviations are clipped


def _slot_columns(names: tuple[str, ...], prefix: str, n: int) -> torch.Tensor:
    """(n, k) indices of the columns `{prefix}{i}_*` for each slot i, in the same order per slot."""
    per_slot = [[j for j, c in enumerate(names) if c.startswith(f"{prefix}{i}_")] for i in range(n)]
    if len({len(cols) for cols in per_slot}) != 1:
        raise ValueError(f"feature slots {prefix}0..{n - 1} do not have the same columns")
    return torch.tensor(per_slot, dtype=torch.long)


def action_dim(cfg: ModelConfig) -> int:
    """Width of an action's embedding and of the per-action heads: they run on A = 10 vectors
    per turn, so half the trunk's width keeps them cheap."""
    return max(16, cfg.d_model // 2)


class Encoding(tuple):
    """(h, actions): per-turn context (…, d) and per-action embeddings (…, A, d). Indexing
    applies to the leading (batch, time) dimensions of both."""

    @property
    def h(self) -> torch.Tensor:
        return tuple.__getitem__(self, 0)

    @property
    def actions(self) -> torch.Tensor:
        return tuple.__getitem__(self, 1)

    def __getitem__(self, index: Any) -> "Encoding":  # type: ignore[override]
        return Encoding((self.h[index], self.actions[index]))


class TurnEncoder(nn.Module):
    """One turn's observation → a d_model vector: embeddings for ids + projected numbers."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.vocabs = sorted(set(FEATURE_SPEC.cat_vocab))
        sizes = [FEATURE_SPEC.vocab_sizes[v] for v in self.vocabs]
        first = dict(zip(self.vocabs, [sum(sizes[:i]) for i in range(len(sizes))]))
        # One table holds every vocabulary, each in its own rows: one lookup per turn, whose
        # backward (an index_add) costs a third of one nn.Embedding backward per vocabulary.
        self.emb = nn.Parameter(torch.randn(sum(sizes), cfg.emb_dim))
        self.register_buffer("row_offset", torch.tensor([first[v] for v in FEATURE_SPEC.cat_vocab]),
                             persistent=False)
        # the turn's ids enter `proj` grouped by vocabulary (alphabetical), columns in order
        self.register_buffer("table_order", torch.tensor(
            [i for v in self.vocabs for i, name in enumerate(FEATURE_SPEC.cat_vocab) if name == v]),
            persistent=False)
        # Fixed per-feature normalisation (saved with the weights; see `set_num_stats`).
        self.register_buffer("num_mean", torch.zeros(N_NUM))
        self.register_buffer("num_std", torch.ones(N_NUM))
        self.proj = nn.Sequential(nn.Linear(N_CAT * cfg.emb_dim + N_NUM, cfg.d_model), nn.GELU(),
                                  nn.Linear(cfg.d_model, cfg.d_model))
        # Per-action columns: move slot i's `move{i}_*`, switch slot i's `own{i}_*`.
        num_names, cat_names = FEATURE_SPEC.num, FEATURE_SPEC.cat
        for kind, prefix, n in (("move", "move", N_MOVES), ("switch", "own", N_SLOTS)):
            self.register_buffer(f"{kind}_num", _slot_columns(num_names, prefix, n), persistent=False)
            self.register_buffer(f"{kind}_cat", _slot_columns(cat_names, prefix, n), persistent=False)
        self.move_proj = self._action_proj(cfg, "move")
        self.switch_proj = self._action_proj(cfg, "switch")

    def _action_proj(self, cfg: ModelConfig, kind: str) -> nn.Module:
        n_num, n_cat = getattr(self, f"{kind}_num").shape[1], getattr(self, f"{kind}_cat").shape[1]
        return nn.Sequential(nn.Linear(n_num + n_cat * cfg.emb_dim, action_dim(cfg)), nn.GELU())

    def _embed(self, rows: torch.Tensor) -> torch.Tensor:
        """(…, k) rows of the table → (…, k * emb)."""
        return self.emb.index_select(0, rows.reshape(-1)).view(*rows.shape[:-1], -1)

    def _slot_inputs(self, x: torch.Tensor, rows: torch.Tensor, kind: str) -> torch.Tensor:
        """(B, T, n_slots, k): each slot's normalised numbers and embedded ids."""
        num_cols, cat_cols = getattr(self, f"{kind}_num"), getattr(self, f"{kind}_cat")
        return torch.cat([x[..., num_cols], self._embed(rows[..., cat_cols])], dim=-1)

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # num (B, T, N_NUM) float, cat (B, T, N_CAT) long
        rows = cat + self.row_offset
        x = ((num - self.num_mean) / self.num_std).clamp(-NUM_CLIP, NUM_CLIP)
        emb = self._embed(rows.index_select(-1, self.table_order))  # (B, T, N_CAT * emb)
        turn = self.proj(torch.cat([emb, x], dim=-1))                # (B, T, d)
        actions = torch.cat([self.move_proj(self._slot_inputs(x, rows, "move")),
                             self.switch_proj(self._slot_inputs(x, rows, "switch"))], dim=-2)
        return turn, actions  # (B, T, d), (B, T, A, action_dim)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        # Checkpoints written before the single table kept one table per vocabulary
        # (`tables.emb_<vocab>.weight`): the same rows, stacked in the same order.
        old = [f"{prefix}tables.emb_{v}.weight" for v in self.vocabs]
        if all(k in state_dict for k in old):
            state_dict[f"{prefix}emb"] = torch.cat([state_dict.pop(k) for k in old])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

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

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Queries, keys and values (B, H, T, dh) of `x` (B, T, D)."""
        B, T, D = x.shape
        return tuple(t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2)
                     for t in self.qkv(x).split(D, dim=-1))

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None) -> torch.Tensor:
        """`kv` (B, 2, H, T', dh), T' >= T: where to also put the keys and values (for `step`)."""
        B, T, D = x.shape
        q, k, v = self._heads(x)
        if kv is not None:
            kv[:, 0, :, :T], kv[:, 1, :, :T] = k, v
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, T, D))  # (B, T, D)

    def forward_at(self, x: torch.Tensor, index: torch.Tensor, B: int, T: int) -> torch.Tensor:
        """`forward` for the turns at `index` (N,) alone, flat positions in a (B, T) window whose
        other positions each lie after every indexed one of their row (a window's padding): the
        projections run on the N turns, only the attention on the (B, T) grid, where causal
        attention never lets an indexed turn see the zeros at the others. x (N, D) → (N, D)."""
        D = x.shape[-1]
        qkv = x.new_zeros(B * T, 3 * D).index_copy(0, index, self.qkv(x)).view(B, T, 3 * D)
        q, k, v = (t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2)
                   for t in qkv.split(D, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B * T, D).index_select(0, index))

    def step(self, x: torch.Tensor, kv: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """One new turn per row (B, 1, D) at position `pos` (B,), attending to the keys and
        values cached in `kv` (B, 2, H, T', dh) before it; its own are written there too."""
        B, _, D = x.shape
        q, k, v = self._heads(x)
        rows = torch.arange(B, device=x.device)
        kv[rows, 0, :, pos], kv[rows, 1, :, pos] = k[:, :, 0], v[:, :, 0]
        seen = torch.arange(kv.shape[3], device=x.device)[None, :] <= pos[:, None]  # (B, T')
        y = F.scaled_dot_product_attention(q, kv[:, 0], kv[:, 1], attn_mask=seen[:, None, None])
        return self.out(y.transpose(1, 2).reshape(B, 1, D))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.mlp_mult * cfg.d_model), nn.GELU(),
                                 nn.Linear(cfg.mlp_mult * cfg.d_model, cfg.d_model),
                                 nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), kv)
        return x + self.mlp(self.ln2(x))

    def forward_at(self, x: torch.Tensor, index: torch.Tensor, B: int, T: int) -> torch.Tensor:
        x = x + self.attn.forward_at(self.ln1(x), index, B, T)
        return x + self.mlp(self.ln2(x))

    def step(self, x: torch.Tensor, kv: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = x + self.attn.step(self.ln1(x), kv, pos)
        return x + self.mlp(self.ln2(x))


class ActionScores(nn.Module):
    """k scores per action, for each of `groups` independent heads, from the context and the
    action's embedding: (…, d), (…, A, d) → (…, groups, A, k), the same weights for every action.
    One hidden layer: it runs on A times as many vectors as the trunk does."""

    def __init__(self, d: int, d_action: int, hidden: int, k: int, groups: int = 1):
        super().__init__()
        self.groups = groups
        self.context = nn.Linear(d, hidden * groups)
        self.action = nn.Linear(d_action, hidden * groups, bias=False)
        # one output layer per group: a block-diagonal map, written as a batched matmul
        self.w = nn.Parameter(torch.randn(groups, hidden, k) / hidden ** 0.5)
        self.b = nn.Parameter(torch.zeros(groups, k))

    def forward(self, enc: Encoding) -> torch.Tensor:
        z = F.gelu(self.context(enc.h).unsqueeze(-2) + self.action(enc.actions))  # (…, A, g*h)
        z = z.unflatten(-1, (self.groups, -1))                                      # (…, A, g, h)
        return (torch.einsum("...agh,ghk->...agk", z, self.w) + self.b).transpose(-3, -2)


class Actor(nn.Module):
    """Unmasked logits (…, A)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.scores = ActionScores(cfg.d_model, action_dim(cfg), action_dim(cfg), 1)

    def forward(self, enc: Encoding) -> torch.Tensor:
        return self.scores(enc)[..., 0, :, 0]


class CriticHeads(nn.Module):
    """C×G critics, each its own head scoring every action: Encoding (…) → Q (…, C, G, A)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.scores = ActionScores(cfg.d_model, action_dim(cfg), action_dim(cfg), len(cfg.gammas),
                                   cfg.n_critics)

    def forward(self, enc: Encoding) -> torch.Tensor:
        return self.scores(enc).transpose(-1, -2)  # (…, C, A, G) → (…, C, G, A)


class Trunk(nn.Module):
    """Turns → per-turn encodings: encoder, learned positions, causal transformer."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.context = cfg.context
        self.encoder = TurnEncoder(cfg)
        self.pos = nn.Embedding(cfg.context, cfg.d_model)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(cfg.d_model)

    def forward(self, num: torch.Tensor, cat: torch.Tensor) -> Encoding:
        T = num.shape[1]
        if T > self.context:
            raise ValueError(f"window of {T} turns exceeds model.context={self.context}")
        turn, actions = self.encoder(num, cat.long())
        return Encoding((self.contextualize(turn), actions))

    def encode_at(self, num: torch.Tensor, cat: torch.Tensor, index: torch.Tensor) -> Encoding:
        """What `forward` gives at the flat positions `index` (N,) of the (B, T) window, each
        row's other positions lying after its indexed ones (training's padding, ~55% of a
        batch): (N, d), (N, A, d_a), computed for those turns alone but for the attention."""
        B, T = num.shape[:2]
        if T > self.context:
            raise ValueError(f"window of {T} turns exceeds model.context={self.context}")
        turn, actions = self.encoder(num.flatten(0, 1).index_select(0, index),
                                     cat.flatten(0, 1).index_select(0, index).long())
        x = turn + self.pos.weight[index % T]
        for block in self.blocks:
            x = block.forward_at(x, index, B, T)
        return Encoding((self.ln_f(x), actions))

    def contextualize(self, turn: torch.Tensor, kv: torch.Tensor | None = None) -> torch.Tensor:
        """Encoded turns (B, T, d) → per-turn context (B, T, d): positions, causal blocks.
        Live play caches each turn's encoding and calls this alone (see `Policy`); given `kv`
        (B, n_layers, 2, H, context, dh), it also keeps every block's keys and values there."""
        x = turn + self.pos.weight[:turn.shape[1]]
        for i, block in enumerate(self.blocks):
            x = block(x, None if kv is None else kv[:, i])
        return self.ln_f(x)

    def kv_shape(self) -> tuple[int, ...]:
        """One window's cached keys and values: (n_layers, 2, heads, context, d_model/heads)."""
        heads = self.blocks[0].attn.n_heads if self.blocks else 1
        d = self.pos.weight.shape[1]
        return (len(self.blocks), 2, heads, self.context, d // heads)

    def contextualize_step(self, turn: torch.Tensor, kv: torch.Tensor,
                           pos: torch.Tensor) -> torch.Tensor:
        """The context (B, d) of one new turn (B, d) per row at position `pos` (B,), from the
        keys and values of the turns before it in `kv` (B, n_layers, 2, H, context, dh), which
        gains the new turn's: what `contextualize` gives at that position, at 1/T of the cost."""
        x = (turn + self.pos.weight[pos])[:, None]
        for i, block in enumerate(self.blocks):
            x = block.step(x, kv[:, i], pos)
        return self.ln_f(x)[:, 0]


class PolicyModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.body = Trunk(cfg)
        self.actor = Actor(cfg)
        self.critics = CriticHeads(cfg)
        self.target_body = copy.deepcopy(self.body).requires_grad_(False)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)

    def trunk(self, num: torch.Tensor, cat: torch.Tensor) -> Encoding:
        return self.body(num, cat)

    def target_q(self, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
        """Q (B, T, C, G, A) from the target network (trunk and critics)."""
        return self.target_critics(self.target_body(num, cat))

    def trunk_at(self, num: torch.Tensor, cat: torch.Tensor, index: torch.Tensor) -> Encoding:
        """`trunk` at the flat positions `index` of the window alone (see `Trunk.encode_at`)."""
        return self.body.encode_at(num, cat, index)

    def target_q_at(self, num: torch.Tensor, cat: torch.Tensor, index: torch.Tensor
                    ) -> torch.Tensor:
        """`target_q` at the flat positions `index` alone: (N, C, G, A)."""
        return self.target_critics(self.target_body.encode_at(num, cat, index))

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
        online = [*self.body.parameters(), *self.critics.parameters()]
        target = [*self.target_body.parameters(), *self.target_critics.parameters()]
        torch._foreach_lerp_(target, online, tau)  # one fused call, not one per tensor

    def n_params(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def masked_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Illegal actions get -inf: exactly zero probability, in training and in play.
    Rows with no legal action (padding) are left finite so nothing becomes NaN."""
    any_legal = mask.any(-1, keepdim=True)
    return logits.masked_fill(~mask & any_legal, float("-inf"))
