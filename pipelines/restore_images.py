"""Job `restore-images`: read -> decode [-> degrade] -> restore (actor pool) -> metrics/write.

Results and errors stream back to the driver and are written as Parquet shards as they
arrive, so a crash keeps what was finished and a re-run skips it (same config hash).
"""
from __future__ import annotations

import json
import logging
import posixpath
import time
from dataclasses import dataclass, field

from operators.media import DEFAULT_MAX_PIXELS
from pipelines.config import ConfigError, config_hash, to_dict
from pipelines.prior_files import check_prior_files
from pipelines.registry_check import (
    check_concrete,
    check_degradation,
    check_prior,
    check_solver,
)
from pipelines.sections import MlflowConfig, RayConfig, StorageConfig
from pipelines.summary import JobSummary

log = logging.getLogger(__name__)
RESULT_EXCLUDE = ("output", "ray", "storage", "mlflow", "comparisons", "flush_rows", "max_pixels")


@dataclass(frozen=True)
class RestoreImagesConfig:
    """Restore every image under ``input``; see configs/restore-images.yaml."""

    input: str
    job: str = "restore-images"
    reference: str | None = None
    synthesize: bool = True
    degradation: dict = field(default_factory=lambda: {"name": "sr", "scale": 4, "noise_sigma": 0.01})
    solver: dict = field(default_factory=lambda: {"name": "diffpir", "nfe": 20})
    prior: dict = field(default_factory=lambda: {"name": "embedded"})
    output: str = "./runs/restore"
    seed: int = 0
    comparisons: int = 4
    flush_rows: int = 64
    max_pixels: int = DEFAULT_MAX_PIXELS
    ray: RayConfig = field(default_factory=RayConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)

    def validate(self) -> None:
        check_degradation(self.degradation, "degradation")
        check_solver(self.solver, "solver")
        check_prior(self.prior, "prior")
        check_prior_files(self.prior, "prior")
        if not self.synthesize:
            check_concrete(self.degradation, "degradation")
        if self.reference and self.synthesize:
            raise ConfigError("config key 'reference' is only used with synthesize: false "
                              "(with synthesize: true the input itself is the reference)")


def result_hash(cfg: RestoreImagesConfig) -> str:
    """The config hash rows are recorded (and resumed) under: the result-changing keys and the
    digest of the prior's weights file(s), so retrained weights are not taken for done."""
    from pipelines.prior_files import prior_digest

    return config_hash(cfg, RESULT_EXCLUDE, extra={"prior_weights": prior_digest(cfg.prior)})


def plan_rows(cfg: RestoreImagesConfig, chash: str) -> tuple[list[dict], int]:
    """Input rows still to do (resume skips finished ids), and how many were already done."""
    from pipelines.inputs import resolve_input
    from pipelines.storage import list_inputs
    from pipelines.tables import finished_ids, image_id

    files = list_inputs(resolve_input(cfg.input, cfg.output), cfg.storage)
    refs = match_references(files, list_inputs(cfg.reference, cfg.storage) if cfg.reference else [])
    done = finished_ids(cfg.output, chash, cfg.storage)
    rows = []
    for f in files:
        rid = image_id(f.uri)
        if rid in done:
            continue
        rows.append({"id": rid, "source_uri": f.uri, "relative_path": f.relative_path,
                     "reference_uri": refs.get(f.relative_path, "")})
    return rows, len(files) - len(rows)


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


def run(cfg: RestoreImagesConfig) -> JobSummary:
    import ray

    from actors.restore import RestoreActor
    from pipelines.ray_runtime import actor_pool_args, init_ray
    from pipelines.stages.finish import FinishStage
    from pipelines.stages.load import LoadStage
    from pipelines.streaming import stream_to_tables

    chash = result_hash(cfg)
    rows, skipped = plan_rows(cfg, chash)
    summary = JobSummary(job=cfg.job, output=cfg.output, config_hash=chash, skipped=skipped, planned=len(rows))
    t0 = time.perf_counter()
    if rows:
        init_ray(cfg.ray)
        summary.ray_startup_s = time.perf_counter() - t0
        compare = tuple(r["id"] for r in rows[: cfg.comparisons])
        ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 4 * max(1, cfg.ray.actors))))
        ds = ds.map_batches(LoadStage(cfg.degradation, cfg.synthesize, cfg.seed, cfg.storage, cfg.max_pixels),
                            batch_size=cfg.ray.batch_size)
        ds = ds.map_batches(RestoreActor, fn_constructor_kwargs={
            "solver": cfg.solver, "prior": cfg.prior, "seed": cfg.seed,
            "device": "cuda" if cfg.ray.num_gpus else "cpu", "torch_threads": cfg.ray.torch_threads},
            **actor_pool_args(cfg.ray))
        ds = ds.map_batches(FinishStage(cfg.output, chash, compare, cfg.storage), batch_size=cfg.ray.batch_size)
        stream_to_tables(ds, cfg.output, cfg.storage, cfg.flush_rows, summary, chash,
                         lambda row: result_row(row, cfg, chash))
    summary.seconds = time.perf_counter() - t0
    summary.finalize_from_tables(cfg.storage)
    summary.log_mlflow(cfg.mlflow, to_dict(cfg), cfg.storage)
    return summary


def result_row(row: dict, cfg: RestoreImagesConfig, chash: str) -> dict:
    """A ``results`` row. ``samples``: posterior samples drawn (solver.samples); ``estimate``:
    what ``restored_uri`` holds, "single" (one solver run), "mean" (the mean of the samples,
    the MMSE estimate) or "sample" (one of them); ``std_mean``/``std_uri``: the mean and the
    image (std/<relative_path>.png) of the per-pixel posterior std, null / "" when none;
    ``preset``: the task family whose preset the row ran with ("none" when disabled);
    ``solver_config``: the solver's config as it ran (preset + the config's keys), JSON."""
    text = {k: str(row[k]) for k in ("id", "source_uri", "relative_path", "degradation", "solver", "prior")}
    return {**text, "width": int(row["width"]), "height": int(row["height"]), "nfe": int(row["nfe"]),
            "nfe_backward": int(row["nfe_backward"]), "seed": cfg.seed, "config_hash": chash,
            "seconds": float(row["seconds"]), **{k: _nullable(row[k]) for k in ("psnr", "ssim", "lq_psnr", "lq_ssim")},
            "restored_uri": str(row["restored_uri"]), "samples": int(row["samples"]),
            "estimate": str(row["estimate"]), "std_mean": _nullable(row["std_mean"]), "std_uri": str(row["std_uri"]),
            "preset": str(row["preset"]), "solver_config": str(row["solver_config"])}


def _nullable(v) -> float | None:
    return None if v is None or v != v else float(v)
