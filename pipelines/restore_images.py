"""Job `restore-images`: read -> decode [-> degrade] -> restore (actor pool) -> metrics/write.

Results and errors are written as Parquet shards by the workers (pipelines.stages.write_rows,
``flush_rows`` rows a shard) as rows finish, so a crash keeps what was finished and a re-run
skips it (same config hash); the driver gets ids and counts.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import posixpath
from dataclasses import dataclass, field

from pipelines.config import ConfigError, config_hash
from pipelines.job import RUN_KEYS, JobConfig, Plan, StreamingJob, run_job
from pipelines.prior_files import check_prior_files
from pipelines.registry_check import (
    check_blind,
    check_concrete,
    check_degradation,
    check_prior,
    check_solver,
)
from pipelines.summary import JobSummary

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RestoreImagesConfig(JobConfig):
    """Restore every image under ``input``; see configs/restore-images.yaml."""

    job: str = "restore-images"
    input: str
    reference: str | None = None
    synthesize: bool = True
    degradation: dict = field(default_factory=lambda: {"name": "sr", "scale": 4, "noise_sigma": 0.01})
    solver: dict = field(default_factory=lambda: {"name": "diffpir", "nfe": 20})
    prior: dict = field(default_factory=lambda: {"name": "embedded"})
    output: str = "./runs/restore"
    flush_rows: int = 64

    def validate(self) -> None:
        super().validate()
        check_degradation(self.degradation, "degradation")
        check_solver(self.solver, "solver")
        check_prior(self.prior, "prior")
        check_prior_files(self.prior, "prior")
        check_blind(self.degradation, self.solver, self.synthesize)
        if not self.synthesize:
            check_concrete(self.degradation, "degradation")
        if self.reference and self.synthesize:
            raise ConfigError("config key 'reference' is only used with synthesize: false "
                              "(with synthesize: true the input itself is the reference)")

    def resolved(self) -> RestoreImagesConfig:
        """Degradation, solver (with the preset of the degradation's task family) and prior
        written out to their full defaults (pipelines.spec_defaults)."""
        from pipelines.spec_defaults import resolve_degradation, resolve_prior, resolve_solver

        return dataclasses.replace(self, degradation=resolve_degradation(self.degradation),
                                   solver=resolve_solver(self.solver, self.degradation),
                                   prior=resolve_prior(self.prior))


def result_hash(cfg: RestoreImagesConfig) -> str:
    """The config hash rows are recorded (and resumed) under: the result-changing keys and the
    digest of the prior's weights file(s) and of a solver's own (a UD2M unfolding, a blind
    solver's networks), so retrained weights are not taken for done."""
    from pipelines.prior_files import prior_digest, solver_digest

    extra = {"prior_weights": prior_digest(cfg.prior)}
    solver_weights = solver_digest(cfg.solver, cfg.prior)
    if solver_weights:
        extra["solver_weights"] = solver_weights
    return config_hash(cfg, RUN_KEYS, extra=extra)


def plan_rows(cfg: RestoreImagesConfig, chash: str, problems: list[dict] | None = None) -> tuple[list[dict], int]:
    """Input rows still to do (resume skips finished ids), and how many were already done.

    Inputs that must not run (pipelines.output_paths.screen_inputs: a path that escapes the
    output, a FIFO or device, several inputs for one output name) are no rows; their error
    rows not yet recorded are appended to ``problems`` when given."""
    from pipelines.inputs import resolve_input
    from pipelines.output_paths import screen_inputs
    from pipelines.stages.finish import output_name
    from pipelines.storage import list_inputs
    from pipelines.tables import finished_ids, image_id

    listed = list_inputs(resolve_input(cfg.input, cfg.output), cfg.storage)
    files, refused = screen_inputs(listed, lambda rel: [output_name(rel)])
    refs = match_references(files, screen_inputs(list_inputs(cfg.reference, cfg.storage), lambda rel: ())[0]
                            if cfg.reference else [])
    done = finished_ids(cfg.output, chash, cfg.storage, retry_errors=cfg.retry_errors)
    rows = []
    for f in files:
        rid = image_id(f.uri)
        if rid not in done:
            rows.append({"id": rid, "source_uri": f.uri, "relative_path": f.relative_path,
                         "reference_uri": refs.get(f.relative_path, "")})
    new_problems = [p for p in refused if p["id"] not in done]
    if problems is not None:
        problems.extend(new_problems)
    return rows, len(listed) - len(rows) - len(new_problems)


def match_references(files: list, refs: list) -> dict[str, str]:
    """{input relative path: reference URI}: the reference with the same relative path, else
    the one reference with the same stem (``lq/a.jpg`` -> ``a.png``) when exactly one has it."""
    by_path = {r.relative_path: r.uri for r in refs}
    by_stem: dict[str, list[str]] = {}
    for r in refs:
        by_stem.setdefault(posixpath.splitext(r.relative_path)[0], []).append(r.uri)
    out = {}
    for f in files:
        same_stem = by_stem.get(posixpath.splitext(f.relative_path)[0], [])
        uri = by_path.get(f.relative_path) or (same_stem[0] if len(same_stem) == 1 else "")
        if uri:
            out[f.relative_path] = uri
    return out


class RestoreImagesJob(StreamingJob):
    """Rows: one per input image (``plan_rows``); stages: load [+ degrade] -> restore (actor
    pool) -> finish (metrics, restored PNG, comparisons)."""

    cfg: RestoreImagesConfig

    def config_hash(self) -> str:
        return result_hash(self.cfg)

    def plan(self, chash: str) -> Plan:
        """Rows to run; inputs refused at plan time go to ``errors`` now, never read."""
        from pipelines.streaming import error_row
        from pipelines.tables import write_shard

        problems: list[dict] = []
        plan = Plan(*plan_rows(self.cfg, chash, problems))
        self.plan_errors = len(problems)
        write_shard(self.cfg.output, "errors", [error_row(p, chash) for p in problems], self.cfg.storage)
        return plan

    def summary(self, chash: str, plan: Plan) -> JobSummary:
        summary = super().summary(chash, plan)
        summary.errors += self.plan_errors
        return summary

    def stages(self, ds, chash: str, plan: Plan):
        from actors.restore import RestoreActor
        from pipelines.ray_runtime import actor_pool_args, task_args
        from pipelines.stages.finish import FinishStage
        from pipelines.stages.load import LoadStage

        cfg = self.cfg
        compare = tuple(r["id"] for r in plan.rows[: cfg.comparisons])
        ds = ds.map_batches(LoadStage(cfg.degradation, cfg.synthesize, cfg.seed, cfg.storage, cfg.max_pixels),
                            **task_args(cfg.ray, cfg.ray.batch_size))
        ds = ds.map_batches(RestoreActor, fn_constructor_kwargs={
            "solver": cfg.solver, "prior": cfg.prior, "seed": cfg.seed,
            "device": "cuda" if cfg.ray.num_gpus else "cpu", "torch_threads": cfg.ray.torch_threads,
            "solve_batch": cfg.ray.solve_batch}, **actor_pool_args(cfg.ray))
        return ds.map_batches(FinishStage(cfg.output, chash, compare, cfg.storage), **task_args(cfg.ray, cfg.ray.batch_size))

    def result_row(self, row: dict, chash: str) -> dict:
        return result_row(row, self.cfg.seed, chash)

    def row_function(self, chash: str):
        """The workers write the tables (pipelines.stages.write_rows)."""
        return functools.partial(result_row, seed=self.cfg.seed, chash=chash)


def run(cfg: RestoreImagesConfig) -> JobSummary:
    return run_job(RestoreImagesJob(cfg))


def result_row(row: dict, seed: int, chash: str) -> dict:
    """A ``results`` row. ``samples``: posterior samples drawn (solver.samples); ``estimate``:
    what ``restored_uri`` holds, "single" (one solver run), "mean" (the mean of the samples,
    the MMSE estimate) or "sample" (one of them); ``std_mean``/``std_uri``: the mean and the
    image (std/<relative_path>.png) of the per-pixel posterior std, null / "" when none;
    ``preset``: the task family whose preset the row ran with ("none" when disabled);
    ``solver_config``: the solver's config as it ran (preset + the config's keys), JSON."""
    text = {k: str(row[k]) for k in ("id", "source_uri", "relative_path", "degradation", "solver", "prior")}
    return {**text, "width": int(row["width"]), "height": int(row["height"]), "nfe": int(row["nfe"]),
            "nfe_backward": int(row["nfe_backward"]), "seed": seed, "config_hash": chash,
            "seconds": float(row["seconds"]),
            **{k: _nullable(row[k]) for k in ("psnr", "ssim", "lq_psnr", "lq_ssim")},
            "restored_uri": str(row["restored_uri"]), "samples": int(row["samples"]),
            "estimate": str(row["estimate"]), "std_mean": _nullable(row["std_mean"]),
            "std_uri": str(row["std_uri"]), "preset": str(row["preset"]),
            "solver_config": str(row["solver_config"])}


def _nullable(v) -> float | None:
    return None if v is None or v != v else float(v)
