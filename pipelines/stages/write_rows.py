"""Stage `write_rows`: the last stage of restore-images, evaluate and synth-pairs. The worker
turns its batch into result and error rows (the job's own ``result_row`` and
pipelines.streaming.error_row, so the tables' schemas are the driver-written ones), writes
them as one Parquet shard per table (pipelines.tables.write_shard, atomic on local paths and
object stores), and passes on only a small row per input row:
``id``, ``status`` (DONE, ERROR or LEASE_LOST) and ``error_kind``, plus the job's
``keep`` columns (what its ``on_result`` reads), which ``keep_ids``, when given, limits to
those ids (the others get an empty value of their type).

A shard is named after its rows (``shard_name``: the config hash and the batch's ids), so a
write task that Ray retries (its node lost after the write landed) replaces its shard
instead of adding a copy; batches of one run hold disjoint ids, so names never collide
across workers, and a re-run writes new names unless it writes the very same rows again.

A shard is one batch: the job runs this stage with ``batch_size`` = its shard size
(``flush_rows`` / ``shard_rows``) and a fractional ``num_cpus`` (WRITE_CPUS), which keeps
Ray Data from fusing it into the stage before it: fused, the bundle of a shard's rows
would be gathered before that stage (pixel rows), not after it (table rows).

Before writing, the stage reads the output's lease (pipelines.lease) when given one: if
another run holds it, nothing is written and the rows come back LEASE_LOST (the driver
then stops). What is left: a shard whose lease read came just before the take-over.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from actors.columns import batch_to_rows, rows_to_batch
from pipelines.sections import StorageConfig

DONE, ERROR, LEASE_LOST = "done", "error", "lease_lost"
# A shard write is I/O. A value the load / finish stages do not use (RayConfig.num_cpus_per_task,
# 0.25) keeps it unfused from the stage before it (above).
WRITE_CPUS = 0.2


def shard_name(config_hash: str, rows: list[dict]) -> str:
    """32 hex digits of sha256 over the config hash and the rows' sorted ids."""
    ids = "\n".join(sorted(str(r["id"]) for r in rows))
    return hashlib.sha256(f"{config_hash}\n{ids}".encode()).hexdigest()[:32]


@dataclass
class WriteRowsStage:
    """``result_row(row) -> dict``: a module-level function (or a partial of one), pickled to
    the workers; ``lease_uri``/``run_id``: the lease this run holds (None: no lease check)."""

    output: str
    results_table: str
    result_row: Callable[[dict], dict]
    config_hash: str
    storage: StorageConfig = field(default_factory=StorageConfig)
    error_extra: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    keep_ids: frozenset[str] | None = None
    lease_uri: str | None = None
    run_id: str | None = None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from pipelines.streaming import error_row
        from pipelines.tables import write_shard

        rows = batch_to_rows(batch)
        results, errors, small = [], [], []
        for row in rows:
            if row.get("error_stage"):
                errors.append(error_row(row, self.config_hash, self.error_extra))
                small.append(self.small_row(row, ERROR, errors[-1]["kind"]))
            else:
                results.append(self.result_row(row))
                small.append(self.small_row(row, DONE, ""))
        if self.lease_lost():
            return rows_to_batch([{**r, "status": LEASE_LOST} for r in small])
        write_shard(self.output, self.results_table, results, self.storage, shard_name(self.config_hash, results))
        write_shard(self.output, "errors", errors, self.storage, shard_name(self.config_hash, errors))
        return rows_to_batch(small)

    def small_row(self, row: dict, status: str, kind: str) -> dict:
        shown = self.keep_ids is None or str(row["id"]) in self.keep_ids
        return {"id": str(row["id"]), "status": status, "error_kind": kind,
                **{k: row[k] if shown else type(row[k])() for k in self.keep}}

    def lease_lost(self) -> bool:
        """Another run holds the output's lease (an unreadable or missing one is not taken:
        this run's heartbeat rewrites it)."""
        if self.lease_uri is None:
            return False
        from pipelines.lease import read_lease

        holder = read_lease(self.lease_uri, self.storage)
        return holder is not None and holder.get("run_id") not in (None, self.run_id)
