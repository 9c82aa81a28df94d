"""Playing a checkpoint: batched inference across every battle of the process.

Each decision appends the battle's observation to its history (the last `model.context` turns)
and waits on a future; all decisions that arrive in the same turn of poke-env's event loop are
answered by one forward pass. A turn is encoded once, when it is new, and its encoding kept with
the history: a decision encodes one turn, not its whole window. Sampling is masked (an illegal action has probability 0), with a
temperature, or greedy; with `epsilon` an exploratory legal action instead: a uniformly random
one, or the critic's best challenger to the policy's choice (`explore=critic`).

The random numbers of a decision come from a hash of the policy's seed, the player, the battle
and the decision's index (`decision_uniforms`), not from a stream shared by all battles: a
decision does not depend on which other decisions shared its batch, so a seeded battle replays.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metamon_sp.checkpoint import load_checkpoint
from metamon_sp.config import PolicyConfig
from metamon_sp.features import Observation
from metamon_sp.model import Encoding, PolicyModel, masked_logits

log = logging.getLogger(__name__)


@dataclass
class _History:
    num: list[np.ndarray] = field(default_factory=list)
    cat: list[np.ndarray] = field(default_factory=list)
    rqid: Any = None
    steps: int = 0
    retries: int = 0
    turns: list[torch.Tensor | None] = field(default_factory=list)  # cached encodings (d,)
    actions: torch.Tensor | None = None  # the last turn's action embeddings (A, d_action)
    # keys and values of the window's first `kv_len` turns, every block (see Trunk.kv_shape);
    # valid while the window still starts at the battle's first turn
    kv: torch.Tensor | None = None
    kv_len: int = 0

    def pop_last(self) -> None:
        """Forget the last turn (the cache no longer covers it either)."""
        self.num.pop()
        self.cat.pop()
        self.turns.pop()
        self.kv_len = min(self.kv_len, len(self.turns))


def _keep_kv(hs: list[_History], kv: torch.Tensor, lengths: list[int]) -> None:
    """Each history keeps its row of the batch's keys and values: a copy, since a view would
    keep the whole batch alive."""
    for i, h in enumerate(hs):
        h.kv, h.kv_len = kv[i].clone(), lengths[i]


def decision_uniforms(seed: int, key: tuple[str, str], step: int, retry: int = 0) -> np.ndarray:
    """Three uniforms in [0, 1) for one decision: (explore?, which legal action if so, sample)."""
    digest = hashlib.blake2b(f"{seed}|{key[0]}|{key[1]}|{step}|{retry}".encode(),
                             digest_size=24).digest()
    return np.frombuffer(digest, dtype="<u8") / 2.0**64


class Policy:
    """A checkpoint's actor, choosing actions for many battles at once."""

    def __init__(self, model: PolicyModel, cfg: PolicyConfig, seed: int = 0, name: str = "policy",
                 kv_cache: bool = True):
        self.model = model.eval().to(cfg.device)
        # Keep each battle's keys and values, so a decision runs only its new turn through the
        # transformer: the same logits to float rounding, not a setting of the results.
        self.kv_cache = kv_cache
        self.cfg = cfg
        self.name = name
        self.context = model.cfg.context
        self.device = torch.device(cfg.device)
        self.seed = seed
        self._histories: dict[tuple[str, str], _History] = {}
        self._pending: list[tuple[tuple[str, str], np.ndarray, asyncio.Future]] = []
        self._flush_scheduled = False
        self._deferred = 0
        self.forward_passes = 0
        self.decisions = 0

    @classmethod
    def from_checkpoint(cls, path: Path | str, cfg: PolicyConfig, seed: int = 0) -> "Policy":
        global _THREADS_BEFORE
        if cfg.threads:
            if _THREADS_BEFORE is None:
                _THREADS_BEFORE = torch.get_num_threads()
            torch.set_num_threads(cfg.threads)
        model, _ = load_checkpoint(path, map_location=cfg.device)
        return cls(model, cfg, seed=seed, name=str(path))

    # ------------------------------------------------------------------------ histories
    def observe(self, key: tuple[str, str], obs: Observation, rqid: Any) -> None:
        h = self._histories.setdefault(key, _History())
        if h.num and rqid is not None and rqid == h.rqid:  # a retry of the same request
            h.pop_last()
            h.retries += 1
        else:
            h.steps += 1
            h.retries = 0
        h.num.append(obs.num)
        h.cat.append(obs.cat)
        h.turns.append(None)
        h.rqid = rqid
        if len(h.num) > self.context:  # the window slides: every position changes
            del h.num[0], h.cat[0], h.turns[0]
            h.kv_len = 0

    def drop_last(self, key: tuple[str, str]) -> None:
        """Remove the last turn of a battle's history (its choice was refused as unavailable)."""
        h = self._histories.get(key)
        if h is not None and h.num:
            h.pop_last()
            h.rqid = None

    def forget(self, key: tuple[str, str]) -> None:
        self._histories.pop(key, None)

    # ------------------------------------------------------------------------- choosing
    def act(self, keys: list[tuple[str, str]], masks: np.ndarray) -> np.ndarray:
        """Actions for the battles `keys` (their histories end with the current turn)."""
        return self.choose(keys, masks)[0]

    @torch.inference_mode()
    def choose(self, keys: list[tuple[str, str]], masks: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Actions for the battles `keys`, and which of them were exploratory (epsilon)."""
        hs = [self._histories[k] for k in keys]
        B = len(keys)
        mask = torch.from_numpy(masks).to(self.device)
        enc = self.encode(hs)
        logits = masked_logits(self.model.actor(enc), mask)              # (B, A)
        u = np.stack([decision_uniforms(self.seed, k, h.steps, h.retries)
                      for k, h in zip(keys, hs)])
        if self.cfg.greedy:
            actions = logits.argmax(-1).cpu().numpy()
        else:  # inverse CDF: the first action whose cumulative probability reaches u
            probs = torch.softmax(logits.double() / self.cfg.temperature, dim=-1).cpu().numpy()
            cdf = np.cumsum(probs, axis=1)
            actions = (cdf < u[:, 2:3] * cdf[:, -1:]).sum(axis=1)
        actions = np.minimum(actions, masks.shape[1] - 1)
        explore = np.zeros(B, dtype=bool)
        if self.cfg.epsilon > 0:
            explore = u[:, 0] < self.cfg.epsilon
            if explore.any():
                if self.cfg.explore == "critic":
                    alt = self._challengers(enc, mask, actions)
                else:  # a uniformly random legal action
                    legal = np.cumsum(masks, axis=1)                         # (B, A)
                    nth = np.floor(u[:, 1] * legal[:, -1]).astype(np.int64)  # which legal action
                    alt = np.minimum((legal <= nth[:, None]).sum(axis=1), masks.shape[1] - 1)
                actions = np.where(explore, alt, actions)
        self.forward_passes += 1
        self.decisions += B
        return actions, explore

    def _challengers(self, enc: Encoding, mask: torch.Tensor, chosen: np.ndarray) -> np.ndarray:
        """Per row, the legal action other than `chosen` with the highest Q (the min over the
        critics, first discount); `chosen` itself where it is the only legal action."""
        q = self.model.critics(enc)[..., 0, :].min(dim=-2).values         # (B, A)
        others = mask.clone()
        others[torch.arange(len(chosen)), torch.from_numpy(chosen).to(self.device)] = False
        alone = ~others.any(-1)
        others[alone] = mask[alone]
        return q.masked_fill(~others, float("-inf")).argmax(-1).cpu().numpy()

    @torch.inference_mode()
    def probabilities(self, key: tuple[str, str], mask: np.ndarray) -> np.ndarray:
        """The policy's action probabilities (A,) at the last turn of battle `key`'s history."""
        logits = masked_logits(self.logits([self._histories[key]]),
                               torch.from_numpy(mask[None]).to(self.device))
        return torch.softmax(logits.double() / self.cfg.temperature, -1)[0].cpu().numpy()

    @torch.inference_mode()
    def logits(self, hs: list[_History]) -> torch.Tensor:
        """Unmasked actor logits (B, A) at the last turn of each history."""
        return self.model.actor(self.encode(hs))

    @torch.inference_mode()
    def encode(self, hs: list[_History]) -> Encoding:
        """The context and action embeddings (B, …) at the last turn of each history.

        When every history has one turn beyond its cached keys and values (the usual case: one
        new turn per decision), only that turn goes through the transformer, attending to the
        cache; otherwise (a window that slid past the context) the whole window does and refills
        the cache. Both give the same logits to float rounding
        (tests/unit/test_policy_sampling.py)."""
        self._encode_new_turns(hs)
        body = self.model.body
        lengths = [len(h.num) for h in hs]
        B = len(hs)
        actions = torch.stack([h.actions for h in hs])
        if self.kv_cache and all(h.kv_len == n - 1 for h, n in zip(hs, lengths)):
            empty = None  # a battle's first turn has nothing cached yet
            if any(h.kv is None for h in hs):
                empty = torch.zeros(body.kv_shape(), device=self.device)
            kv = torch.stack([empty if h.kv is None else h.kv for h in hs])
            pos = torch.tensor(lengths, device=self.device) - 1
            context = body.contextualize_step(torch.stack([h.turns[-1] for h in hs]), kv, pos)
            _keep_kv(hs, kv, lengths)
            return Encoding((context, actions))
        T = max(lengths)
        turns = torch.zeros(B, T, self.model.cfg.d_model, device=self.device)
        for i, h in enumerate(hs):  # right-padded: causal attention never looks ahead
            turns[i, :lengths[i]] = torch.stack(h.turns)
        kv = torch.zeros(B, *body.kv_shape(), device=self.device) if self.kv_cache else None
        context = body.contextualize(turns, kv)                           # (B, T, d)
        if kv is not None:
            _keep_kv(hs, kv, lengths)
        last = torch.tensor(lengths, device=self.device) - 1
        return Encoding((context[torch.arange(B), last], actions))

    def _encode_new_turns(self, hs: list[_History]) -> None:
        """Encode, in one pass, every turn of these histories not encoded yet."""
        todo = [(h, j) for h in hs for j, enc in enumerate(h.turns) if enc is None]
        if not todo:
            return
        num = torch.from_numpy(np.stack([h.num[j] for h, j in todo])).to(self.device)
        cat = torch.from_numpy(np.stack([h.cat[j] for h, j in todo]).astype(np.int64)).to(self.device)
        turn, actions = self.model.body.encoder(num[:, None], cat[:, None])  # (M, 1, …)
        for i, (h, j) in enumerate(todo):
            h.turns[j] = turn[i, 0]
            if j == len(h.turns) - 1:
                h.actions = actions[i, 0]

    async def decide(self, key: tuple[str, str], obs: Observation, rqid: Any
                     ) -> tuple[int, bool]:
        """Queue this battle's decision; one forward pass answers everything queued with it.
        Returns the action and whether it was an exploratory one."""
        self.observe(key, obs, rqid)
        if not self.cfg.batched:
            actions, explored = self.choose([key], obs.mask[None])
            return int(actions[0]), bool(explored[0])
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self._pending.append((key, obs.mask, fut))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)  # after every message already waiting in the loop
        return await fut

    def _flush(self) -> None:
        # A forward pass costs nearly the same for 10 battles as for 30: while the loop has
        # other work ready (messages just read, whose decisions would join this batch), let it
        # go first, a few times at most. (`_ready` is asyncio's queue of ready callbacks; a loop
        # without one, such as uvloop's, flushes at once.)
        loop = asyncio.get_running_loop()
        if len(self._pending) < self.cfg.max_batch and self._deferred < MAX_DEFERRALS \
                and getattr(loop, "_ready", None):
            self._deferred += 1
            loop.call_soon(self._flush)
            return
        self._deferred = 0
        # One batch of at most `max_batch` per turn of the loop: between two batches the loop
        # sends the first one's choices, so the simulator plays them while the next is computed.
        pending = self._pending
        chunk, self._pending = pending[:self.cfg.max_batch], pending[self.cfg.max_batch:]
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._flush_scheduled = False
        try:
            actions, explored = self.choose([k for k, _, _ in chunk],
                                            np.stack([m for _, m, _ in chunk]))
        except Exception as e:  # never leave a battle waiting forever
            for _, _, fut in chunk:
                if not fut.done():
                    fut.set_exception(e)
            return
        for (_, _, fut), a, e in zip(chunk, actions, explored):
            if not fut.done():
                fut.set_result((int(a), bool(e)))


MAX_DEFERRALS = 8
"""How many times a batch lets other ready work of the loop go first (see `Policy._flush`)."""

_THREADS_BEFORE: int | None = None


def threads_before_play() -> int:
    """torch's thread count before any policy in this process set its own (inference runs on
    `policy.threads` so the Showdown server keeps a core): what training should use again."""
    return _THREADS_BEFORE or torch.get_num_threads()


_POLICIES: OrderedDict[tuple, Policy] = OrderedDict()
_POLICIES_LOCK = threading.Lock()
MAX_CACHED_POLICIES = 4
"""A long flow process meets one checkpoint per generation: keep only the latest few (a large
model is ~1 GB each). Players already holding an evicted policy keep it while they play."""


def shared_policy(path: Path | str, cfg: PolicyConfig, seed: int = 0) -> Policy:
    """One Policy per checkpoint and settings in a process: self-play shares its batches."""
    key = (str(Path(path).resolve()), astuple(cfg), seed)
    with _POLICIES_LOCK:  # shards in threads share this process's cache
        if key in _POLICIES:
            _POLICIES.move_to_end(key)
        else:
            _POLICIES[key] = Policy.from_checkpoint(path, cfg, seed=seed)
            while len(_POLICIES) > MAX_CACHED_POLICIES:
                _POLICIES.popitem(last=False)
        return _POLICIES[key]
