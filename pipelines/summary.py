"""What a job reports at the end: counts, means from the tables, where outputs and the run are,
and whether the run failed (``failure``: the CLI's exit status)."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

from pipelines.redact import redact_uri
from pipelines.sections import MlflowConfig, StorageConfig

MEAN_COLUMNS = ("psnr", "ssim", "lq_psnr", "lq_ssim", "seconds", "nfe")


@dataclass
class JobSummary:
    job: str
    output: str
    config_hash: str
    planned: int = 0
    skipped: int = 0
    done: int = 0
    errors: int = 0
    seconds: float = 0.0
    ray_startup_s: float = 0.0
    total_results: int = 0
    total_errors: int = 0
    means: dict[str, float] = field(default_factory=dict)
    errors_by_kind: dict[str, int] = field(default_factory=dict)  # {"permanent": n, "transient": m}
    run_id: str | None = None
    tracking_uri: str | None = None
    artifact_folders: tuple[str, ...] = ("results", "errors", "comparisons")

    def progress(self) -> None:
        print(f"[{self.job}] {self.done + self.errors}/{self.planned} rows "
              f"({self.errors} errors)", file=sys.stderr, flush=True)

    def finalize_from_tables(self, storage: StorageConfig) -> None:
        """Means over this config's rows in the results table (resumed runs included), each id
        once; errors: the latest of each id without a result, by kind."""
        from pipelines.tables import read_table

        res = read_table(self.output, "results", storage)
        if res is not None:
            self.total_results, self.means = mean_columns(res, self.config_hash, MEAN_COLUMNS)
        self.count_errors(storage, ("results",))

    def count_errors(self, storage: StorageConfig, superseded_by: tuple[str, ...]) -> None:
        """``total_errors`` and ``errors_by_kind`` from the errors table (pipelines.tables.latest_errors)."""
        from pipelines.tables import error_counts, latest_errors

        self.errors_by_kind = error_counts(latest_errors(self.output, self.config_hash, storage, superseded_by))
        self.total_errors = sum(self.errors_by_kind.values())

    def failure(self, max_error_fraction: float) -> str | None:
        """Why the run exits 1, or None: rows that failed transiently remain (the output is
        incomplete; a re-run retries them), or more than ``max_error_fraction`` of the rows
        (results + errors) failed. Permanent errors within the fraction exit 0: an archive
        with a few corrupt files is a finished job, the summary and ``errors`` list them."""
        transient = self.errors_by_kind.get("transient", 0)
        rows = self.total_results + self.total_errors
        if transient:
            return (f"{transient} of {rows} rows failed transiently (storage, network, timeout or a lost worker); "
                    f"run again to retry them")
        if rows and self.total_errors / rows > max_error_fraction:
            return (f"{self.total_errors} of {rows} rows failed, more than max_error_fraction "
                    f"{max_error_fraction:g}; the errors table says why")
        return None

    def errors_text(self) -> str:
        """"3 errors (2 permanent, 1 transient)"."""
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.errors_by_kind.items()) if n)
        return f"{self.total_errors} errors" + (f" ({kinds})" if kinds else "")

    def log_mlflow(self, cfg: MlflowConfig, params: dict, storage: StorageConfig) -> None:
        from pipelines.run_artifacts import collect_artifacts
        from pipelines.tracking import log_job_run

        metrics = {f"mean_{k}": v for k, v in self.means.items()}
        metrics.update(results=self.total_results, errors=self.total_errors, seconds=self.seconds,
                       **{f"errors_{k}": n for k, n in self.errors_by_kind.items()})
        log_job_run(self, cfg, params, metrics, collect_artifacts(self.output, storage, self.artifact_folders))

    def table(self) -> str:
        lines = [f"restoray {self.job}: {self.total_results} results, {self.errors_text()} "
                 f"({self.done} new, {self.skipped} already done), {self.seconds:.1f} s"]
        if self.means:
            lines.append("  " + "  ".join(f"{k:>9}" for k in self.means))
            lines.append("  " + "  ".join(f"{v:9.4f}" for v in self.means.values()))
        lines.append(f"  outputs:  {redact_uri(self.output)}")
        if self.run_id:
            lines.append(f"  mlflow:   run {self.run_id} at {redact_uri(self.tracking_uri)}")
        return "\n".join(lines)


def mean_columns(table, config_hash: str, columns: tuple[str, ...]) -> tuple[int, dict[str, float]]:
    """(ids of ``config_hash``, {column: mean of its non-null, non-NaN values}) of a table,
    each id counted once (a row written twice is not double-counted)."""
    from pipelines.tables import unique_rows

    if table is None:
        return 0, {}
    rows = unique_rows(table, config_hash)
    means = {}
    for col in columns:
        if col in table.column_names:
            vals = [r[col] for r in rows if r[col] is not None and not math.isnan(r[col])]
            means[col] = sum(vals) / len(vals) if vals else math.nan
    return len(rows), means
