"""The driver side of every job. ``stream_counts``: the workers wrote the tables
(pipelines.stages.write_rows); the driver counts their small rows, reports progress and
calls the job's hooks. ``stream_to_tables`` (restore-video): the driver routes full rows to
result or error tables and writes Parquet shards as buffers fill.
"""
from __future__ import annotations

from collections.abc import Callable

from pipelines.sections import StorageConfig


def error_row(row: dict, chash: str, extra: tuple[str, ...] = ()) -> dict:
    """An ``errors`` table row (pipelines.tables.ERROR_COLUMNS, ``extra`` columns after
    ``relative_path``); a row without ``error_kind`` gets the kind of its ``error_type``."""
    from pipelines.tables import error_record

    return error_record(row["id"], row["source_uri"], row["relative_path"], row["error_stage"], row["error_type"],
                        row["error_message"], str(row.get("error_kind") or ""), chash,
                        {k: str(row[k]) for k in extra})


def stream_to_tables(ds, output: str, storage: StorageConfig, shard_rows: int, summary, chash: str,
                     result_row: Callable[[dict], dict], results_table: str = "results",
                     error_extra: tuple[str, ...] = (), on_result: Callable[[dict], None] | None = None,
                     after_batch: Callable[[], None] | None = None) -> None:
    """Iterate ``ds`` on the driver; a row with ``error_stage`` goes to ``errors``
    (``error_row``), any other to ``results_table`` (``result_row(row)``), then ``on_result(row)``.
    Shards of ``shard_rows`` rows are written as buffers fill, the rest at the end; ``summary``
    counts ``done``/``errors`` and reports progress after each batch, then ``after_batch()``
    runs (the output lease's check: a run that lost its lease stops writing)."""
    from actors.columns import batch_to_rows
    from pipelines.tables import write_shard

    buffers: dict[str, list[dict]] = {results_table: [], "errors": []}

    def flush(force: bool = False) -> None:
        for name, buf in buffers.items():
            while len(buf) >= shard_rows or (force and buf):
                write_shard(output, name, buf[:shard_rows], storage)
                del buf[:shard_rows]

    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for row in batch_to_rows(batch):
            if row.get("error_stage"):
                buffers["errors"].append(error_row(row, chash, error_extra))
                summary.errors += 1
                continue
            buffers[results_table].append(result_row(row))
            summary.done += 1
            if on_result is not None:
                on_result(row)
        flush()
        summary.progress()
        if after_batch is not None:
            after_batch()
    flush(force=True)


def stream_counts(ds, summary, on_result: Callable[[dict], None] | None = None,
                  after_batch: Callable[[], None] | None = None) -> None:
    """Iterate the write stage's small rows (id, status, error_kind, the job's kept columns):
    ``summary`` counts ``done``/``errors`` and reports progress after each batch, then
    ``after_batch()`` (the lease check) runs; ``on_result(row)`` sees each done row. A row
    whose worker found another run's lease (nothing of its batch written) raises LeaseLost."""
    from actors.columns import batch_to_rows
    from pipelines.lease import LeaseLost
    from pipelines.redact import redact_uri
    from pipelines.stages.write_rows import DONE, LEASE_LOST

    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for row in batch_to_rows(batch):
            status = str(row["status"])
            if status == LEASE_LOST:
                raise LeaseLost(f"another run took over the lease on {redact_uri(summary.output)}; this run's "
                                f"workers stopped writing (its rows so far are kept; the other run skips them)")
            if status != DONE:
                summary.errors += 1
                continue
            summary.done += 1
            if on_result is not None:
                on_result(row)
        summary.progress()
        if after_batch is not None:
            after_batch()
