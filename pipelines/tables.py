"""Results and errors as Parquet shards: written atomically, read back for resume and tracking."""
from __future__ import annotations

import io
import uuid

import pyarrow as pa
import pyarrow.parquet as pq

from operators.seeding import derive_seed
from pipelines.sections import StorageConfig
from pipelines.storage import filesystem, join, write_bytes_atomic

ERROR_COLUMNS = ("id", "source_uri", "relative_path", "stage", "error_type", "message", "config_hash")


def image_id(source_uri: str) -> str:
    """Stable id of an input image: a hash of its source URI (frame/window 0). Restore rows use
    it as their id; evaluate rows seed each image's degradation with it."""
    return f"{derive_seed(0, source_uri, 0):016x}"


def write_shard(base: str, table_name: str, rows: list[dict], storage: StorageConfig | None = None) -> str | None:
    """Write rows as ``<base>/<table_name>/part-<uuid>.parquet`` atomically; None if no rows.
    A column null in every row (psnr without a reference, std_mean without samples: the only
    nullable columns are numbers) is written as float64, so every shard has one schema."""
    if not rows:
        return None
    table = pa.Table.from_pylist(rows)
    for i, f in enumerate(table.schema):
        if pa.types.is_null(f.type):
            table = table.set_column(i, pa.field(f.name, pa.float64()), table.column(i).cast(pa.float64()))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    uri = join(base, table_name, f"part-{uuid.uuid4().hex}.parquet")
    return write_bytes_atomic(uri, buf.getvalue(), storage)


def read_table(base: str, table_name: str, storage: StorageConfig | None = None,
               columns: list[str] | None = None) -> pa.Table | None:
    """All shards of a table concatenated (schemas unified), or None when there are none."""
    fs, path = filesystem(join(base, table_name), storage)
    if not fs.exists(path):
        return None
    files = sorted(p for p in fs.find(path) if p.endswith(".parquet") and "/.tmp-" not in p)
    tables = []
    for p in files:
        with fs.open(p, "rb") as f:
            tables.append(pq.read_table(f, columns=columns))
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default")


def finished_ids(base: str, config_hash: str, storage: StorageConfig | None = None,
                 tables: tuple[str, ...] = ("results", "errors")) -> set[str]:
    """Ids already recorded (in any of ``tables``) for this config hash."""
    done: set[str] = set()
    for name in tables:
        t = read_table(base, name, storage, columns=["id", "config_hash"])
        if t is None:
            continue
        for rid, h in zip(t.column("id").to_pylist(), t.column("config_hash").to_pylist()):
            if h == config_hash:
                done.add(rid)
    return done
