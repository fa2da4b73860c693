"""Results and errors as Parquet shards: written atomically, read back for resume and tracking.

Read back deduplicated by id, whatever happened (a retried row, two runs on one output):
a result row counts once, and an error row counts only while its id has no result under
the same config hash, the latest error of an id (``recorded_at``) giving its kind.
"""
from __future__ import annotations

import io
import time
import uuid

import pyarrow as pa
import pyarrow.parquet as pq

from actors.error_kind import PERMANENT, TRANSIENT, kind_of_type
from operators.seeding import derive_seed
from pipelines.retry import retried
from pipelines.sections import StorageConfig
from pipelines.storage import filesystem, join, write_bytes_atomic

ERROR_COLUMNS = ("id", "source_uri", "relative_path", "stage", "error_type", "message", "kind", "recorded_at",
                 "config_hash")


def image_id(source_uri: str) -> str:
    """Stable id of an input image: a hash of its source URI (frame/window 0). Restore rows use
    it as their id; evaluate rows seed each image's degradation with it."""
    return f"{derive_seed(0, source_uri, 0):016x}"


def error_record(rid: str, source_uri: str, relative_path: str, stage: str, error_type: str, message: str,
                 kind: str, chash: str, extra: dict | None = None) -> dict:
    """An ``errors`` row (ERROR_COLUMNS, ``extra`` columns after ``relative_path``); ``kind``:
    "permanent" or "transient" (actors/error_kind.py); ``recorded_at``: Unix seconds, so the
    latest error of an id decides whether a re-run retries it."""
    return {"id": str(rid), "source_uri": str(source_uri), "relative_path": str(relative_path), **(extra or {}),
            "stage": str(stage), "error_type": str(error_type), "message": str(message)[:2000],
            "kind": str(kind or kind_of_type(str(error_type))), "recorded_at": time.time(), "config_hash": chash}


def write_shard(base: str, table_name: str, rows: list[dict], storage: StorageConfig | None = None,
                name: str | None = None) -> str | None:
    """Write rows as ``<base>/<table_name>/part-<name or uuid4>.parquet`` atomically; None if
    no rows. A column null in every row (psnr without a reference, std_mean without samples:
    the only nullable columns are numbers) is written as float64, so every shard has one schema."""
    if not rows:
        return None
    table = pa.Table.from_pylist(rows)
    for i, f in enumerate(table.schema):
        if pa.types.is_null(f.type):
            table = table.set_column(i, pa.field(f.name, pa.float64()), table.column(i).cast(pa.float64()))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    uri = join(base, table_name, f"part-{name or uuid.uuid4().hex}.parquet")
    return write_bytes_atomic(uri, buf.getvalue(), storage)


@retried
def read_table(base: str, table_name: str, storage: StorageConfig | None = None,
               columns: list[str] | None = None) -> pa.Table | None:
    """All shards of a table concatenated (schemas unified), or None when there are none.
    ``columns`` a shard lacks (written before the column existed) come back null."""
    fs, path = filesystem(join(base, table_name), storage)
    if not fs.exists(path):
        return None
    files = sorted(p for p in fs.find(path) if p.endswith(".parquet") and "/.tmp-" not in p)
    tables = []
    for p in files:
        with fs.open(p, "rb") as f:
            pf = pq.ParquetFile(f)
            names = pf.schema_arrow.names
            t = pf.read(columns=None if columns is None else [c for c in columns if c in names])
        for c in columns or ():
            if c not in names:
                t = t.append_column(c, pa.nulls(t.num_rows))
        tables.append(t)
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default")


def unique_rows(table: pa.Table | None, config_hash: str) -> list[dict]:
    """The rows of ``config_hash``, one per id (the last one read: same id and hash, same row)."""
    if table is None:
        return []
    rows = {r["id"]: r for r in table.to_pylist() if r["config_hash"] == config_hash}
    return list(rows.values())


def latest_errors(base: str, config_hash: str | None, storage: StorageConfig | None = None,
                  superseded_by: tuple[str, ...] = ("results",)) -> dict[str, dict]:
    """{id: its latest ``errors`` row of ``config_hash``} for ids with no row of that hash in
    any ``superseded_by`` table (a retried row that then succeeded is no longer an error);
    ``config_hash`` None: rows of any hash (evaluate, whose ids hash the whole row). Rows
    written before kinds existed get theirs from ``error_type``."""
    t = read_table(base, "errors", storage)
    if t is None:
        return {}
    done = set()
    for name in superseded_by:
        r = read_table(base, name, storage, columns=["id", "config_hash"])
        if r is not None:
            done |= {i for i, h in zip(r.column("id").to_pylist(), r.column("config_hash").to_pylist())
                     if config_hash is None or h == config_hash}
    latest: dict[str, dict] = {}
    for row in t.to_pylist():
        rid = row["id"]
        if (config_hash is not None and row["config_hash"] != config_hash) or rid in done:
            continue
        row["kind"] = row.get("kind") or kind_of_type(str(row.get("error_type")))
        row["recorded_at"] = row.get("recorded_at") or 0.0
        if rid not in latest or row["recorded_at"] >= latest[rid]["recorded_at"]:
            latest[rid] = row
    return latest


def error_counts(errors: dict[str, dict] | list[dict]) -> dict[str, int]:
    """{"permanent": n, "transient": m} of error rows (``latest_errors``' values)."""
    rows = errors.values() if isinstance(errors, dict) else errors
    counts = {PERMANENT: 0, TRANSIENT: 0}
    for r in rows:
        kind = r.get("kind") or kind_of_type(str(r.get("error_type")))
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def finished_ids(base: str, config_hash: str | None, storage: StorageConfig | None = None,
                 tables: tuple[str, ...] = ("results", "errors"), retry_errors: bool = False) -> set[str]:
    """Ids a re-run under ``config_hash`` skips: every id in a results table among ``tables``,
    and from ``errors`` the ids whose latest error is permanent (none with ``retry_errors``).
    Transient errors, and any error recorded under another hash, are retried. ``config_hash``
    None: rows of any hash (a job whose ids already hash everything that changes a row)."""
    done: set[str] = set()
    for name in tables:
        if name == "errors":
            continue
        t = read_table(base, name, storage, columns=["id", "config_hash"])
        if t is None:
            continue
        for rid, h in zip(t.column("id").to_pylist(), t.column("config_hash").to_pylist()):
            if config_hash is None or h == config_hash:
                done.add(rid)
    if "errors" in tables and not retry_errors:
        done |= {rid for rid, r in latest_errors(base, config_hash, storage, superseded_by=()).items()
                 if r["kind"] == PERMANENT}
    return done
