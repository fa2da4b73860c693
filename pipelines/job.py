"""The streaming job skeleton: plan rows -> Ray Data stages -> rows streamed to Parquet ->
summary -> MLflow. restore-images, synth-pairs and evaluate are each this skeleton plus
their plan, their stages and their row schema; ``run_job`` is the one ``run()``.

How a job plugs in (restore-video as the example):

1. Its config extends ``JobConfig`` with its own keys only (``job`` and ``output`` need
   defaults; ``flush_rows``, the results shard size, is the job's own when it has one)::

       @dataclass(frozen=True, kw_only=True)
       class RestoreVideoConfig(JobConfig):
           job: str = "restore-video"
           input: str
           window: int = 16
           output: str = "./runs/restore-video"
           flush_rows: int = 64

           def validate(self) -> None:  # raise ConfigError naming the key
               super().validate()  # the common keys, sections and output
               ...

2. Its job is a ``StreamingJob`` with three methods::

       class RestoreVideoJob(StreamingJob):
           def plan(self, chash) -> Plan: ...             # rows still to do (resume: skip ids
                                                          #   already in the tables for chash)
           def stages(self, ds, chash, plan): ...         # the map_batches chain after from_items
           def result_row(self, row, chash) -> dict: ...  # one results-table row: the schema

   To have the workers write the tables (the driver then gets small rows: id, status, error
   kind), give ``row_function(chash)``: ``result_row`` as a picklable module-level function
   (pipelines.stages.write_rows); ``keep`` / ``keep_ids()`` name what ``on_result`` still
   needs. Without it (restore-video) the driver writes the tables from full rows.

   Hooks, when the defaults do not fit: ``hash_exclude`` (keys that do not change results;
   default ``RUN_KEYS``), ``config_hash()`` (e.g. add weights digests), ``summary_class`` or
   ``summary(chash, plan)``, ``num_blocks(n)``, ``flush_rows`` (default ``cfg.flush_rows``),
   ``results_table`` ("results"), ``error_extra`` (error-table columns), ``on_result(row)``
   (keep comparison images as rows stream in), ``finish(summary)`` (default: totals and
   means from the tables, then the MLflow run). Per-run state lives on the job object.

3. ``def run(cfg: RestoreVideoConfig) -> JobSummary: return run_job(RestoreVideoJob(cfg))``,
   and one entry in ``pipelines/jobs.py``.

``restoray --help`` imports every job module: keep Ray, torch, numpy and pyarrow imports
inside functions (tests/pipelines/test_job.py checks).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pipelines.config import config_hash, to_dict
from pipelines.sections import LeaseConfig, MlflowConfig, RayConfig, StorageConfig
from pipelines.streaming import stream_counts, stream_to_tables
from pipelines.summary import JobSummary

# keys that change where and how fast a job runs, never a row's values: not in the config hash.
# ``max_pixels`` is not one of them: it decides whether an input is a result or an error row,
# so raising it retries those errors (jobs whose rows it cannot change exclude it themselves)
RUN_KEYS = ("output", "ray", "storage", "mlflow", "lease", "comparisons", "flush_rows", "max_error_fraction",
            "retry_errors")


def _default_max_pixels() -> int:
    from operators.media import DEFAULT_MAX_PIXELS  # numpy: imported when a config is built

    return DEFAULT_MAX_PIXELS


@dataclass(frozen=True, kw_only=True)
class JobConfig:
    """The keys every streaming job has. ``comparisons``: side-by-side images kept for the
    first N items; ``max_pixels``: larger inputs become error rows; ``max_error_fraction``:
    the run exits 1 when more of its rows than this failed, or any failed transiently
    (pipelines.summary.JobSummary.failure); ``retry_errors`` (``--retry-errors``): retry every
    error row, permanent ones included; ``lease``: one run per output (pipelines.lease)."""

    job: str
    output: str
    seed: int = 0
    comparisons: int = 4
    max_pixels: int = field(default_factory=_default_max_pixels)
    max_error_fraction: float = 0.5
    retry_errors: bool = False
    ray: RayConfig = field(default_factory=RayConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    lease: LeaseConfig = field(default_factory=LeaseConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)

    def validate(self) -> None:
        """Checks beyond types, at load; a job's config extends this and calls
        ``super().validate()`` first: every number finite, sizes >= 1, counts >= 0, the
        sections (Ray pool, storage, MLflow URI) and the output outside the inputs."""
        from pipelines.validation import check_at_least, check_finite, check_output_outside

        check_finite(to_dict(self))
        check_at_least("comparisons", self.comparisons, 0)
        check_at_least("max_pixels", self.max_pixels, 1)
        if not 0.0 <= self.max_error_fraction <= 1.0:
            from pipelines.config import ConfigError

            raise ConfigError(f"config key 'max_error_fraction': must be in [0, 1], got {self.max_error_fraction}")
        if hasattr(self, "flush_rows"):
            check_at_least("flush_rows", self.flush_rows, 1)
        self.ray.validate("ray")
        self.storage.validate("storage")
        check_output_outside(self.output, self.inputs())
        self.mlflow.validate("mlflow")

    def resolved(self) -> JobConfig:
        """This config with its solver, prior and degradation specs written out to their full
        defaults (pipelines.spec_defaults), so a dry run, the MLflow params and the config
        hash see every default; idempotent. Jobs with such specs override it."""
        return self

    def inputs(self) -> dict[str, str]:
        """{config key: URI} of what the job reads (the output must not be inside any)."""
        return {k: getattr(self, k) for k in ("input", "reference") if isinstance(getattr(self, k, None), str)}


@dataclass
class Plan:
    """``rows``: the Ray Data input rows still to do; ``skipped``: items already recorded;
    ``planned``: items to do, ``len(rows)`` unless a row fans out (synth-pairs: its crops)."""

    rows: list[dict]
    skipped: int = 0
    planned: int | None = None

    def __post_init__(self) -> None:
        if self.planned is None:
            self.planned = len(self.rows)


class StreamingJob:
    """One run of a streaming job; see the module docstring for what to override."""

    hash_exclude: tuple[str, ...] = RUN_KEYS
    results_table: str = "results"
    error_extra: tuple[str, ...] = ()
    summary_class: type[JobSummary] = JobSummary
    keep: tuple[str, ...] = ()  # columns of a worker-written row that on_result reads

    def __init__(self, cfg: JobConfig) -> None:
        self.cfg = cfg.resolved()

    def config_hash(self) -> str:
        return config_hash(self.cfg, self.hash_exclude)

    def plan(self, chash: str) -> Plan:
        raise NotImplementedError(f"{type(self).__name__}.plan")

    def stages(self, ds, chash: str, plan: Plan):
        raise NotImplementedError(f"{type(self).__name__}.stages")

    def result_row(self, row: dict, chash: str) -> dict:
        raise NotImplementedError(f"{type(self).__name__}.result_row")

    def summary(self, chash: str, plan: Plan) -> JobSummary:
        return self.summary_class(job=self.cfg.job, output=self.cfg.output, config_hash=chash,
                                  skipped=plan.skipped, planned=plan.planned)

    def num_blocks(self, n: int) -> int:
        """Ray Data blocks for ``n`` planned rows: 4 per actor, so every actor has work queued."""
        return max(1, min(n, 4 * max(1, self.cfg.ray.actors)))

    @property
    def flush_rows(self) -> int:
        return self.cfg.flush_rows

    def row_function(self, chash: str) -> Callable[[dict], dict] | None:
        """``result_row`` for the workers' write stage: a module-level function or a partial
        of one (the job object is never shipped); None: the driver writes the tables."""
        return None

    def keep_ids(self) -> frozenset[str] | None:
        """Ids whose ``keep`` columns reach the driver (None: every id's)."""
        return None

    def on_result(self, row: dict) -> None:
        """Called with every result row as it arrives on the driver: the full row when the
        driver writes the tables, else the write stage's small row (id, status, ``keep``)."""

    def finish(self, summary: JobSummary) -> None:
        summary.finalize_from_tables(self.cfg.storage)
        summary.log_mlflow(self.cfg.mlflow, to_dict(self.cfg), self.cfg.storage)


def run_job(job: StreamingJob) -> JobSummary:
    """Take the output's lease (pipelines.lease: a second run refuses or waits), hash the
    config, plan, start Ray (only when there is work), stream the stages' rows to Parquet,
    then ``job.finish``; the lease is released at the end, failures included.
    ``summary.seconds`` counts from Ray startup to the last row."""
    from pipelines.lease import OutputLease

    cfg = job.cfg
    with OutputLease(cfg.output, cfg.lease, cfg.storage) as lease:
        chash = job.config_hash()
        plan = job.plan(chash)
        summary = job.summary(chash, plan)
        t0 = time.perf_counter()
        if plan.rows:
            import ray

            from pipelines.ray_runtime import init_ray

            init_ray(cfg.ray)
            summary.ray_startup_s = time.perf_counter() - t0
            ds = ray.data.from_items(plan.rows, override_num_blocks=job.num_blocks(len(plan.rows)))
            stream_job(job, job.stages(ds, chash, plan), chash, summary, lease)
        summary.seconds = time.perf_counter() - t0
        job.finish(summary)
    return summary


def stream_job(job: StreamingJob, ds, chash: str, summary: JobSummary, lease=None) -> None:
    """Stream ``ds`` into the job's results and errors tables: written by the workers in a
    last ``map_batches`` stage of ``job.flush_rows`` rows per shard when the job has a
    ``row_function``, else by the driver. ``lease`` (pipelines.lease.OutputLease): checked
    after every batch on the driver, and before every shard on the workers."""
    from pipelines.stages.write_rows import WRITE_CPUS, WriteRowsStage

    cfg, after_batch = job.cfg, None if lease is None else lease.check
    fn = job.row_function(chash)
    if fn is None:
        stream_to_tables(ds, cfg.output, cfg.storage, job.flush_rows, summary, chash,
                         lambda row: job.result_row(row, chash), results_table=job.results_table,
                         error_extra=job.error_extra, on_result=job.on_result, after_batch=after_batch)
        return
    held = lease is not None and cfg.lease.enabled
    stage = WriteRowsStage(cfg.output, job.results_table, fn, chash, cfg.storage, job.error_extra, job.keep,
                           job.keep_ids(), lease.uri if held else None, lease.run_id if held else None)
    ds = ds.map_batches(stage, batch_size=job.flush_rows, num_cpus=WRITE_CPUS)
    stream_counts(ds, summary, job.on_result, after_batch)
