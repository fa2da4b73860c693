"""What a job reports at the end: counts, means from the tables, where outputs and the run are."""
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
    run_id: str | None = None
    tracking_uri: str | None = None
    artifact_folders: tuple[str, ...] = ("results", "errors", "comparisons")

    def progress(self) -> None:
        print(f"[{self.job}] {self.done + self.errors}/{self.planned} rows "
              f"({self.errors} errors)", file=sys.stderr, flush=True)

    def finalize_from_tables(self, storage: StorageConfig) -> None:
        """Means over this config's rows in the results table (resumed runs included)."""
        from pipelines.tables import read_table

        res = read_table(self.output, "results", storage)
        err = read_table(self.output, "errors", storage, columns=["config_hash"])
        if res is not None:
            self.total_results, self.means = mean_columns(res, self.config_hash, MEAN_COLUMNS)
        if err is not None:
            self.total_errors = sum(1 for h in err.column("config_hash").to_pylist() if h == self.config_hash)

    def log_mlflow(self, cfg: MlflowConfig, params: dict, storage: StorageConfig) -> None:
        from pipelines.run_artifacts import collect_artifacts
        from pipelines.tracking import log_job_run

        metrics = {f"mean_{k}": v for k, v in self.means.items()}
        metrics.update(results=self.total_results, errors=self.total_errors, seconds=self.seconds)
        log_job_run(self, cfg, params, metrics, collect_artifacts(self.output, storage, self.artifact_folders))

    def table(self) -> str:
        lines = [f"restoray {self.job}: {self.total_results} results, {self.total_errors} errors "
                 f"({self.done} new, {self.skipped} already done), {self.seconds:.1f} s"]
        if self.means:
            lines.append("  " + "  ".join(f"{k:>9}" for k in self.means))
            lines.append("  " + "  ".join(f"{v:9.4f}" for v in self.means.values()))
        lines.append(f"  outputs:  {redact_uri(self.output)}")
        if self.run_id:
            lines.append(f"  mlflow:   run {self.run_id} at {redact_uri(self.tracking_uri)}")
        return "\n".join(lines)


def _eq(table, value):
    import pyarrow.compute as pc

    return pc.equal(table.column("config_hash"), value)


def mean_columns(table, config_hash: str, columns: tuple[str, ...]) -> tuple[int, dict[str, float]]:
    """(rows of ``config_hash``, {column: mean of its non-null, non-NaN values}) of a table."""
    if table is None:
        return 0, {}
    table = table.filter(_eq(table, config_hash))
    means = {}
    for col in columns:
        if col in table.column_names:
            vals = [v for v in table.column(col).to_pylist() if v is not None and not math.isnan(v)]
            means[col] = sum(vals) / len(vals) if vals else math.nan
    return table.num_rows, means
