"""Storage: listing inputs by directory, glob or file; atomic writes; Parquet shards."""
from __future__ import annotations

import pytest

from pipelines.storage import (
    filesystem,
    join,
    list_inputs,
    read_bytes,
    write_bytes_atomic,
)
from pipelines.tables import finished_ids, read_table, write_shard


def _tree(root):
    for rel in ["a.png", "b.JPG", "sub/c.png", "sub/deep/d.bmp", "notes.txt"]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rel.encode())


def test_list_directory_glob_and_file(tmp_path):
    _tree(tmp_path)
    rel = [f.relative_path for f in list_inputs(str(tmp_path))]
    assert rel == ["a.png", "b.JPG", "sub/c.png", "sub/deep/d.bmp"]  # images only, sorted
    assert [f.relative_path for f in list_inputs(f"{tmp_path}/**/*.png")] == ["a.png", "sub/c.png"]
    assert [f.relative_path for f in list_inputs(f"file://{tmp_path}/sub/*")] == ["c.png"]
    one = list_inputs(str(tmp_path / "sub" / "c.png"))
    assert [(f.relative_path, read_bytes(f.uri)) for f in one] == [("c.png", b"sub/c.png")]
    with pytest.raises(FileNotFoundError, match="input not found"):
        list_inputs(str(tmp_path / "missing"))


def test_atomic_write_and_join(tmp_path):
    uri = join(str(tmp_path), "x", "y.bin")
    write_bytes_atomic(uri, b"123")
    assert (tmp_path / "x" / "y.bin").read_bytes() == b"123"
    assert not [p for p in (tmp_path / "x").iterdir() if p.name.startswith(".tmp-")]
    assert join("s3://bucket/out", "results", "a.parquet") == "s3://bucket/out/results/a.parquet"
    fs, path = filesystem("memory://bucket/k")
    assert path.endswith("bucket/k")


def test_shards_and_finished_ids(tmp_path):
    base = str(tmp_path)
    assert read_table(base, "results") is None
    write_shard(base, "results", [{"id": "a", "config_hash": "h1", "v": 1.0}])
    write_shard(base, "results", [{"id": "b", "config_hash": "h2", "v": None}])
    write_shard(base, "errors", [{"id": "c", "config_hash": "h1"}])
    assert write_shard(base, "errors", []) is None
    (tmp_path / "results" / ".tmp-partial.parquet").write_bytes(b"half a file")  # a crashed write
    assert read_table(base, "results").num_rows == 2
    assert finished_ids(base, "h1") == {"a", "c"}
