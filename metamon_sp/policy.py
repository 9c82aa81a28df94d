"""Playing a checkpoint: batched inference across every battle of the process.

Each decision appends the battle's observation to its history (the last `model.context` turns)
and waits on a future; all decisions that arrive in the same turn of poke-env's event loop are
answered by one forward pass. Sampling is masked (an illegal action has probability 0), with a
temperature, or greedy; with `epsilon` a uniformly random legal action instead.
"""

from __future__ import annotations

import asyncio
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
from metamon_sp.model import PolicyModel, masked_logits

log = logging.getLogger(__name__)


@dataclass
class _History:
    num: list[np.ndarray] = field(default_factory=list)
    cat: list[np.ndarray] = field(default_factory=list)
    rqid: Any = None


class Policy:
    """A checkpoint's actor, choosing actions for many battles at once."""

    def __init__(self, model: PolicyModel, cfg: PolicyConfig, seed: int = 0, name: str = "policy"):
        self.model = model.eval().to(cfg.device)
        self.cfg = cfg
        self.name = name
        self.context = model.cfg.context
        self.device = torch.device(cfg.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self._histories: dict[tuple[str, str], _History] = {}
        self._pending: list[tuple[tuple[str, str], np.ndarray, asyncio.Future]] = []
        self._flush_scheduled = False
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
            h.num.pop()
            h.cat.pop()
        h.num.append(obs.num)
        h.cat.append(obs.cat)
        h.rqid = rqid
        if len(h.num) > self.context:
            del h.num[0], h.cat[0]

    def drop_last(self, key: tuple[str, str]) -> None:
        """Remove the last turn of a battle's history (its choice was refused as unavailable)."""
        h = self._histories.get(key)
        if h is not None and h.num:
            h.num.pop()
            h.cat.pop()
            h.rqid = None

    def forget(self, key: tuple[str, str]) -> None:
        self._histories.pop(key, None)

    # ------------------------------------------------------------------------- choosing
    def act(self, keys: list[tuple[str, str]], masks: np.ndarray) -> np.ndarray:
        """Actions for the battles `keys` (their histories end with the current turn)."""
        return self.choose(keys, masks)[0]

    @torch.no_grad()
    def choose(self, keys: list[tuple[str, str]], masks: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Actions for the battles `keys`, and which of them were exploratory (epsilon)."""
        lengths = [len(self._histories[k].num) for k in keys]
        T = max(lengths)
        B = len(keys)
        num = np.zeros((B, T, self._histories[keys[0]].num[0].shape[0]), np.float32)
        cat = np.zeros((B, T, self._histories[keys[0]].cat[0].shape[0]), np.int64)
        for i, k in enumerate(keys):  # right-padded: causal attention never looks ahead
            h = self._histories[k]
            num[i, :lengths[i]] = h.num
            cat[i, :lengths[i]] = h.cat
        x_num = torch.from_numpy(num).to(self.device)
        x_cat = torch.from_numpy(cat).to(self.device)
        h = self.model.trunk(x_num, x_cat)                               # (B, T, d)
        last = h[torch.arange(B), torch.tensor(lengths, device=self.device) - 1]  # (B, d)
        mask = torch.from_numpy(masks).to(self.device)
        logits = masked_logits(self.model.actor(last), mask)             # (B, A)
        if self.cfg.greedy:
            actions = logits.argmax(-1)
        else:
            probs = torch.softmax(logits / self.cfg.temperature, dim=-1)
            actions = torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)
        explore = torch.zeros(B, dtype=torch.bool, device=self.device)
        if self.cfg.epsilon > 0:  # exploration: a uniformly random legal action instead
            explore = torch.rand(B, generator=self.generator, device=self.device) < self.cfg.epsilon
            uniform = torch.multinomial(mask.float(), 1, generator=self.generator).squeeze(-1)
            actions = torch.where(explore, uniform, actions)
        self.forward_passes += 1
        self.decisions += B
        return actions.cpu().numpy(), explore.cpu().numpy()

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
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        for i in range(0, len(pending), self.cfg.max_batch):
            chunk = pending[i:i + self.cfg.max_batch]
            try:
                actions, explored = self.choose([k for k, _, _ in chunk],
                                                np.stack([m for _, m, _ in chunk]))
            except Exception as e:  # never leave a battle waiting forever
                for _, _, fut in chunk:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for (_, _, fut), a, e in zip(chunk, actions, explored):
                if not fut.done():
                    fut.set_result((int(a), bool(e)))


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
