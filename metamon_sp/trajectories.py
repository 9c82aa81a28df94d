"""The trajectory store: Parquet shards, one row per recorded trajectory (one side of one battle).

A row holds the battle's metadata and, per decision, the observation, action, legality mask,
whether the action was an exploratory random one, and reward facts (flattened lists; shapes come
from the feature spec in the shard's metadata). Each shard carries its schema version, feature
spec hash and a summary in its Parquet metadata, so a dataset folder's `manifest.json` can always
be rebuilt from the shards alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from metamon_sp import atomic
from metamon_sp.features import FEATURE_SPEC, N_ACTIONS, N_CAT, N_FACTS, N_NUM

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
# Older shards still read: version 1 (before `explored`), 2 (before `searched`) and 3 (before
# `search_values` and `search_prior`) count their decisions as neither explored nor searched
# nor valued.
_READABLE_VERSIONS = (1, 2, 3, 4)
MANIFEST = "manifest.json"
SHARD_GLOB = "*.parquet"
_META_KEY = b"metamon_sp"
_COUNT_FIELDS = ("battles", "trajectories", "steps", "wins", "losses", "ties", "invalid_actions",
                 "truncated", "p1_wins", "p2_wins", "battle_ties", "valued")


class ShardError(RuntimeError):
    """A shard that cannot be used; the message names the file and what to do."""


class DatasetError(RuntimeError):
    pass


@dataclass
class Trajectory:
    battle_id: str
    side: str                 # "p1" or "p2": the recorded player's side
    player: str               # policy id of the recorded player
    opponent: str
    team: str                 # team name in the team set, or "custom:<fingerprint>"
    opponent_team: str
    outcome: int              # 1 win, -1 loss, 0 tie or unfinished
    turns: int
    obs_num: np.ndarray       # (T, N_NUM) float32
    obs_cat: np.ndarray       # (T, N_CAT) int16
    actions: np.ndarray       # (T,) int8
    masks: np.ndarray         # (T, N_ACTIONS) bool
    facts: np.ndarray         # (T+1, N_FACTS) float32: before each decision, then at the end
    invalid_actions: int = 0
    unavailable_choices: int = 0
    truncated: bool = False
    errors: list[str] = field(default_factory=list)
    generation: int = 0
    format: str = "gen1ou"
    explored: np.ndarray | None = None  # (T,) bool: the action was an exploratory random one
    searched: np.ndarray | None = None  # (T,) bool: the action was the simulator search's choice
    # (T, N_ACTIONS) float32: the simulator search's mean value of each action it valued (NaN
    # where it valued none, and on every decision it did not search)
    search_values: np.ndarray | None = None
    # (T, N_ACTIONS) float32: on the same decisions, the policy's probabilities of its legal
    # actions before the search (NaN elsewhere)
    search_prior: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.explored is None:
            self.explored = np.zeros(self.actions.shape[0], dtype=bool)
        if self.searched is None:
            self.searched = np.zeros(self.actions.shape[0], dtype=bool)
        for name in ("search_values", "search_prior"):
            if getattr(self, name) is None:
                setattr(self, name, np.full((self.actions.shape[0], N_ACTIONS), np.nan,
                                            np.float32))

    @property
    def steps(self) -> int:
        return int(self.actions.shape[0])

    @property
    def invalid_rate(self) -> float:
        return self.invalid_actions / max(1, self.steps)


_SCALARS: dict[str, pa.DataType] = {
    "battle_id": pa.string(), "side": pa.string(), "player": pa.string(),
    "opponent": pa.string(), "team": pa.string(), "opponent_team": pa.string(),
    "outcome": pa.int8(), "turns": pa.int32(), "invalid_actions": pa.int32(),
    "unavailable_choices": pa.int32(), "truncated": pa.bool_(), "generation": pa.int32(),
    "format": pa.string(),
}
_ARRAYS: dict[str, tuple[pa.DataType, np.dtype, int]] = {
    # column: (Parquet value type, numpy dtype, values per step)
    "obs_num": (pa.float32(), np.dtype(np.float32), N_NUM),
    "obs_cat": (pa.int16(), np.dtype(np.int16), N_CAT),
    "actions": (pa.int8(), np.dtype(np.int8), 1),
    "masks": (pa.bool_(), np.dtype(bool), N_ACTIONS),
    "facts": (pa.float32(), np.dtype(np.float32), N_FACTS),
    "explored": (pa.bool_(), np.dtype(bool), 1),
    "searched": (pa.bool_(), np.dtype(bool), 1),
    "search_values": (pa.float32(), np.dtype(np.float32), N_ACTIONS),
    "search_prior": (pa.float32(), np.dtype(np.float32), N_ACTIONS),
}
# columns an older schema version lacks (read as all False, or all NaN)
_ADDED_IN = {"explored": 2, "searched": 3, "search_values": 4, "search_prior": 4}


def summarize(trajs: Iterable[Trajectory]) -> dict[str, int]:
    trajs = list(trajs)
    s = {k: 0 for k in _COUNT_FIELDS}
    s["trajectories"] = len(trajs)
    battle_p1_outcome: dict[str, int] = {}
    for t in trajs:
        s["steps"] += t.steps
        s["wins"] += t.outcome > 0
        s["losses"] += t.outcome < 0
        s["ties"] += t.outcome == 0
        s["invalid_actions"] += t.invalid_actions
        s["valued"] += int((~np.isnan(t.search_values)).any(axis=1).sum())  # searched decisions
        battle_p1_outcome.setdefault(t.battle_id, t.outcome if t.side == "p1" else -t.outcome)
    truncated_battles = {t.battle_id for t in trajs if t.truncated}
    s["battles"] = len(battle_p1_outcome)
    s["truncated"] = len(truncated_battles)
    s["p1_wins"] = sum(v > 0 for v in battle_p1_outcome.values())
    s["p2_wins"] = sum(v < 0 for v in battle_p1_outcome.values())
    s["battle_ties"] = sum(v == 0 for v in battle_p1_outcome.values())
    return s


# Arrays are built from their buffers: `pa.array` imports pandas on its first call, ~1.3 s of
# CPU that every collecting process took from its battles as its first shard was written.
def _array(values: np.ndarray, typ: pa.DataType) -> pa.Array:
    """A flat Arrow array of `typ` holding `values` (numpy values of `typ`'s width)."""
    n = len(values)
    if typ == pa.bool_():  # Arrow packs booleans into bits
        values = np.packbits(np.asarray(values, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(np.ascontiguousarray(values))])


def _offsets(sizes: list[int], dtype: type) -> np.ndarray:
    offsets = np.zeros(len(sizes) + 1, dtype=dtype)
    np.cumsum(sizes, out=offsets[1:])
    return offsets


def _string_array(items: list[str]) -> pa.Array:
    data = [s.encode() for s in items]
    offsets = _offsets([len(b) for b in data], np.int32)
    return pa.Array.from_buffers(pa.string(), len(data), [
        None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])


def _scalar_array(values: list[Any], typ: pa.DataType) -> pa.Array:
    if typ == pa.string():
        return _string_array(values)
    return _array(np.asarray(values, dtype=typ.to_pandas_dtype()), typ)


def _list_array(arrays: list[np.ndarray], value_type: pa.DataType, dtype: np.dtype) -> pa.Array:
    offsets = _offsets([a.size for a in arrays], np.int64)
    values = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0, dtype)
    return pa.LargeListArray.from_arrays(_array(offsets, pa.int64()),
                                         _array(values.astype(dtype, copy=False), value_type))


def _table(trajs: list[Trajectory], extra_meta: dict[str, Any]) -> pa.Table:
    cols: dict[str, pa.Array] = {}
    for name, typ in _SCALARS.items():
        cols[name] = _scalar_array([getattr(t, name) for t in trajs], typ)
    errors = [list(t.errors) for t in trajs]
    cols["errors"] = pa.ListArray.from_arrays(
        _array(_offsets([len(e) for e in errors], np.int32), pa.int32()),
        _string_array([e for es in errors for e in es]))
    for name, (typ, dtype, _) in _ARRAYS.items():
        cols[name] = _list_array([getattr(t, name) for t in trajs], typ, dtype)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "features": {"version": FEATURE_SPEC.version, "hash": FEATURE_SPEC.hash,
                     "n_num": N_NUM, "n_cat": N_CAT, "n_actions": N_ACTIONS, "n_facts": N_FACTS},
        "summary": summarize(trajs),
        **extra_meta,
    }
    return pa.table(cols).replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})


def write_shard(path: Path | str, trajs: list[Trajectory],
                extra_meta: dict[str, Any] | None = None) -> Path:
    """Write trajectories to one shard, atomically (temp file + rename)."""
    path = Path(path)
    table = _table(trajs, extra_meta or {})
    with atomic.atomic_path(path) as tmp:
        # Neither dictionaries nor statistics for the decisions' arrays: their values barely
        # repeat, and both cost more than the rest of a shard's write (which halves without
        # them; the files come out smaller). The battles' columns keep their statistics.
        pq.write_table(table, tmp, compression="zstd", use_dictionary=list(_SCALARS),
                       write_statistics=list(_SCALARS))
    return path


def _shard_meta(path: Path, parquet_meta: dict[bytes, bytes] | None) -> dict[str, Any]:
    raw = (parquet_meta or {}).get(_META_KEY)
    if raw is None:
        raise ShardError(f"{path} is not a metamon-sp trajectory shard (it has no metamon_sp "
                         f"metadata); move it out of the dataset folder.")
    meta = json.loads(raw)
    if meta.get("schema_version") not in _READABLE_VERSIONS:
        raise ShardError(f"{path} has trajectory schema version {meta.get('schema_version')}, "
                         f"this code reads versions {_READABLE_VERSIONS}; re-collect it with this "
                         f"version.")
    feats = meta.get("features", {})
    if feats.get("hash") != FEATURE_SPEC.hash:
        raise ShardError(f"{path} was featurized with feature spec {feats.get('hash')} (version "
                         f"{feats.get('version')}), this code uses {FEATURE_SPEC.hash} (version "
                         f"{FEATURE_SPEC.version}); re-collect it with this version.")
    return meta


def read_shard_meta(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        md = pq.read_metadata(path).metadata
    except (pa.ArrowException, OSError) as e:
        raise ShardError(f"{path} cannot be read as Parquet ({e}); it is corrupted or not a "
                         f"shard: delete it (the other shards are intact) and re-run.") from e
    return _shard_meta(path, md)


def _split(col: pa.ChunkedArray, dtype: np.dtype, width: int) -> list[np.ndarray]:
    arr = col.combine_chunks()
    offsets = arr.offsets.to_numpy()
    values = arr.values.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    out = []
    for i in range(len(arr)):
        chunk = values[offsets[i]:offsets[i + 1]]
        out.append(chunk.reshape(-1, width) if width > 1 else chunk)
    return out


def read_shard(path: Path | str) -> list[Trajectory]:
    """All trajectories of a shard; a corrupted or foreign file raises ShardError naming it."""
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise ShardError(f"{path} cannot be read as Parquet ({e}); it is corrupted or not a "
                         f"shard: delete it (the other shards are intact) and re-run.") from e
    meta = _shard_meta(path, table.schema.metadata)
    version = meta["schema_version"]
    expected = [c for c in (*_SCALARS, "errors", *_ARRAYS) if _ADDED_IN.get(c, 1) <= version]
    missing = [c for c in expected if c not in table.column_names]
    if missing:
        raise ShardError(f"{path} lacks columns {missing}; it was not written by this version.")
    n = table.num_rows
    scalars = {name: table.column(name).to_pylist() for name in _SCALARS}
    errors = table.column("errors").to_pylist()
    arrays = {name: _split(table.column(name), dtype, width)
              for name, (_, dtype, width) in _ARRAYS.items() if name in table.column_names}
    trajs = []
    for i in range(n):
        t = Trajectory(**{k: v[i] for k, v in scalars.items()},
                       errors=list(errors[i] or []),
                       **{k: v[i] for k, v in arrays.items()})
        if (t.facts.shape[0] != t.steps + 1 or t.obs_num.shape[0] != t.steps
                or t.explored.shape[0] != t.steps or t.searched.shape[0] != t.steps
                or t.search_values.shape[0] != t.steps or t.search_prior.shape[0] != t.steps):
            raise ShardError(f"{path} row {i} ({t.battle_id}) has inconsistent lengths.")
        trajs.append(t)
    if len(trajs) != meta["summary"]["trajectories"]:
        raise ShardError(f"{path} holds {len(trajs)} rows but its summary says "
                         f"{meta['summary']['trajectories']}; it is corrupted.")
    return trajs


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shard_paths(data_dir: Path | str) -> list[Path]:
    return sorted(p for p in Path(data_dir).glob(SHARD_GLOB) if not p.name.startswith("."))


def write_manifest(data_dir: Path | str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """(Re)build `manifest.json` from the shards' own metadata; written atomically."""
    data_dir = Path(data_dir)
    totals = {k: 0 for k in _COUNT_FIELDS}
    shards = []
    for p in shard_paths(data_dir):
        summary = read_shard_meta(p)["summary"]
        for k in _COUNT_FIELDS:
            totals[k] += int(summary.get(k, 0))
        shards.append({"file": p.name, "sha256": _sha256(p), "bytes": p.stat().st_size, **summary})
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "features": {"version": FEATURE_SPEC.version, "hash": FEATURE_SPEC.hash},
        **totals,
        "meta": meta or {},
        "shards": shards,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic.write_json(data_dir / MANIFEST, manifest)
    return manifest


class ShardWriter:
    """Writes numbered shards `<prefix>-NNNNN.parquet` into a dataset folder."""

    def __init__(self, out_dir: Path | str, prefix: str, extra_meta: dict[str, Any] | None = None):
        if not re.fullmatch(r"[A-Za-z0-9_.]+", prefix):
            raise ValueError(f"shard prefix {prefix!r} must be letters, digits, '_' or '.'")
        self.out_dir = Path(out_dir)
        self.prefix = prefix
        self.extra_meta = extra_meta or {}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        existing = [int(m.group(1)) for p in self.out_dir.glob(f"{prefix}-*.parquet")
                    if (m := re.fullmatch(rf"{re.escape(prefix)}-(\d+)\.parquet", p.name))]
        self._next = max(existing, default=-1) + 1

    def existing_summary(self) -> dict[str, int]:
        """Counts over the shards this prefix already has (to resume an interrupted run)."""
        totals = {k: 0 for k in _COUNT_FIELDS}
        for p in sorted(self.out_dir.glob(f"{self.prefix}-*.parquet")):
            for k, v in read_shard_meta(p)["summary"].items():
                if k in totals:
                    totals[k] += int(v)
        return totals

    def write(self, trajs: list[Trajectory]) -> Path:
        path = self.out_dir / f"{self.prefix}-{self._next:05d}.parquet"
        write_shard(path, trajs, self.extra_meta)
        self._next += 1
        return path


class Dataset:
    """A dataset folder: shards + manifest. Iterating yields trajectories shard by shard."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DatasetError(f"{self.path} is not a dataset folder (it does not exist).")
        manifest_path = self.path / MANIFEST
        if not manifest_path.exists():
            raise DatasetError(f"{self.path} has no {MANIFEST}; it is not a dataset folder, or its "
                               f"writer was interrupted (rebuild it with "
                               f"`metamon_sp.trajectories.write_manifest`).")
        self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        self.skipped: list[tuple[Path, str]] = []

    @property
    def shards(self) -> list[Path]:
        return [self.path / s["file"] for s in self.manifest.get("shards", [])]

    def _checked_read(self, entry: dict[str, Any]) -> list[Trajectory]:
        path = self.path / entry["file"]
        if not path.exists():
            raise ShardError(f"{path} is listed in {self.path / MANIFEST} but missing.")
        if entry.get("sha256") and _sha256(path) != entry["sha256"]:
            raise ShardError(f"{path} does not match the checksum in its manifest; it was "
                             f"modified or corrupted after it was written.")
        return read_shard(path)

    def iter_trajectories(self, on_bad_shard: Literal["raise", "skip"] = "raise"
                          ) -> Iterator[Trajectory]:
        """Yield every trajectory. A bad shard raises ShardError naming it, or with
        `on_bad_shard="skip"` is logged, listed in `self.skipped`, and the rest still load."""
        for entry in self.manifest.get("shards", []):
            try:
                trajs = self._checked_read(entry)
            except ShardError as e:
                if on_bad_shard == "raise":
                    raise
                log.error("Skipping bad shard: %s", e)
                self.skipped.append((self.path / entry["file"], str(e)))
                continue
            yield from trajs

    def __iter__(self) -> Iterator[Trajectory]:
        return self.iter_trajectories()

    def __len__(self) -> int:
        return int(self.manifest.get("trajectories", 0))
