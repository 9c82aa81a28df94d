from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metamon_sp import atomic
from metamon_sp.trajectories import (MANIFEST, Dataset, DatasetError, ShardError, ShardWriter,
                                     read_shard, write_manifest, write_shard)
from tests.factories import make_battle, make_traj


_SEARCH = ["search_values", "search_prior"]


def _dataset(tmp_path, n_shards=3, per_shard=2):
    w = ShardWriter(tmp_path, "i00", extra_meta={"instance": 0})
    for s in range(n_shards):
        w.write([t for b in range(per_shard) for t in make_battle(s * per_shard + b)])
    write_manifest(tmp_path)
    return tmp_path


def test_round_trip_is_exact(tmp_path):
    trajs = make_battle(1) + [make_traj("battle-gen1ou-9", steps=0, outcome=0, truncated=True,
                                        errors=["boom"])]
    trajs[0].explored[[1, 3]] = True
    trajs[1].searched[[0, 2]] = True
    trajs[1].search_values[0, [0, 4]] = [0.25, 0.625]
    trajs[1].search_prior[0, [0, 4]] = [0.75, 0.25]
    write_shard(tmp_path / "a.parquet", trajs)
    back = read_shard(tmp_path / "a.parquet")
    assert len(back) == 3
    for t, u in zip(trajs, back):
        for name in ("obs_num", "obs_cat", "actions", "masks", "facts", "explored", "searched",
                     "search_values", "search_prior"):
            a, b = getattr(t, name), getattr(u, name)
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)
        for name in ("battle_id", "side", "outcome", "turns", "truncated", "errors", "team"):
            assert getattr(t, name) == getattr(u, name)


def test_shards_are_written_as_pa_array_would_and_without_pandas(tmp_path):
    """The arrays are built from buffers; `pa.array` would import pandas in every collecting
    process (~1.3 s of its CPU, while it plays)."""
    trajs = make_battle(1) + [make_traj("battle-é", steps=0, outcome=0, truncated=True,
                                        errors=["boom", "ß"])]
    trajs[0].explored[[1, 3]] = True
    code = (f"import sys; from tests.factories import make_battle, make_traj; "
            f"from metamon_sp.trajectories import write_shard, read_shard; "
            f"t = make_battle(1) + [make_traj('battle-é', steps=0, outcome=0, truncated=True, "
            f"errors=['boom', 'ß'])]; t[0].explored[[1, 3]] = True; "
            f"write_shard({str(tmp_path / 'a.parquet')!r}, t); "
            f"print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[2]).stdout
    assert out.strip() == "False"
    table = pq.read_table(tmp_path / "a.parquet")
    assert table.column("errors").to_pylist() == [[], [], ["boom", "ß"]]
    assert table.column("battle_id").to_pylist()[-1] == "battle-é"
    assert table.column("truncated").to_pylist() == [t.truncated for t in trajs]
    expected = pa.array([t.explored for t in trajs], type=pa.large_list(pa.bool_()))
    assert table.column("explored").combine_chunks().equals(expected)


@pytest.mark.parametrize("version, dropped", [(1, ["explored", "searched", *_SEARCH]),
                                              (2, ["searched", *_SEARCH]), (3, _SEARCH)])
def test_an_older_shard_reads_with_no_decision_explored_or_searched(tmp_path, version, dropped):
    """Shards written before `explored` (v1), `searched` (v2) or `search_values` (v3) existed
    stay usable (e.g. a replay window's older data)."""
    write_shard(tmp_path / "a.parquet", make_battle(1))
    table = pq.read_table(tmp_path / "a.parquet")
    meta = json.loads(table.schema.metadata[b"metamon_sp"])
    meta["schema_version"] = version
    old = table.drop_columns(dropped).replace_schema_metadata(
        {b"metamon_sp": json.dumps(meta).encode()})
    pq.write_table(old, tmp_path / "old.parquet")
    back = read_shard(tmp_path / "old.parquet")
    assert len(back) == 2
    for t in back:  # make_battle explores nothing: every flag reads False
        for flags in (t.explored, t.searched):
            assert flags.shape == (t.steps,) and not flags.any()
        for arr in (t.search_values, t.search_prior):
            assert arr.shape == (t.steps, 10) and np.isnan(arr).all()
    meta["schema_version"] = 99
    pq.write_table(old.replace_schema_metadata({b"metamon_sp": json.dumps(meta).encode()}),
                   tmp_path / "future.parquet")
    with pytest.raises(ShardError, match="schema version 99"):
        read_shard(tmp_path / "future.parquet")
    meta["schema_version"] = 2  # a v2 shard must still hold `explored`
    pq.write_table(table.drop_columns(["explored", "searched", *_SEARCH]).replace_schema_metadata(
        {b"metamon_sp": json.dumps(meta).encode()}), tmp_path / "broken.parquet")
    with pytest.raises(ShardError, match="explored"):
        read_shard(tmp_path / "broken.parquet")


def test_manifest_counts(tmp_path):
    _dataset(tmp_path)
    m = json.loads((tmp_path / MANIFEST).read_text())
    assert (m["battles"], m["trajectories"], m["wins"], m["losses"]) == (6, 12, 6, 6)
    assert m["invalid_actions"] == 0 and m["p1_wins"] == 6 and m["valued"] == 0
    assert all(isinstance(m[k], int) for k in ("battles", "trajectories", "wins", "losses",
                                                "invalid_actions"))
    assert len(Dataset(tmp_path)) == 12 and len(list(Dataset(tmp_path))) == 12


def test_shard_writer_continues_numbering(tmp_path):
    _dataset(tmp_path, n_shards=2)
    w = ShardWriter(tmp_path, "i00")
    assert w.existing_summary()["battles"] == 4
    assert w.write(make_battle(99)).name == "i00-00002.parquet"


def test_corrupted_shard_is_named_and_the_others_still_load(tmp_path):
    _dataset(tmp_path)
    bad = tmp_path / "i00-00001.parquet"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(ShardError, match="i00-00001.parquet"):
        list(Dataset(tmp_path))
    ds = Dataset(tmp_path)
    assert len(list(ds.iter_trajectories(on_bad_shard="skip"))) == 8
    assert [p.name for p, _ in ds.skipped] == ["i00-00001.parquet"]
    with pytest.raises(ShardError, match="i00-00001.parquet"):
        read_shard(bad)


def test_foreign_parquet_file_is_refused_by_name(tmp_path):
    path = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), path)
    with pytest.raises(ShardError, match="foreign.parquet.*not a metamon-sp"):
        read_shard(path)


def test_modified_shard_fails_its_checksum(tmp_path):
    _dataset(tmp_path, n_shards=1)
    write_shard(tmp_path / "i00-00000.parquet", make_battle(50))  # replaced behind the manifest
    with pytest.raises(ShardError, match="checksum"):
        list(Dataset(tmp_path))


def test_missing_manifest_is_explained(tmp_path):
    with pytest.raises(DatasetError, match="no manifest.json"):
        Dataset(tmp_path)


def test_failed_write_leaves_the_previous_file_and_no_temp(tmp_path):
    target = tmp_path / "x.json"
    atomic.write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
